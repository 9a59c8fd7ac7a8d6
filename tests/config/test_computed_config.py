"""Computed columns in the configuration: every problem reported at once, with the others."""

import textwrap

import pytest

from tessera.config.loader import dump_yaml, load_yaml, parse_config
from tessera.errors import ConfigError

CONFIG = """
connections:
  - {name: files, type: local, path: data}
sources:
  - name: crm
    connection: files
    pattern: "*.csv"
    record_keys: [id]
  - name: shop_orders
    connection: files
    pattern: "orders.csv"
    record_keys: [order_id]
    relations:
      - {column: email, to: contacts.email}
datasets:
  - name: contacts
    deduplicate: true
    identity_keys: [{column: email}]
    columns:
      - {name: birth_date, type: date}
    mappings:
      - source: crm
        columns: {email: email, first_name: prenom, last_name: nom, birth_date: naissance}
    computed:
COMPUTED
  - name: orders
    mappings:
      - source: shop_orders
        columns: {order_id: order_id, amount: amount}
    computed:
      - {name: contact, sql: "coalesce(tessera_contacts_id, 'none')"}
"""

GOOD = """\
      - {name: full_name, sql: "concat(first_name, ' ', last_name)", semantic: FullName}
      - {name: age_band, sql: "CASE WHEN age < 30 THEN 'young' ELSE 'other' END"}
      - {name: age, sql: "EXTRACT(YEAR FROM age(birth_date))", type: integer}
      - {name: merged, sql: "tessera_record_count > 1 AND tessera_id IS NOT NULL"}
"""


def write(tmp_path, computed: str):
    p = tmp_path / "workspace.yaml"
    p.write_text(textwrap.dedent(CONFIG).replace("COMPUTED\n", computed))
    return p


def test_computed_columns_are_read_and_round_trip(tmp_path):
    cfg = load_yaml(write(tmp_path, GOOD))
    computed = cfg.datasets[0].computed
    assert [c.name for c in computed] == ["full_name", "age_band", "age", "merged"]
    assert computed[2].type == "integer"
    assert computed[0].semantic == "FullName"
    again = parse_config(__import__("yaml").safe_load(dump_yaml(cfg)))
    assert again == cfg


def test_every_computed_problem_is_reported_with_the_others(tmp_path):
    bad = """\
      - {name: full_name, sql: "concat(frist_name, ' ', last_name)"}
      - {name: age, sql: "read_csv('/etc/passwd')"}
      - {name: email, sql: "lower(email)"}
      - {name: a, sql: "b + 1"}
      - {name: b, sql: "a + 1"}
      - {name: total, sql: "sum(tessera_record_count)", semantic: Nothing}
"""
    path = write(tmp_path, bad)
    path.write_text(path.read_text().replace("identity_keys: [{column: email}]", "identity_keys: [{column: mail}]"))
    with pytest.raises(ConfigError) as exc:
        load_yaml(path)
    problems = exc.value.problems
    text = "\n".join(problems)
    assert "datasets[0] (contacts).identity_keys[0]: 'mail' is not a column of the dataset" in text
    assert ("datasets[0].computed[0] (full_name): unknown column 'frist_name' (did you mean first_name"
            in text)
    assert ("datasets[0].computed[1] (age): function read_csv is not allowed in a computed column (file and "
            "network access); allowed: scalar functions over this dataset's columns") in text
    assert "datasets[0].computed[2] (email).name: 'email' is already a column of the dataset" in text
    assert "datasets[0] (contacts).computed: computed columns use each other in a cycle: a -> b -> a" in text
    assert "datasets[0].computed[5] (total): aggregate function sum" in text
    assert "datasets[0].computed[5] (total).semantic: unknown semantic field 'Nothing'" in text


def test_identity_keys_cannot_be_computed(tmp_path):
    path = write(tmp_path, '      - {name: mail, sql: "lower(email)"}\n')
    path.write_text(path.read_text().replace("identity_keys: [{column: email}]", "identity_keys: [{column: mail}]"))
    with pytest.raises(ConfigError, match="'mail' is a computed column"):
        load_yaml(path)


def test_unknown_setting_of_a_computed_column_is_named(tmp_path):
    path = write(tmp_path, '      - {name: full_name, expr: "concat(first_name, last_name)"}\n')
    with pytest.raises(ConfigError) as exc:
        load_yaml(path)
    text = str(exc.value)
    assert "unknown setting 'expr'" in text
    assert "datasets[0].computed[0].sql" in text  # the missing setting
