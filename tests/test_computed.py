"""Functional tests of computed columns: a run adds them to the unified rows with the same values
and types on every engine (DuckDB always, Spark with --spark, PostgreSQL with --postgres)."""

from __future__ import annotations

import datetime
import json
import math
import textwrap

import pytest

from tessera.errors import RunError
from tessera.workspace import Workspace

TODAY = datetime.date.today()


def born(years: int, birthday_in_days: int) -> datetime.date:
    """A birth date ``years`` before a birthday that comes ``birthday_in_days`` from today
    (far from today, so that the engines' time zones cannot change the age)."""
    day = TODAY + datetime.timedelta(days=birthday_in_days)
    if (day.month, day.day) == (2, 29):
        day -= datetime.timedelta(days=1)
    return day.replace(year=day.year - years)


def age(birth: datetime.date) -> int:
    return TODAY.year - birth.year - ((TODAY.month, TODAY.day) < (birth.month, birth.day))


PEOPLE = [
    # id, first name, last name, email, birth date
    ("1", "Jean", "Dupont", "jean@example.com", born(40, -60)),
    ("2", "Jean", "Dupont", "jean@example.com", None),  # the same customer: merged with 1
    ("3", "Marie", "Curie", "marie@lab.org", born(25, 60)),
    ("4", "Paul", "Martin", "paul@example.com", born(62, -100)),
    ("5", "Ana", "Lopez", "ana@shop.es", None),
]
ORDERS = [
    {"order_id": "O1", "email": "jean@example.com", "amount": "10.5", "ordered_at": "2024-03-05 10:00:00"},
    {"order_id": "O2", "email": "marie@lab.org", "amount": "25", "ordered_at": "2024-11-30 23:30:00"},
    {"order_id": "O3", "email": None, "amount": "19.99", "ordered_at": "2025-01-01 00:00:00"},
]

CONFIG = """
connections:
  - {name: files, type: local, path: data}
sources:
  - name: crm
    connection: files
    pattern: "people.csv"
    record_keys: [id]
    types: {naissance: date}
  - name: shop
    connection: files
    pattern: "orders.ndjson"
    record_keys: [order_id]
    types: {amount: float, ordered_at: timestamp}
    relations:
      - {column: email, to: contacts.email}
datasets:
  - name: contacts
    deduplicate: true
    identity_keys: [{column: email}]
    columns:
      - {name: first_name, merge: non_null_most_recent}
      - {name: birth_date, merge: non_null_most_recent}
    mappings:
      - source: crm
        columns: {first_name: prenom, last_name: nom, email: email, birth_date: naissance}
    computed:
      - {name: full_name, sql: "concat(first_name, ' ', last_name)"}
      - name: age_band
        sql: >-
          CASE WHEN age IS NULL THEN 'unknown' WHEN age < 30 THEN 'under 30'
          WHEN age < 50 THEN '30-49' ELSE '50+' END
      - {name: age, sql: "EXTRACT(YEAR FROM age(birth_date))"}
      - {name: initials, sql: "upper(left(first_name, 1) || left(last_name, 1))"}
      - {name: email_domain, sql: "split_part(email, '@', 2)"}
      - {name: birth_year, sql: "strftime(birth_date, '%Y')", type: integer}
      - {name: merged, sql: "tessera_record_count > 1"}
  - name: orders
    mappings:
      - source: shop
        columns: {order_id: order_id, amount: amount, ordered_at: ordered_at}
    computed:
      - {name: amount_with_tax, sql: "round(amount * 1.2, 2)"}
      - {name: size, sql: "if(amount >= 20, 'large', 'small')"}
      - {name: order_month, sql: "strftime(ordered_at, '%Y-%m')"}
      - {name: known_customer, sql: "tessera_contacts_id IS NOT NULL"}
"""


@pytest.fixture
def make_workspace(make_workspace, engine):
    """The shared factory (tests/conftest.py) with this module's files, on every engine."""

    def make(config=CONFIG):
        lines = ["id,prenom,nom,email,naissance"]
        lines += [f"{i},{f},{n},{e},{b.isoformat() if b else ''}" for i, f, n, e, b in PEOPLE]
        files = {"people.csv": "\n".join(lines) + "\n",
                 "orders.ndjson": "\n".join(json.dumps(o) for o in ORDERS) + "\n"}
        return make_workspace(config, files)

    return make


def rows(ws, name):
    return ws.adapter.to_arrow(ws.table(name)).to_pylist()


def test_computed_columns_of_a_deduplicated_dataset(make_workspace):
    ws = make_workspace()
    assert ws.run().status == "succeeded"
    contacts = {c["email"]: c for c in rows(ws, "contacts")}
    assert len(contacts) == 4
    jean, marie, paul, ana = (contacts[e] for e in ("jean@example.com", "marie@lab.org", "paul@example.com",
                                                    "ana@shop.es"))
    assert jean["full_name"] == "Jean Dupont"
    assert jean["age"] == age(PEOPLE[0][4]) == 40
    assert jean["age_band"] == "30-49"
    assert jean["merged"] is True
    assert jean["birth_year"] == PEOPLE[0][4].year
    assert marie["age"] == age(PEOPLE[2][4]) == 24
    assert marie["age_band"] == "under 30"
    assert marie["initials"] == "MC"
    assert marie["email_domain"] == "lab.org"
    assert marie["merged"] is False
    assert paul["age"] == age(PEOPLE[3][4]) == 62
    assert paul["age_band"] == "50+"
    assert ana["age"] is None
    assert ana["birth_year"] is None
    assert ana["age_band"] == "unknown"
    assert ana["full_name"] == "Ana Lopez"


def test_computed_columns_have_the_same_types_everywhere(make_workspace):
    ws = make_workspace()
    ws.run()
    schema = ws.table("contacts").schema()
    assert schema["full_name"].is_string()
    assert schema["age"].is_int64()
    assert schema["birth_year"].is_int64()
    assert schema["merged"].is_boolean()
    orders = ws.table("orders").schema()
    assert orders["amount_with_tax"].is_float64()
    assert orders["size"].is_string()
    # the published order: the mapped columns, then the computed ones as configured
    assert ws.table("contacts").columns[-7:] == ("full_name", "age_band", "age", "initials", "email_domain",
                                                 "birth_year", "merged")


def test_computed_columns_of_a_dataset_without_deduplication(make_workspace):
    ws = make_workspace()
    ws.run()
    orders = {o["order_id"]: o for o in rows(ws, "orders")}
    assert orders["O1"]["amount_with_tax"] == pytest.approx(12.6)
    assert orders["O2"]["amount_with_tax"] == pytest.approx(30.0)
    assert orders["O3"]["amount_with_tax"] == pytest.approx(23.99)
    assert [orders[o]["size"] for o in ("O1", "O2", "O3")] == ["small", "large", "small"]
    assert [orders[o]["order_month"] for o in ("O1", "O2", "O3")] == ["2024-03", "2024-11", "2025-01"]
    assert [orders[o]["known_customer"] for o in ("O1", "O2", "O3")] == [True, True, False]


def test_an_expression_the_engine_refuses_fails_the_run_and_names_the_column(make_workspace):
    ws = make_workspace()
    ws.run()
    before = sorted(c["tessera_id"] for c in rows(ws, "contacts"))
    bad = CONFIG.replace('{name: merged, sql: "tessera_record_count > 1"}',
                         '{name: merged, sql: "birth_date + first_name"}')
    path = ws.path.parent / "workspace.yaml"
    path.write_text(textwrap.dedent(bad))
    ws.apply(path)
    with pytest.raises(RunError, match="dataset contacts, computed column merged"):
        ws.run()
    assert sorted(c["tessera_id"] for c in rows(ws, "contacts")) == before


def test_describe_lists_the_computed_columns(make_workspace):
    ws = make_workspace()
    cols = {c["column"]: c for c in ws.describe("contacts")}
    assert cols["age"]["computed"] == "EXTRACT(YEAR FROM age(birth_date))"
    assert cols["birth_year"]["type"] == "integer"
    assert cols["full_name"]["semantic"] == "FullName"


# --------------------------------------------------------------------------- every engine agrees with DuckDB

SAMPLE = {
    "a": ["Jean", None, " Marie-Claire ", "Zoé"],
    "b": ["Dupont", "X", None, "D'Arc"],
    "d": [datetime.date(1990, 6, 15), datetime.date(2000, 2, 29), None, datetime.date(1975, 12, 31)],
    "ts": [datetime.datetime(2024, 1, 2, 3, 4, 5), None, datetime.datetime(2023, 12, 31, 23, 0, 0),
           datetime.datetime(2020, 2, 29, 12, 30, 0)],
    "x": [1.5, -2.25, None, 4.5],
    "n": [10, None, 3, -7],
    "k": [1, 2, 3, 4],
}
SUPPORTED = [
    "concat(a, ' ', b)", "a || ' ' || b", "concat_ws('-', a, b)", "length(a)", "lower(a)", "upper(a)",
    "lower('ÉCOLE')", "upper('straße')", "trim(a)", "ltrim(a)", "rtrim(a)", "trim(b, 'D')", "substr(a, 2, 3)",
    "substring(a, 2)", "left(a, 2)", "right(a, 2)", "replace(a, 'e', 'E')", "translate(a, 'ae', 'AE')",
    "lpad(b, 8, '*')", "rpad(b, 8, '*')", "split_part(a, '-', 2)", "starts_with(a, 'J')", "ends_with(a, 'n')",
    "contains(a, 'ar')", "strpos(a, 'e')", "instr(a, 'e')", "position('e' IN a)", "reverse(b)", "repeat(b, 2)",
    "ascii(b)", "chr(65)", "md5(b)", "regexp_matches(a, '^J')", "regexp_matches(a, '(?i)^j')",
    "regexp_matches(b, '\\w''\\w')", "regexp_replace(a, '[aeiou]', '_', 'g')",
    "regexp_replace(a, '([a-z])-([A-Z])', '\\2+\\1', 'g')", "regexp_extract(a, '[A-Z][a-z]+')",
    "regexp_extract(a, '([A-Z])([a-z]+)', 2)", "regexp_extract(a, 'zz(z)', 1)",
    "abs(x)", "round(x, 1)", "round(x)", "round(n)", "round(2.5)", "round(-2.5)", "floor(x)", "ceil(x)",
    "sign(x)", "power(n, 2)", "mod(n, 3)", "n % 3", "n / 4", "n / 0", "x / 0", "n % 0", "x * 2 + 1",
    "least(n, k)", "greatest(n, k)", "coalesce(a, b, 'none')", "ifnull(a, 'none')", "nullif(b, 'X')",
    "CASE WHEN n > 5 THEN 'big' WHEN n IS NULL THEN 'none' ELSE 'small' END",
    "CASE k WHEN 1 THEN 'one' ELSE 'other' END", "if(n > 5, 'big', 'small')", "a IS NULL",
    "a IS DISTINCT FROM b", "a IN ('Jean', 'Zoé')", "a NOT IN ('Jean')", "n BETWEEN 1 AND 5", "a LIKE 'J%'",
    "a ILIKE 'j%'", "NOT (n > 5)", "CAST(n AS VARCHAR)", "CAST(x AS INTEGER)", "CAST(x * 3 AS INTEGER)",
    "CAST(CAST(x * 3 AS DECIMAL(10, 2)) AS BIGINT)", "CAST(2.5 AS INTEGER)", "CAST('12' AS INTEGER)",
    "CAST(k = 1 AS INTEGER)", "n::DOUBLE", "x::DECIMAL(10, 2)", "CAST(d AS VARCHAR)", "CAST(ts AS VARCHAR)",
    "CAST(ts AS DATE)", "CAST(d AS TIMESTAMP)", "DATE '2024-02-29'", "year(d)", "quarter(d)", "month(d)",
    "week(d)", "day(d)", "hour(ts)", "minute(ts)", "EXTRACT(YEAR FROM d)", "EXTRACT(WEEK FROM ts)",
    "date_part('quarter', d)", "date_trunc('month', d)", "date_trunc('week', d)", "date_trunc('hour', ts)",
    "date_diff('day', d, DATE '2024-01-01')", "date_diff('month', d, DATE '2024-01-01')",
    "date_diff('year', d, DATE '2024-01-01')", "date_diff('day', ts, TIMESTAMP '2024-01-03 01:00:00')",
    "d + INTERVAL 1 DAY", "d + INTERVAL 3 MONTH", "d - INTERVAL 1 YEAR", "ts - INTERVAL 2 HOUR",
    "strftime(d, '%Y-%m')", "strftime(ts, '%d/%m/%Y %H:%M:%S')", "strftime(ts, '%y%m%d')",
    "make_date(year(d), 1, 1)", "last_day(d)", "current_date - d", "EXTRACT(YEAR FROM age(d))",
    "date_part('year', age(d))", "EXTRACT(YEAR FROM age(DATE '2025-02-28', d))",
    "EXTRACT(YEAR FROM age(DATE '2024-02-29', d))", "EXTRACT(YEAR FROM age(ts, d))", "'it''s ' || a",
]


def _same(value, reference) -> bool:
    if isinstance(value, float) and isinstance(reference, float):
        return math.isclose(value, reference, rel_tol=1e-12)
    return value == reference and type(value) is type(reference)


def _computed_rows(adapter, table, expressions, types=None):
    from tessera.config.models import DatasetConfig
    from tessera.datasets.build import add_computed, duckdb_types

    ds = DatasetConfig(name="sample", mappings=[{"source": "s", "columns": {"a": "a"}}],
                       computed=[{"name": f"c{i}", "sql": sql} for i, sql in enumerate(expressions)])
    types = duckdb_types(adapter, table, ds) or types
    out, _ = add_computed(adapter, table, ds, types)
    return out.schema(), adapter.to_arrow(out.order_by("k")).to_pylist()


def test_every_supported_function_gives_duckdbs_values(engine, tmp_path):
    import pyarrow as pa

    from tessera.engine.duckdb import DuckDBAdapter

    ws = Workspace.init(tmp_path / "ws", warehouse=engine)
    reference = DuckDBAdapter(":memory:")
    try:
        data = pa.table(SAMPLE)
        mine = ws.adapter.create_table("_tessera_sample", data)
        theirs = reference.create_table("sample", data)
        different = []
        for start in range(0, len(SUPPORTED), 20):  # a few columns per query
            chunk = SUPPORTED[start:start + 20]
            schema, got = _computed_rows(ws.adapter, mine, chunk)
            ref_schema, expected = _computed_rows(reference, theirs, chunk)
            for i, sql in enumerate(chunk):
                name = f"c{i}"
                values, ref_values = [r[name] for r in got], [r[name] for r in expected]
                same_type = str(schema[name]).split("(")[0] == str(ref_schema[name]).split("(")[0]
                if not same_type or not all(_same(v, r) for v, r in zip(values, ref_values)):
                    different.append(f"{sql}: {values} {schema[name]} (DuckDB: {ref_values} {ref_schema[name]})")
        assert not different, "\n".join(different)
    finally:
        reference.close()
        ws.close()
