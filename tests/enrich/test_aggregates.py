"""Aggregates of a related dataset, with filters and time windows (DuckDB in memory)."""

from datetime import date

import ibis
import pytest

from tessera.enrich.aggregates import Aggregate, aggregate

AS_OF = date(2024, 12, 31)
ORDERS = {
    "_tessera_record": ["o1", "o2", "o3", "o4", "o5"],
    "contact": ["A", "A", "A", "B", None],
    "day": [date(2021, 6, 1), date(2024, 1, 10), date(2024, 12, 1), date(2024, 11, 30), date(2024, 12, 1)],
    "amount": [10.0, 20.0, 30.0, 5.0, 99.0],
    "category": ["A", "A", "B", "A", "A"],
}


def run(aggs, conds=None):
    con = ibis.duckdb.connect()
    rel = ibis.memtable(ORDERS)
    conds = conds or [None] * len(aggs)
    out = aggregate(rel, "contact", [(a, c(rel) if c else None) for a, c in zip(aggs, conds)], as_of=AS_OF)
    return {r["_customer"]: r for r in con.to_pyarrow(out).to_pylist()}


def test_count_in_category_in_the_last_two_years():
    agg = Aggregate("orders_a_2y", "count", None, "day", last=2, unit="years")
    out = run([agg], [lambda t: t.category == "A"])
    assert out["A"]["orders_a_2y"] == 1  # o1 is older than two years, o3 is category B
    assert out["B"]["orders_a_2y"] == 1
    assert None not in out  # orders without a contact are ignored


@pytest.mark.parametrize("function,expected_a", [
    ("sum", 60.0), ("avg", 20.0), ("min", 10.0), ("max", 30.0), ("count_distinct", 2),
    ("first", "A"), ("last", "B"), ("most_frequent", "A"), ("list", "A, B"),
])
def test_functions(function, expected_a):
    column = "category" if function in ("count_distinct", "first", "last", "most_frequent", "list") else "amount"
    out = run([Aggregate("x", function, column, "day")])
    assert out["A"]["x"] == (pytest.approx(expected_a) if isinstance(expected_a, float) else expected_a)


def test_between_dates_and_last_months():
    between = Aggregate("y2024", "sum", "amount", "day", start=date(2024, 1, 1), end=date(2024, 12, 31))
    months = Aggregate("m3", "sum", "amount", "day", last=3, unit="months")
    out = run([between, months])
    assert out["A"]["y2024"] == 50.0 and out["A"]["m3"] == 30.0
    assert out["B"]["m3"] == 5.0
