import textwrap

import pytest

from tessera.config.loader import dump_yaml, load_yaml, parse_config
from tessera.errors import ConfigError

GOOD = """
connections:
  - name: files
    type: local
    path: data
sources:
  - name: crm
    connection: files
    pattern: "*.csv"
    record_keys: [id]
    normalize:
      email: [email]
      phone: [{phone: {country: FR}}]
datasets:
  - name: contacts
    deduplicate: true
    identity_keys: [{column: email}, {column: phone}]
    mappings:
      - source: crm
        columns: {email: email, phone: phone}
"""


def write(tmp_path, text):
    p = tmp_path / "workspace.yaml"
    p.write_text(textwrap.dedent(text))
    return p


def test_good_config_round_trips(tmp_path):
    cfg = load_yaml(write(tmp_path, GOOD))
    assert cfg.connections[0].path == str((tmp_path / "data").resolve())
    assert cfg.sources[0].normalize["phone"][0].phone == {"country": "FR"}
    again = parse_config(__import__("yaml").safe_load(dump_yaml(cfg)))
    assert again == cfg


def test_every_problem_is_reported_at_once_with_its_line(tmp_path):
    bad = GOOD.replace("record_keys: [id]", "record_keys: [id]\n    recrod_keys: [x]").replace(
        "connection: files", "connection: nowhere"
    ).replace("{column: phone}", "{column: telephone}")
    with pytest.raises(ConfigError) as exc:
        load_yaml(write(tmp_path, bad))
    text = str(exc.value)
    # the typo is reported with its line; the reference problems come after a valid model only
    assert "unknown setting 'recrod_keys'" in text
    assert "line 11" in text


def test_reference_problems_are_listed_together(tmp_path):
    bad = GOOD.replace("connection: files", "connection: nowhere").replace("{column: phone}", "{column: telephone}")
    with pytest.raises(ConfigError) as exc:
        load_yaml(write(tmp_path, bad))
    assert len(exc.value.problems) == 2
    assert "unknown connection 'nowhere'" in str(exc.value)
    assert "'telephone' is not a column of the dataset" in str(exc.value)


def test_a_port_outside_1_to_65535_is_refused(tmp_path):
    text = """
    connections:
      - {name: dwh, type: postgresql, database: x, user: u, port: 99999}
      - {name: drop, type: sftp, host: h, user: u, port: 0}
    """
    with pytest.raises(ConfigError) as exc:
        load_yaml(write(tmp_path, text))
    assert len(exc.value.problems) == 2
    assert "connections[0].port" in str(exc.value) and "65535" in str(exc.value)
    assert "connections[1].port" in str(exc.value)


def test_normalization_rule_needs_exactly_one_setting(tmp_path):
    bad = GOOD.replace("email: [email]", "email: [{email: true, trim: true}]")
    with pytest.raises(ConfigError) as exc:
        load_yaml(write(tmp_path, bad))
    assert "exactly one of" in str(exc.value)


def test_invalid_yaml_names_line_and_column(tmp_path):
    with pytest.raises(ConfigError) as exc:
        load_yaml(write(tmp_path, "sources:\n  - name: [oops\n"))
    assert "line 3" in str(exc.value) or "line 2" in str(exc.value)
