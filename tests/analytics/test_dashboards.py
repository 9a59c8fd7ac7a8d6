"""Dashboards: the defaults on the small fixed shop against figures computed by hand, on the demo
company without error, in the configuration (YAML round trip, errors with their place), and their
downloads (CSV complete, PNG and SVG valid pictures)."""

from __future__ import annotations

import csv
import io
import re
import struct
import xml.etree.ElementTree as ET
from collections import Counter, defaultdict

import pytest
from analytics_helpers import AS_OF, LINES, PRODUCTS, SALES, age_band, make, people, rows

from tessera.errors import ConfigError, NotFoundError, UsageError, VersionConflict

ORDERS = rows(SALES)
PEOPLE = people()


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    ws = make(tmp_path_factory.mktemp("dash"))
    assert ws.run().status == "succeeded"
    yield ws
    ws.close()


def questions(ws, name: str, filters: dict | None = None) -> dict[str, dict]:
    return {q["name"]: q for q in ws.dashboard(name, filters)["questions"]}


def test_customer_knowledge_figures(ws):
    q = questions(ws, "customer_knowledge")
    assert q["customers"]["rows"] == [{"customers": 8, "e_mail_opt_in_rate": pytest.approx(4 / 8)}]
    ages = {r["age"]: r["customers"] for r in q["age_bands"]["rows"]}
    assert ages == dict(Counter(age_band(p["birth"]) for p in PEOPLE.values()))
    assert {r["country"]: r["customers"] for r in q["countries"]["rows"]} == {"FR": 6, "BE": 2}
    # a customer without a gender is counted as unknown
    genders = Counter(p["gender"] or "unknown" for p in PEOPLE.values())
    assert {r["gender"]: r["customers"] for r in q["gender"]["rows"]} == dict(genders)
    assert q["cities"]["rows"][0] == {"city": "Paris", "customers": 3}  # the most customers first
    orders_per = Counter(o["email"] for o in ORDERS if o["email"])
    kinds = Counter("no order" if orders_per[e] == 0 else "new (one order)" if orders_per[e] == 1 else "returning"
                    for e in PEOPLE)
    assert {r["customer"]: r["customers"] for r in q["new_vs_returning"]["rows"]} == dict(kinds)
    filled = q["completeness"]["rows"][0]
    assert filled["birth_date"] == pytest.approx(sum(bool(p["birth"]) for p in PEOPLE.values()) / 8)
    assert filled["city"] == pytest.approx(sum(bool(p["city"]) for p in PEOPLE.values()) / 8)


def test_sales_figures_and_filters(ws):
    q = questions(ws, "sales")
    amounts = [float(o["amount"]) for o in ORDERS]
    fig = q["sales_figures"]["rows"][0]
    assert fig["revenue"] == pytest.approx(sum(amounts)) and fig["orders"] == len(ORDERS)
    assert fig["average_order_value"] == pytest.approx(sum(amounts) / len(amounts))
    assert fig["discounted_orders"] == pytest.approx(sum(float(o["discount"]) > 0 for o in ORDERS) / len(ORDERS))
    per_store: dict[str, float] = defaultdict(float)
    for o in ORDERS:
        per_store[o["store"] or "(no store)"] += float(o["amount"])
    assert {r["store"]: r["revenue"] for r in q["revenue_by_store"]["rows"]} == pytest.approx(dict(per_store))
    items = Counter()
    month = {o["order_id"]: o["day"][:7] for o in ORDERS}
    for line in rows(LINES):
        items[month[line["order_id"]]] += int(line["quantity"])
    assert {r["month"][:7]: r["items"] for r in q["items_by_month"]["rows"]} == dict(items)
    # the dashboard's filters narrow every question they concern
    q = questions(ws, "sales", {"period": "last_2_months", "channel": "web"})
    kept = [o for o in ORDERS if o["day"] > "2024-10-31" and o["channel"] == "web"]
    assert q["sales_figures"]["rows"][0]["orders"] == len(kept)
    assert q["sales_figures"]["filters"]["applied"] == ["period", "channel"]


def test_scores_dashboards_match_the_published_scores(ws):
    contacts = ws.adapter.to_arrow(ws.table("contacts")).to_pylist()
    rfm = questions(ws, "rfm")
    expected = Counter(c["score_rfm_segment"] for c in contacts if c["score_rfm_segment"])
    assert {r["rfm_segment"]: r["customers"] for r in rfm["rfm_customers"]["rows"]} == dict(expected)
    revenue: dict[str, float] = defaultdict(float)
    for c in contacts:
        if c["score_rfm_segment"]:
            revenue[c["score_rfm_segment"]] += c["score_orders_total_amount"] or 0
    assert {r["rfm_segment"]: r["revenue"] for r in rfm["rfm_revenue"]["rows"]} == pytest.approx(dict(revenue))
    retention = questions(ws, "retention")
    timing = Counter(c["score_purchase_timing"] for c in contacts if c["score_purchase_timing"])
    assert {r["purchase_timing"]: r["customers"] for r in retention["purchase_timing"]["rows"]} == dict(timing)
    # in the statuses' logical order, not by size or alphabet
    logical = ["recent purchase", "upcoming purchase", "overdue", "significantly overdue"]
    assert [r["purchase_timing"] for r in retention["purchase_timing"]["rows"]] == [x for x in logical if x in timing]
    # the workspace has no predictive scores: the chart says what is missing instead of failing
    assert "score_churn_risk" in retention["churn_risk"]["unavailable"]
    # the cohort triangle: tests/analytics/test_analyses.py
    assert retention["cohort_retention"]["columns"][0]["key"] == "months_after"


def test_stores_and_products_figures(ws):
    stores = questions(ws, "stores")["store_figures"]
    assert stores["chart"] == "table" and stores["spec"] is None
    expected = {}
    for s in ("S1", "S2"):
        mine = [o for o in ORDERS if o["store"] == s]
        expected[s] = (pytest.approx(sum(float(o["amount"]) for o in mine)), len(mine),
                       len({o["email"] for o in mine if o["email"]}))
    assert {r["store"]: (r["revenue"], r["orders"], r["customers"]) for r in stores["rows"]} == expected
    products = questions(ws, "products")
    category = {p["product_id"]: p["category"] for p in rows(PRODUCTS)}
    qty = Counter()
    for line in rows(LINES):
        qty[category[line["product_id"]]] += int(line["quantity"])
    assert [(r["category"], r["items"]) for r in products["top_categories"]["rows"]] == qty.most_common()


def test_engagement_without_events_says_so(ws):
    q = questions(ws, "engagement")
    assert all(x["unavailable"] == "this workspace has no dataset of events (a column with semantic: EventName)"
               for x in q.values())
    assert [d["unavailable"] for d in ws.dashboards() if d["name"] == "engagement"] == [3]


def test_csv_streams_every_row_beyond_the_chart(ws, monkeypatch):
    import tessera.analytics.dashboards as dashboards

    monkeypatch.setattr(dashboards, "CHART_ROWS", 5)
    q = {"name": "each", "dataset": "orders", "chart": "table", "dimensions": [{"column": "order_id"}],
         "measures": [{"fn": "sum", "column": "amount", "label": "amount, EUR"}]}
    result = ws.run_question(q)
    assert len(result["rows"]) == 5 and result["truncated"]
    text = b"".join(ws.question_csv(q)).decode()
    got = list(csv.reader(io.StringIO(text)))
    assert got[0] == ["order id", "amount, EUR"]
    assert {r[0]: float(r[1]) for r in got[1:]} == {o["order_id"]: float(o["amount"]) for o in ORDERS}


def test_png_and_svg_are_pictures_of_the_chart(ws):
    png = ws.question_picture(("my_sales", "by_channel_and_age"), "png")
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", png[16:24])
    assert width > 600 and height > 200
    svg = ws.question_picture(("my_sales", "by_channel_and_age"), "svg")
    root = ET.fromstring(svg)
    assert root.tag.endswith("svg")
    text = svg.decode()
    assert "Orders by channel and age of the customer" in text and "25-34" in text  # title and a band
    with pytest.raises(UsageError, match="a table has no picture"):
        ws.question_picture(("stores", "store_figures"), "png")
    with pytest.raises(UsageError, match="unknown picture format"):
        ws.question_picture(("my_sales", "revenue"), "gif")


def test_dashboards_prepared_after_a_run_serve_their_first_view(ws, monkeypatch):
    from tessera.analytics import dashboards, prepared

    names = ["sales", "rfm", "my_sales"]
    live = {n: ws.dashboard(n) for n in names}
    live_filters = ws.dashboard_filter_values()
    prepared.forget(ws.store)
    monkeypatch.delenv(prepared.ROWS_VARIABLE, raising=False)
    # a small shop: its dashboards are computed when viewed, there is nothing to prepare
    assert not ws.dashboards_need_preparing() and ws.prepare_dashboards() is None
    monkeypatch.setenv(prepared.ROWS_VARIABLE, "0")
    assert ws.dashboards_need_preparing()
    counts = ws.prepare_dashboards()
    assert counts["dashboards"] == len(ws.dashboards()) and counts["charts"] >= 30
    assert ws.store.get_state(*prepared.STATE)["results"]
    # the first view in another process: nothing in memory, the results kept
    dashboards._CACHE.clear()
    prepared.forget()
    for name in names:
        again = ws.dashboard(name)
        for before, after in zip(live[name]["questions"], again["questions"]):
            if before.get("unavailable"):  # a chart that cannot run here says why, as before
                assert after["unavailable"] == before["unavailable"]
                continue
            assert after["cached"] is True, (name, after["name"])
            assert after["rows"] == before["rows"] and after["spec"] == before["spec"]
    assert ws.dashboard_filter_values() == live_filters
    # a filter is computed when asked, the same as before
    assert ws.dashboard("sales", {"store": "S1"})["questions"][0]["cached"] is False
    # kept: nothing more to prepare until the next publication; an erasure forgets them
    assert not ws.dashboards_need_preparing() and ws.prepare_dashboards() is None
    dashboards.forget_results(ws.store)
    assert ws.store.get_state(*prepared.STATE) is None
    assert not ws.dashboard("sales")["questions"][0]["cached"]
    monkeypatch.setenv(prepared.ROWS_VARIABLE, "many")
    with pytest.raises(UsageError, match="TESSERA_PREPARE_DASHBOARDS_ROWS: 'many' is not a number"):
        ws.analytics().prepare()


def test_yaml_round_trip_and_custom_dashboards(ws, tmp_path):
    text = ws.export_config()
    assert "dashboards:" in text and "contacts.birth" in text
    other = make(tmp_path / "again", dashboards=False)
    (tmp_path / "exported.yaml").write_text(text)
    changes = other.apply(tmp_path / "exported.yaml")
    assert changes["added"] == ["dashboard my_sales"]
    assert other.export_config() == text
    other.save_dashboard({"name": "mine", "questions": [{"name": "n", "dataset": "orders", "chart": "number"}]})
    assert [d["name"] for d in other.dashboards() if d["kind"] == "custom"] == ["my_sales", "mine"]
    first = other.analytics().definition("mine")["version"]
    other.save_dashboard({"name": "mine", "title": "Mine", "questions": [
        {"name": "n", "dataset": "orders", "chart": "number"}]}, expected_version=first)
    with pytest.raises(VersionConflict, match=f"dashboard 'mine' changed since version {first}"):
        other.save_dashboard({"name": "mine", "questions": [{"name": "n", "dataset": "orders", "chart": "number"}]},
                             expected_version=first)
    with pytest.raises(VersionConflict):
        other.delete_dashboard("mine", expected_version=first)
    assert other.analytics().definition("mine")["title"] == "Mine"
    other.delete_dashboard("mine", expected_version=other.analytics().definition("mine")["version"])
    assert "mine" not in other.export_config()
    with pytest.raises(UsageError, match="default dashboard"):
        other.delete_dashboard("sales")
    with pytest.raises(NotFoundError):
        other.dashboard("nope")
    other.close()


def test_configuration_errors_name_their_place(ws, tmp_path):
    bad = """
    dashboards:
      - name: sales
        questions: [{name: a, dataset: orders, chart: number}]
      - name: broken
        questions:
          - {name: a, dataset: nowhere, chart: number}
          - name: b
            dataset: orders
            chart: stacked_bar
            dimensions: [{column: channel}]
          - {name: c, dataset: orders, dimensions: [{segment: nobody}]}
    """
    import textwrap

    from tessera.config.loader import load_yaml

    base = ws.export_config().split("dashboards:")[0]
    (tmp_path / "bad.yaml").write_text(base + textwrap.dedent(bad))
    with pytest.raises(ConfigError) as err:
        load_yaml(tmp_path / "bad.yaml")
    text = str(err.value)
    # the YAML line of the question, its path and the fix
    assert re.search(r"line \d+, dashboards\[1\]\.questions\[1\]: a stacked bar crosses two dimensions \(it has 1\)",
                     text)
    (tmp_path / "bad2.yaml").write_text(base + textwrap.dedent(bad).replace("chart: stacked_bar", "chart: bar"))
    with pytest.raises(ConfigError) as err:
        ws.apply(tmp_path / "bad2.yaml")
    problems = err.value.problems
    assert "dashboards[0] (sales).name: 'sales' is a default dashboard; give yours another name" in problems
    assert any(p.startswith("dashboards[1] (broken).questions[0] (a).dataset: unknown dataset 'nowhere'")
               for p in problems)
    assert any(p.startswith("dashboards[1] (broken).questions[2] (c).dimensions[0].segment: unknown segment")
               for p in problems)
    assert "dashboard my_sales" in ws.export_config().replace("- name: my_sales", "dashboard my_sales")


def test_bad_questions_are_refused_with_their_path(ws):
    with pytest.raises(ConfigError) as err:
        ws.run_question({"name": "q", "dataset": "orders", "dimensions": [{"column": "nope"}]})
    assert "question 'q'.dimensions[0].column: dataset 'orders' has no column 'nope'" in str(err.value)
    with pytest.raises(ConfigError) as err:
        ws.run_question({"name": "q", "dataset": "orders", "dimensions": [{"column": "channel", "band": "month"}]})
    assert "question 'q'.dimensions[0].band: month is a band of a date" in str(err.value)
    with pytest.raises(ConfigError) as err:
        ws.run_question({"name": "q", "dataset": "orders", "measures": [{"fn": "sum"}], "chart": "number"})
    assert "question.measures.0: sum needs a column" in str(err.value)
    with pytest.raises(UsageError, match="filter period"):
        ws.run_question({"name": "q", "dataset": "orders", "chart": "number"}, {"period": "yesterday"})
    assert AS_OF.year == 2024
