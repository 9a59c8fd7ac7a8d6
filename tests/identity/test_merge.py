"""Merge rules on hand-computable records, one test body on every engine (``engine_adapter``)."""

import itertools
from datetime import datetime

import pyarrow as pa
import pytest

from tessera.identity.merge import MergeColumn, merge

_tables = itertools.count()


@pytest.fixture
def con(engine_adapter):
    return engine_adapter


def records(adapter):
    return adapter.create_table(f"rows_{next(_tables)}", pa.table(ROWS))


def t(day):
    return datetime(2024, 1, day)


ROWS = {
    # three records of customer A, one of customer B
    "tessera_id": ["A", "A", "A", "B"],
    "_size": [3, 3, 3, 1],
    "_tessera_record": ["crm:1", "shop:1", "pos:1", "crm:2"],
    "_tessera_source": ["crm", "shop", "pos", "crm"],
    "_tessera_imported_at": [t(1), t(2), t(3), t(1)],
    "updated": [t(10), t(30), t(20), t(5)],
    "name": ["Jean", "Jean", "JEAN", "Ana"],
    "city": ["Lyon", None, "Paris", None],
    "amount": [10, 30, 20, 7],
}


def merged(con, rule, col, date_column="updated", priority=("pos", "crm", "shop")):
    out = merge(records(con), [MergeColumn(col, rule)], date_column=date_column, source_priority=list(priority))
    return {r["tessera_id"]: r[col] for r in con.to_arrow(out).to_pylist()}


def test_most_recent_never_replaces_a_value_with_nothing(con):
    # shop:1 has the latest update (30) and no city: the default keeps pos:1's Paris
    assert merged(con, "most_recent", "city") == {"A": "Paris", "B": None}
    assert merged(con, "non_null_most_recent", "city") == {"A": "Paris", "B": None}


def test_most_recent_or_null_lets_the_latest_empty_value_win(con):
    assert merged(con, "most_recent_or_null", "city") == {"A": None, "B": None}
    assert merged(con, "most_recent_or_null", "name") == {"A": "Jean", "B": "Ana"}


def test_first_is_the_oldest_record(con):
    assert merged(con, "first", "amount") == {"A": 10, "B": 7}


def test_first_skips_empty_values_unless_asked(con):
    rows = dict(ROWS, city=[None, "Lyon", "Paris", None])
    out = merge(con.create_table(f"rows_{next(_tables)}", pa.table(rows)),
                [MergeColumn("city", "first"), MergeColumn("name", "first_or_null")],
                date_column="updated", source_priority=[])
    got = {r["tessera_id"]: r["city"] for r in con.to_arrow(out).to_pylist()}
    assert got == {"A": "Paris", "B": None}  # crm:1 (oldest) has none; pos:1 is next
    rows = dict(ROWS, name=[None, "Jean", "JEAN", "Ana"])
    out = merge(con.create_table(f"rows_{next(_tables)}", pa.table(rows)), [MergeColumn("name", "first_or_null")],
                date_column="updated", source_priority=[])
    assert {r["tessera_id"]: r["name"] for r in con.to_arrow(out).to_pylist()} == {"A": None, "B": "Ana"}


def test_recency_falls_back_to_import_time(con):
    assert merged(con, "most_recent", "amount", date_column=None) == {"A": 20, "B": 7}


def test_most_frequent_with_ties_broken_by_recency(con):
    assert merged(con, "most_frequent", "name") == {"A": "Jean", "B": "Ana"}


def test_max_min(con):
    assert merged(con, "max", "amount") == {"A": 30, "B": 7}
    assert merged(con, "min", "amount") == {"A": 10, "B": 7}


def test_source_priority_takes_the_first_trusted_non_empty_value(con):
    assert merged(con, "source_priority", "name") == {"A": "JEAN", "B": "Ana"}
    assert merged(con, "source_priority", "city", priority=("shop", "crm", "pos")) == {"A": "Lyon", "B": None}


def test_concat_unique_sorts_distinct_values(con):
    assert merged(con, "concat_unique", "city") == {"A": "Lyon, Paris", "B": None}


def test_record_count_and_sources(con):
    out = con.to_arrow(merge(records(con), [], date_column=None, source_priority=[])).to_pylist()
    by_id = {r["tessera_id"]: r for r in out}
    assert by_id["A"]["tessera_record_count"] == 3
    assert by_id["A"]["tessera_sources"] == "crm, pos, shop"
    assert by_id["B"]["tessera_sources"] == "crm"
