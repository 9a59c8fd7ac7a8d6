"""Every configuration setting is documented."""

from pathlib import Path

from tessera.config import models

DOC = (Path(__file__).resolve().parents[2] / "docs" / "configuration.md").read_text()


def test_every_setting_is_in_the_configuration_reference():
    missing = []
    for cls in (models.LocalConnectionConfig, models.CsvOptions, models.RelationConfig, models.SourceConfig,
                models.DatasetColumnConfig, models.IdentityKeyConfig, models.MappingConfig, models.DatasetConfig,
                models.NormalizationRule, models.ComputedColumnConfig, models.AggregateConfig, models.ScoresConfig):
        for field, info in cls.model_fields.items():
            if f"`{info.alias or field}" not in DOC:
                missing.append(f"{cls.__name__}.{field}")
    assert not missing, f"undocumented settings: {missing}"
