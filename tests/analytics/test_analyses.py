"""The ready-made analyses of the default dashboards (RFM migration, cohort triangle, categories
bought together) on the small fixed shop, against figures computed by hand from its rows."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import date

import pytest
from analytics_helpers import AS_OF, LINES, PRODUCTS, SALES, make, rfm_at, rows

from tessera.errors import ConfigError

ORDERS = [o for o in rows(SALES) if o["email"]]  # an order without a customer belongs to no one


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    ws = make(tmp_path_factory.mktemp("analyses"), dashboards=False)
    assert ws.run().status == "succeeded"
    yield ws
    ws.close()


def test_rfm_migration_between_the_period_ends(ws):
    result = ws.run_question(("rfm", "rfm_migration"), {"period": "2024-06-30..2024-12-31"})
    before, after = rfm_at(date(2024, 6, 30)), rfm_at(date(2024, 12, 31))
    moves = Counter((before.get(c, "(no order yet)"), s) for c, s in after.items())
    got = {(r["rfm_segment_before"], r["rfm_segment_after"]): r["customers"] for r in result["rows"]}
    assert got == dict(moves) and sum(got.values()) == len(after)
    sizes = Counter(before.get(c, "(no order yet)") for c in after)
    for r in result["rows"]:
        assert r["share"] == pytest.approx(r["customers"] / sizes[r["rfm_segment_before"]])
    assert result["filters"]["applied"] == ["period"]
    labels = [c["label"] for c in result["columns"]]
    assert labels[:2] == ["RFM segment on 2024-06-30", "RFM segment on 2024-12-31"]
    assert result["spec"]["mark"]["type"] == "rect"
    # at the workspace's date the segments are the published score's
    contacts = ws.adapter.to_arrow(ws.table("contacts")).to_pylist()
    published = Counter(c["score_rfm_segment"] for c in contacts if c["score_rfm_segment"])
    default = ws.run_question(("rfm", "rfm_migration"))
    assert default["notes"] == [f"from 2023-12-31 to {AS_OF}"]
    by_after = Counter()
    for r in default["rows"]:
        by_after[r["rfm_segment_after"]] += r["customers"]
    assert by_after == published == Counter(after.values())


def test_rfm_migration_of_the_customers_of_a_store(ws):
    result = ws.run_question(("rfm", "rfm_migration"), {"period": "2024-06-30..2024-12-31", "store": "S2"})
    before, after = rfm_at(date(2024, 6, 30)), rfm_at(date(2024, 12, 31))
    there = {o["email"] for o in ORDERS if o["store"] == "S2"}
    moves = Counter((before.get(c, "(no order yet)"), s) for c, s in after.items() if c in there)
    assert {(r["rfm_segment_before"], r["rfm_segment_after"]): r["customers"] for r in result["rows"]} == dict(moves)
    assert result["filters"]["applied"] == ["period", "store"]


def month(day: str) -> tuple[int, int]:
    d = date.fromisoformat(day)
    return d.year, d.month


def test_cohort_triangle_of_repeat_purchases(ws):
    result = ws.run_question(("retention", "cohort_retention"))
    per = defaultdict(Counter)  # customer -> month -> orders
    for o in ORDERS:
        per[o["email"]][month(o["day"])] += 1
    cohort = {c: min(ms) for c, ms in per.items()}
    size = Counter(cohort.values())
    expected = {}
    for (y, m), n in size.items():
        span = (AS_OF.year - y) * 12 + AS_OF.month - m
        for k in range(min(span, 12) + 1):
            target = ((y * 12 + m - 1 + k) // 12, (m - 1 + k) % 12 + 1)
            again = sum(1 for c, first in cohort.items() if first == (y, m)
                        and per[c][target] >= (2 if k == 0 else 1))
            expected[(f"{y}-{m:02d}", k)] = (n, again, again / n)
    got = {(r["cohort"][:7], r["months_after"]): (r["cohort_customers"], r["customers_again"], r["repeat_rate"])
           for r in result["rows"]}
    assert got.keys() == expected.keys()
    assert all(got[k][:2] == expected[k][:2] and got[k][2] == pytest.approx(expected[k][2]) for k in expected)
    assert got[("2024-10", 0)] == (2, 1, 0.5)  # ed ordered twice in October, di once
    assert result["spec"]["encoding"]["color"]["legend"] == {"format": "%"}
    # the period keeps the cohorts whose first order is in it; a store keeps its orders
    late = ws.run_question(("retention", "cohort_retention"), {"period": "2024-10-01..2024-12-31"})
    assert {r["cohort"][:7] for r in late["rows"]} == {"2024-10", "2024-11", "2024-12"}
    assert {(r["cohort"][:7], r["months_after"]): (r["cohort_customers"], r["customers_again"])
            for r in late["rows"]} == {k: v[:2] for k, v in expected.items() if k[0] >= "2024-10"}
    s1 = ws.run_question(("retention", "cohort_retention"), {"store": "S1"})
    firsts = Counter()
    seen = {}
    for o in sorted(ORDERS, key=lambda o: o["day"]):
        if o["store"] == "S1":
            seen.setdefault(o["email"], o["day"][:7])
    firsts.update(seen.values())
    assert {r["cohort"][:7]: r["cohort_customers"] for r in s1["rows"] if r["months_after"] == 0} == dict(firsts)


def same(got_rows: list[dict], count: str, want: dict) -> None:
    got = {(r["category"], r["other_category"]): (r[count], r["lift"]) for r in got_rows}
    assert got.keys() == want.keys()
    assert all(got[p][0] == want[p][0] and got[p][1] == pytest.approx(want[p][1]) for p in want)


def test_categories_bought_together_in_an_order_and_by_a_customer(ws):
    category = {p["product_id"]: p["category"] for p in rows(PRODUCTS)}
    email = {o["order_id"]: o["email"] for o in rows(SALES)}

    def expected(key) -> dict:
        baskets = defaultdict(set)
        for line in rows(LINES):
            if key(line["order_id"]):
                baskets[key(line["order_id"])].add(category[line["product_id"]])
        n = len(baskets)
        single = Counter(c for b in baskets.values() for c in b)
        pairs = Counter((a, b) for cats in baskets.values() for a in cats for b in cats if a < b)
        return {p: (k, k * n / (single[p[0]] * single[p[1]])) for p, k in pairs.items()}

    result = ws.run_question(("products", "categories_together"))
    same(result["rows"], "orders", expected(lambda order: order))
    q = {"name": "q", "dataset": "order_items", "chart": "heatmap",
         "analysis": {"kind": "categories_together", "basket": "customer"}}
    by_customer = ws.run_question(q)
    want = expected(lambda order: email[order] or None)
    same(by_customer["rows"], "customers", want)
    assert [r["customers"] for r in by_customer["rows"]] == sorted(v[0] for v in want.values())[::-1]


def test_an_analysis_is_checked_like_any_question(ws):
    with pytest.raises(ConfigError, match="rfm_migration is drawn as heatmap or table, not pie"):
        ws.run_question({"name": "q", "dataset": "contacts", "chart": "pie", "analysis": {"kind": "rfm_migration"}})
    with pytest.raises(ConfigError, match="makes its own figures: leave out dimensions"):
        ws.run_question({"name": "q", "dataset": "contacts", "chart": "heatmap", "dimensions": [{"column": "city"}],
                         "analysis": {"kind": "rfm_migration"}})
    with pytest.raises(ConfigError, match="runs on the dataset of orders \\('orders'\\), not on 'contacts'"):
        ws.run_question({"name": "q", "dataset": "contacts", "chart": "heatmap",
                         "analysis": {"kind": "cohort_retention"}})
    with pytest.raises(ConfigError, match="is not before"):
        ws.run_question(("rfm", "rfm_migration"), {"period": "2024-12-31..2024-12-31"})
    png = ws.question_picture(("retention", "cohort_retention"), "png")
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


def test_rfm_migration_with_filters_reads_the_segments_prepared_after_a_run(ws, monkeypatch):
    """Once the dashboards are prepared, the migration of a store's customers counts their rows in
    the table of every customer's segments at the two dates instead of scoring everyone again:
    the figures computed by hand."""
    from tessera.analytics import analyses, dashboards

    ws.analytics().prepare(again=True)
    assert any(n.startswith("_tessera_analytics_facts_rfm_") for n in ws.adapter.list_tables())

    def scored(*_a):
        raise AssertionError("the customers were scored again")

    monkeypatch.setattr(analyses, "_segments", scored)
    dashboards._CACHE.clear()
    result = ws.run_question(("rfm", "rfm_migration"), {"store": "S2"})
    before, after = rfm_at(date(2023, 12, 31)), rfm_at(AS_OF)  # the 12 months up to the workspace's date
    there = {o["email"] for o in ORDERS if o["store"] == "S2"}
    moves = Counter((before.get(c, "(no order yet)"), s) for c, s in after.items() if c in there)
    assert {(r["rfm_segment_before"], r["rfm_segment_after"]): r["customers"] for r in result["rows"]} == dict(moves)
    assert result["filters"]["applied"] == ["store"] and not result["cached"]


def test_categories_together_with_filters_read_the_order_lines_facts(ws):
    """Once prepared, the order lines carry their order's columns (the lines' facts): the baskets
    of a period, of stores, of a segment's customers are kept on them without joining the orders;
    the figures computed by hand."""
    import ibis

    from tessera.analytics import dashboards, facts, parse_filters, validate_question

    ws.analytics().prepare(again=True)
    dashboards._CACHE.clear()
    category = {p["product_id"]: p["category"] for p in rows(PRODUCTS)}
    order = {o["order_id"]: o for o in rows(SALES)}
    big = {"cy@example.com", "ed@example.com"}  # 300 or more in all (the segment big_spenders)

    def expected(key, keep) -> dict:
        baskets = defaultdict(set)
        for line in rows(LINES):
            o = order[line["order_id"]]
            if key(o) and keep(o):
                baskets[key(o)].add(category[line["product_id"]])
        n = len(baskets)
        single = Counter(c for b in baskets.values() for c in b)
        pairs = Counter((a, b) for cats in baskets.values() for a in cats for b in cats if a < b)
        return {p: (k, k * n / (single[p[0]] * single[p[1]])) for p, k in pairs.items()}

    by_customer = {"name": "q", "dataset": "order_items", "chart": "table",
                   "analysis": {"kind": "categories_together", "basket": "customer"}}
    cases = [
        (("products", "categories_together"), {"store": "S2"}, "orders", lambda o: o["order_id"],
         lambda o: o["store"] == "S2"),
        (by_customer, {"period": "2024-10-01..2024-12-31", "store": "S1,S2"}, "customers", lambda o: o["email"],
         lambda o: "2024-10-01" <= o["day"] <= "2024-12-31" and o["store"] in ("S1", "S2")),
        (by_customer, {"store": "S1,S2", "segment": "big_spenders"}, "customers", lambda o: o["email"],
         lambda o: o["store"] in ("S1", "S2") and o["email"] in big),
    ]
    a = ws.analytics()
    for q, filters, count, key, keep in cases:
        want = expected(key, keep)
        assert want  # some pair is bought together
        same(ws.run_question(q, filters)["rows"], count, want)
        question = a.question(*q)[0] if isinstance(q, tuple) else validate_question(q)
        sql = str(ibis.to_sql(a.plan(question, parse_filters(filters, a.src.as_of)).expr))
        assert facts.PREFIX + "order_items" in sql
