"""Every configuration setting is documented."""

from pathlib import Path

from tessera.config import models

DOC = (Path(__file__).resolve().parents[2] / "docs" / "configuration.md").read_text()


def test_every_setting_is_in_the_configuration_reference():
    missing = []
    for cls in (models.LocalConnectionConfig, models.CsvOptions, models.RelationConfig, models.SourceConfig,
                models.DatasetColumnConfig, models.IdentityKeyConfig, models.MappingConfig, models.DatasetConfig,
                models.NormalizationRule, models.ComputedColumnConfig, models.AggregateConfig, models.ScoresConfig,
                models.PostgresConnectionConfig, models.MySQLConnectionConfig, models.SQLiteConnectionConfig,
                models.FTPConnectionConfig, models.SFTPConnectionConfig, models.BigQueryConnectionConfig,
                models.WebhookConnectionConfig, models.HttpConnectionConfig, models.SyncConfig,
                models.PipelineConfig, models.MatchingConfig, models.ComparisonConfig, models.ItemsConfig,
                models.SegmentConfig, models.ConditionConfig, models.DashboardConfig, models.QuestionConfig,
                models.DimensionConfig, models.MeasureConfig):
        for field, info in cls.model_fields.items():
            if f"`{info.alias or field}" not in DOC:
                missing.append(f"{cls.__name__}.{field}")
    assert not missing, f"undocumented settings: {missing}"


def test_the_readme_configuration_is_valid():
    import re

    import yaml

    from tessera.config.loader import parse_config

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    block = re.search(r"```yaml\n(.*?)```", readme, re.S).group(1)
    config = parse_config(yaml.safe_load(block))
    assert [d.name for d in config.datasets] == ["contacts", "orders"]


def test_the_readme_connections_configuration_is_valid():
    import re

    import yaml

    from tessera.config.loader import parse_config

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    block = re.findall(r"```yaml\n(.*?)```", readme, re.S)[1]
    config = parse_config(yaml.safe_load(block))
    assert [s.name for s in config.syncs] == ["contacts_to_mariadb", "newsletter"]
