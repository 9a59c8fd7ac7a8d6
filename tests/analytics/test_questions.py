"""Questions compiled to one grouped query: every figure is checked against the same rows read in
plain Python (analytics_helpers.py), with one test body on every engine."""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from datetime import date, timedelta

import pytest
from analytics_helpers import ENGINES, LINES, PRODUCTS, SALES, age_band, engine_workspace, people, rows


@pytest.fixture(scope="module", params=ENGINES)
def ws(request, tmp_path_factory):
    ws = engine_workspace(request, tmp_path_factory, "an")
    yield ws
    ws.close()


ORDERS = rows(SALES)
PEOPLE = people()


def run(ws, question: dict, filters: dict | None = None) -> list[dict]:
    result = ws.run_question({"name": "q", **question}, filters)
    return result["rows"]


def test_cross_tab_of_channel_and_the_customers_age_band(ws):
    got = run(ws, {"dataset": "orders", "chart": "heatmap",
                   "dimensions": [{"column": "channel"}, {"column": "contacts.birth", "band": "age"}],
                   "measures": [{"fn": "count", "label": "orders"}, ] })
    expected = Counter((o["channel"], age_band(PEOPLE[o["email"]]["birth"]) if o["email"] else "unknown")
                       for o in ORDERS)
    assert {(r["channel"], r["age"]): r["orders"] for r in got} == dict(expected)
    # rows come in the bands' order within each channel, not in the labels' alphabetical order
    web = [r["age"] for r in got if r["channel"] == "web"]
    assert web == ["under 18", "25-34", "55-64", "unknown"]


def test_a_text_dimension_in_an_order_of_its_own(ws):
    got = run(ws, {"dataset": "orders", "dimensions": [{"column": "channel", "order": ["store", "web"]}],
                   "measures": [{"fn": "count", "label": "orders"}]})
    channels = [r["channel"] for r in got]
    others = sorted({o["channel"] or "(empty)" for o in ORDERS} - {"store", "web"})
    assert channels == [c for c in ("store", "web") if c in {o["channel"] for o in ORDERS}] + others
    with pytest.raises(Exception, match="order lists the values of a plain column"):
        run(ws, {"dataset": "orders", "dimensions": [{"column": "day", "band": "month", "order": ["x"]}],
                 "measures": [{"fn": "count"}]})


def test_sum_average_median_and_distinct_customers_per_month(ws):
    got = run(ws, {"dataset": "orders", "chart": "line", "dimensions": [{"column": "day", "band": "month"}],
                   "measures": [{"fn": "sum", "column": "amount"}, {"fn": "avg", "column": "amount"},
                                {"fn": "median", "column": "amount"}, {"fn": "customers"},
                                {"fn": "max", "column": "@OrderAmount", "label": "largest"}]})
    by_month: dict[str, list[dict]] = defaultdict(list)
    for o in ORDERS:
        by_month[o["day"][:7] + "-01"].append(o)
    assert [r["day_month"][:10] for r in got] == sorted(by_month)  # a date band is in time order
    for r in got:
        orders = by_month[r["day_month"][:10]]
        amounts = [float(o["amount"]) for o in orders]
        assert r["sum_of_amount"] == pytest.approx(sum(amounts))
        assert r["avg_of_amount"] == pytest.approx(sum(amounts) / len(amounts))
        assert r["median_of_amount"] == pytest.approx(statistics.median(amounts))
        assert r["customers"] == len({o["email"] for o in orders if o["email"]})
        assert r["largest"] == pytest.approx(max(amounts))


def test_number_bins_weeks_and_weekdays(ws):
    got = run(ws, {"dataset": "orders", "dimensions": [{"column": "amount", "bins": [20, 100, 200]}],
                   "measures": [{"fn": "count"}]})
    def band(a: float) -> str:
        return "under 20" if a < 20 else "20-100" if a < 100 else "100-200" if a < 200 else "200 and over"
    expected = Counter(band(float(o["amount"])) for o in ORDERS)
    assert [(r["amount"], r["rows"]) for r in got] == [(b, expected[b]) for b in
                                                      ["under 20", "20-100", "100-200", "200 and over"]]
    weeks = run(ws, {"dataset": "orders", "dimensions": [{"column": "day", "band": "week"}],
                     "measures": [{"fn": "count"}]})
    def monday(d: str) -> str:
        day = date.fromisoformat(d)
        return (day - timedelta(days=day.weekday())).isoformat()
    assert {r["day_week"][:10]: r["rows"] for r in weeks} == dict(Counter(monday(o["day"]) for o in ORDERS))
    days = run(ws, {"dataset": "orders", "dimensions": [{"column": "day", "band": "weekday"}],
                    "measures": [{"fn": "count"}]})
    names = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
    expected = Counter(names[date.fromisoformat(o["day"]).weekday()] for o in ORDERS)
    assert [(r["day_weekday"], r["rows"]) for r in days] == [(n, expected[n]) for n in names if expected[n]]


def test_filters_are_a_segment_condition_tree_with_related_columns(ws):
    got = run(ws, {"dataset": "orders", "dimensions": [{"column": "channel"}],
                   "measures": [{"fn": "sum", "column": "amount", "label": "revenue"}],
                   "filters": [{"any": [{"column": "amount", "op": ">", "value": 100},
                                        {"column": "contacts.city", "op": "=", "value": "Paris"}]},
                               {"not": {"column": "channel", "op": "=", "value": "app"}}]})
    expected: dict[str, float] = defaultdict(float)
    for o in ORDERS:
        city = PEOPLE[o["email"]]["city"] if o["email"] else None
        if (float(o["amount"]) > 100 or city == "Paris") and o["channel"] != "app":
            expected[o["channel"]] += float(o["amount"])
    assert {r["channel"]: r["revenue"] for r in got} == pytest.approx(dict(expected))
    assert [r["channel"] for r in got] == sorted(expected, key=lambda c: -expected[c])  # by the measure


def test_dashboard_filters_period_store_channel_and_segment(ws):
    big = {e for e, total in _totals().items() if total >= 300}  # segment big_spenders
    q = {"dataset": "orders", "chart": "number", "measures": [{"fn": "count"}, {"fn": "sum", "column": "amount"}]}
    result = ws.run_question({"name": "q", **q}, {"period": "2024-10-15..2024-12-01", "store": "S1,S2",
                                                  "segment": "big_spenders"})
    assert result["filters"] == {"applied": ["period", "store", "segment"], "ignored": []}
    kept = [o for o in ORDERS if "2024-10-15" <= o["day"] <= "2024-12-01" and o["store"] in ("S1", "S2")
            and o["email"] in big]
    assert result["rows"][0]["rows"] == len(kept)
    assert result["rows"][0]["sum_of_amount"] == pytest.approx(sum(float(o["amount"]) for o in kept))
    # on the customers: those who bought in the period on the channel
    got = run(ws, {"dataset": "contacts", "chart": "number", "measures": [{"fn": "customers"}]},
              {"period": "2024-11-01..2024-12-31", "channel": "web,app"})
    buyers = {o["email"] for o in ORDERS if o["email"] and "2024-11-01" <= o["day"] and o["channel"] in ("web", "app")}
    assert got[0]["customers"] == len(buyers)
    # order lines reach the period through their order
    items = run(ws, {"dataset": "order_items", "dimensions": [{"column": "products.category"}],
                     "measures": [{"fn": "sum", "column": "quantity", "label": "items"}]},
                {"period": "2024-10-01..2024-12-31"})
    day = {o["order_id"]: o["day"] for o in ORDERS}
    category = {p["product_id"]: p["category"] for p in rows(PRODUCTS)}
    expected: Counter = Counter()
    for line in rows(LINES):
        if "2024-10-01" <= day[line["order_id"]] <= "2024-12-31":
            expected[category[line["product_id"]]] += int(line["quantity"])
    assert {r["category"]: r["items"] for r in items} == dict(expected)


def test_a_dashboard_view_computes_the_customers_its_filters_keep_once(ws, monkeypatch):
    """In a dashboard view, the customers kept by the order filters and the segment are copied
    once into work tables that every chart reads: the figures of each chart run alone, the count
    computed by hand, the work tables dropped once the view is drawn."""
    from tessera.analytics import dashboards, parse_filters

    filters = {"period": "2024-10-15..2024-12-31", "store": "S1,S2", "segment": "big_spenders"}
    made: list[str] = []
    once = dashboards.Analytics._once

    def recording(self, key, expr, columns=None):
        out = once(self, key, expr, columns)
        made.extend(name for name, _t in self._work.values() if name and name not in made)
        return out

    monkeypatch.setattr(dashboards.Analytics, "_once", recording)
    dashboards._CACHE.clear()
    view = {q["name"]: q for q in ws.dashboard("customer_knowledge", filters)["questions"]}
    assert len(made) == 1  # the rows of the customers who bought so, with the segment's flag
    for name in made:
        with pytest.raises(Exception):
            ws.adapter.table(name)
    for name in ("customer_knowledge", "sales", "products", "rfm"):
        dashboards._CACHE.clear()
        made.clear()
        drawn = {q["name"]: q for q in ws.dashboard(name, filters)["questions"]}
        assert made  # the orders (or order lines) of the period at the stores, the customers
        dashboards._CACHE.clear()
        a = ws.analytics()
        d, _lacking, _kind = a.find(name)
        alone = {q.name: a.run(q, parse_filters(filters, a.src.as_of), soft=True) for q in d.questions}
        assert {n: q["rows"] for n, q in drawn.items()} == {n: q["rows"] for n, q in alone.items()}
        # (no order of the period at those stores holds two categories: that pair list is empty)
        assert all(q["rows"] for n, q in drawn.items() if n != "categories_together"), name
    big = {e for e, total in _totals().items() if total >= 300}
    buyers = {o["email"] for o in ORDERS if o["email"] in big and "2024-10-15" <= o["day"] <= "2024-12-31"
              and o["store"] in ("S1", "S2")}
    assert buyers and view["customers"]["rows"][0]["customers"] == len(buyers)
    assert view["customers"]["filters"]["applied"] == ["period", "store", "segment"]


def _totals() -> dict[str, float]:
    out: dict[str, float] = defaultdict(float)
    for o in ORDERS:
        if o["email"]:
            out[o["email"]] += float(o["amount"])
    return out


def test_segment_membership_as_a_dimension_and_a_share_measure(ws):
    big = {e for e, total in _totals().items() if total >= 300}
    got = run(ws, {"dataset": "contacts", "dimensions": [{"segment": "big_spenders"}],
                   "measures": [{"fn": "customers"},
                                {"fn": "share", "label": "opted in", "where": {"column": "optin", "op": "is_true"}}]})
    members = [p for e, p in PEOPLE.items() if e in big]
    others = [p for e, p in PEOPLE.items() if e not in big]
    assert got == [
        {"in_big_spenders": "in big_spenders", "customers": len(members),
         "opted_in": pytest.approx(sum(p["optin"] == "true" for p in members) / len(members))},
        {"in_big_spenders": "not in big_spenders", "customers": len(others),
         "opted_in": pytest.approx(sum(p["optin"] == "true" for p in others) / len(others))}]
    on_orders = run(ws, {"dataset": "orders", "dimensions": [{"segment": "big_spenders", "label": "big"}],
                         "measures": [{"fn": "count"}]})
    assert {r["big"]: r["rows"] for r in on_orders} == {
        "in big_spenders": sum(o["email"] in big for o in ORDERS),
        "not in big_spenders": sum(o["email"] not in big for o in ORDERS)}


def test_ready_made_analyses_give_the_same_figures_on_every_engine(ws):
    from analytics_helpers import rfm_at

    migration = ws.run_question(("rfm", "rfm_migration"), {"period": "2024-06-30..2024-12-31"})["rows"]
    before, after = rfm_at(date(2024, 6, 30)), rfm_at(date(2024, 12, 31))
    moves = Counter((before.get(c, "(no order yet)"), s) for c, s in after.items())
    assert {(r["rfm_segment_before"], r["rfm_segment_after"]): r["customers"] for r in migration} == dict(moves)
    cohorts = ws.run_question(("retention", "cohort_retention"), {"period": "2024-10-01..2024-12-31"})["rows"]
    assert [(r["cohort"][:7], r["months_after"], r["customers_again"], r["repeat_rate"]) for r in cohorts] == [
        ("2024-10", 0, 1, 0.5), ("2024-10", 1, 0, 0.0), ("2024-10", 2, 1, 0.5),  # ed: two in Oct., one in Dec.
        ("2024-11", 0, 0, 0.0), ("2024-11", 1, 1, 0.5),  # ha: Nov. then Dec.; gu: once
        ("2024-12", 0, 0, 0.0)]
    together = ws.run_question(("products", "categories_together"))["rows"]
    # o05 alone holds two categories: Kitchen (5 of the 9 orders with lines) and Decoration (3)
    assert together == [{"category": "Decoration", "other_category": "Kitchen", "orders": 1,
                         "lift": pytest.approx(9 / 15)}]
