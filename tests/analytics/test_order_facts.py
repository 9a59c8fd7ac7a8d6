"""The order facts (the orders joined once to their customers at preparation) and the two-level
grouping of age and weekday bands: every figure equal to the one computed by joining and grouping
once, on the small fixed shop; the facts used only for the publications they were built from, and
dropped by an erasure."""

from __future__ import annotations

import ibis
import pytest
from analytics_helpers import ENGINES, engine_workspace

import tessera.analytics.question as question
from tessera.analytics import dashboards, facts, parse_filters, prepared, validate_question

FILTERS = {"period": "2024-01-01..2024-12-31", "store": "S1,S2", "segment": "big_spenders"}
QUESTIONS = [
    {"dataset": "orders", "chart": "table",
     "dimensions": [{"column": "channel"}, {"column": "contacts.birth", "band": "age"}],
     "measures": [{"fn": "count"}, {"fn": "sum", "column": "amount"}, {"fn": "avg", "column": "amount"},
                  {"fn": "min", "column": "discount"}, {"fn": "max", "column": "amount"},
                  {"fn": "customers"},
                  {"fn": "share", "where": {"column": "contacts.gender", "op": "=", "value": "F"}}]},
    {"dataset": "orders", "dimensions": [{"segment": "big_spenders"}, {"column": "day", "band": "weekday"}],
     "measures": [{"fn": "sum", "column": "amount"}, {"fn": "median", "column": "amount"}]},
    {"dataset": "orders", "dimensions": [{"column": "contacts.country"}],
     "measures": [{"fn": "count"}, {"fn": "avg", "column": "discount"}],
     "filters": [{"column": "contacts.optin", "op": "is_true"}]},
    {"dataset": "orders", "dimensions": [{"column": "contacts.birth", "band": "age"}],
     "measures": [{"fn": "count"}], "filters": [{"column": "contacts.email", "op": "is_not_empty"}]},
    {"dataset": "contacts", "dimensions": [{"column": "birth", "band": "age"}, {"column": "gender"}],
     "measures": [{"fn": "customers"}, {"fn": "avg", "column": "score_orders_total_amount"}]},
]


@pytest.fixture(scope="module", params=ENGINES)
def ws(request, tmp_path_factory):
    ws = engine_workspace(request, tmp_path_factory, "fa")
    yield ws
    ws.close()


@pytest.fixture(scope="module")
def baseline(ws) -> list:
    """The figures of the questions and of the sales dashboard, without and with the filters,
    before any facts are built (joined, the bands grouped in two levels): computed once for both
    tests (each query a job of its own on Spark)."""
    prepared.forget(ws.store)
    return [figures(ws), figures(ws, FILTERS)]


def figures(ws, filters: dict | None = None) -> list[list[dict]]:
    dashboards._CACHE.clear()
    out = [ws.run_question({"name": f"q{i}", **q}, filters)["rows"] for i, q in enumerate(QUESTIONS)]
    out += [q["rows"] for q in ws.dashboard("sales", filters)["questions"] if not q.get("unavailable")]
    return out


def reads_facts(ws, q: dict, filters: dict | None = None) -> bool:
    a = ws.analytics()
    p = a.plan(validate_question({"name": "q", **q}), parse_filters(filters, a.src.as_of))
    return facts.PREFIX in str(ibis.to_sql(p.expr))


def analyses(ws) -> list[list[dict]]:
    """The charts of the dashboards with ready-made analyses, with the filters."""
    dashboards._CACHE.clear()
    return [q["rows"] for name in ("rfm", "retention", "products") for q in ws.dashboard(name, FILTERS)["questions"]
            if not q.get("unavailable")]


def test_two_level_bands_give_the_figures_of_one_grouping(ws, baseline, monkeypatch):
    two = baseline
    monkeypatch.setattr(question, "_TWO_LEVEL_BANDS", ())
    one = [figures(ws), figures(ws, FILTERS)]
    assert two == one
    assert any(r for r in two[0][0]) and any(r for r in two[1][0])  # the cross-tab is not empty


def test_order_facts_give_the_same_figures_and_follow_the_publications(ws, baseline, monkeypatch):
    before = baseline
    prepared.forget(ws.store)
    assert not any(reads_facts(ws, q) for q in QUESTIONS)
    joined_analyses = analyses(ws)
    monkeypatch.setenv(prepared.ROWS_VARIABLE, "0")
    counts = ws.prepare_dashboards(again=True)
    assert counts["facts"] == ["order_items", "orders"]
    table = facts.PREFIX + "orders"
    assert ws.adapter.exists(table) and ws.adapter.exists(facts.PREFIX + "order_items")
    # a new process: what was prepared read from the store
    dashboards._CACHE.clear()
    prepared.forget()
    assert [reads_facts(ws, q) for q in QUESTIONS] == [True, True, True, False, False]
    # the segment filter read from the facts, the customers joined for the e-mail they lack
    assert reads_facts(ws, QUESTIONS[3], FILTERS)
    # the columns that identify a person are not copied: a question on one joins as before
    assert "contacts__email" not in ws.adapter.table(table).columns
    by_email = {"dataset": "orders", "dimensions": [{"column": "contacts.email"}], "measures": [{"fn": "count"}]}
    assert not reads_facts(ws, by_email)
    assert {r["email"]: r["rows"] for r in ws.run_question({"name": "e", **by_email})["rows"]} == {
        "ana@example.com": 3, "bo@example.com": 1, "cy@example.com": 1, "ed@example.com": 3, "fa@example.com": 1,
        "ha@example.com": 2, "di@example.com": 1, "gu@example.com": 1, "(empty)": 1}
    assert reads_facts(ws, {"dataset": "orders", "dimensions": [{"column": "channel"}], "measures": [{"fn": "count"}]},
                       FILTERS)  # the segment filter is a flag of the facts
    # the order lines read with their order's date and store from the lines' facts
    items = {"dataset": "order_items", "dimensions": [{"column": "orders.day", "band": "month"}],
             "measures": [{"fn": "sum", "column": "quantity"}]}
    a = ws.analytics()
    sql = str(ibis.to_sql(a.plan(validate_question({"name": "q", **items}), parse_filters(FILTERS, a.src.as_of)).expr))
    assert facts.PREFIX + "order_items" in sql and '"orders"' not in sql
    assert [figures(ws), figures(ws, FILTERS)] == before
    assert analyses(ws) == joined_analyses  # the copies of a view and the analyses read the facts
    if type(ws.adapter).__name__.startswith("Spark"):
        return  # the same definitions; the runs and preparations below take minutes on Spark
    # a new order, a new publication: the facts are of the previous one, the questions join again
    monkeypatch.setenv(prepared.ROWS_VARIABLE, "1000000000")
    sales = ws.path.parent / "data" / "sales.csv"
    sales.write_text(sales.read_text() + "o15,bo@example.com,2024-06-01,300,0,shop,S1\n")
    assert ws.run().status == "succeeded"
    dashboards._CACHE.clear()
    prepared.forget()
    assert not any(reads_facts(ws, q) for q in QUESTIONS)
    joined = [figures(ws), figures(ws, FILTERS)]
    assert joined != before
    # prepared again: the facts of the new publication give its figures
    ws.prepare_dashboards(again=True)
    dashboards._CACHE.clear()
    prepared.forget()
    assert reads_facts(ws, QUESTIONS[0]) and ws.adapter.exists(table)
    assert [figures(ws), figures(ws, FILTERS)] == joined
    # an erasure: the table holding the customers' columns is dropped
    ws.erase("ana@example.com")
    assert not ws.adapter.exists(table)
    assert ws.store.get_state(*prepared.STATE) is None
    assert not reads_facts(ws, QUESTIONS[0])


def test_a_period_on_timestamps_keeps_the_days_of_the_period():
    """A dashboard's period on a timestamp compares it with the days' bounds (no cast per row):
    the same rows as its day being in the period, at the first and last instants of a day."""
    from datetime import date, datetime

    from tessera.analytics.question import _in_period

    con = ibis.duckdb.connect()
    stamps = [datetime(2023, 12, 31, 23, 59, 59, 999999), datetime(2024, 1, 1), datetime(2024, 3, 5, 12),
              datetime(2024, 6, 30, 23, 59, 59, 999999), datetime(2024, 7, 1), None]
    t = ibis.memtable({"ts": stamps}, schema={"ts": "timestamp"})
    for since, until in [(date(2024, 1, 1), date(2024, 6, 30)), (None, date(2024, 6, 30)), (date(2024, 1, 1), None)]:
        kept = con.to_pyarrow(t.filter(_in_period(t.ts, since, until))).column("ts").to_pylist()
        want = [s for s in stamps if s is not None and (since is None or s.date() >= since)
                and (until is None or s.date() <= until)]
        assert sorted(kept) == want and 0 < len(want) < 5
