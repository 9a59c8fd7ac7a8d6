"""Customer search as you type and the customer 360 page, as HTML over the ASGI app."""

from __future__ import annotations

import json
import re
from html import unescape

import pytest


@pytest.fixture(scope="module")
def merged(web):
    """A customer merged from several source records, with an email, a phone and orders."""

    def pick(ws):
        t = ws.table("contacts")
        q = t.filter((t.tessera_record_count >= 2) & t.email.notnull() & t.phone.notnull()
                     & (t.score_total_order_count >= 2)).order_by("tessera_id").limit(1)
        row = ws.adapter.to_arrow(q).to_pylist()[0]
        records = ws.table("contacts__records")
        ids = ws.adapter.to_arrow(records.filter(records.tessera_id == row["tessera_id"]).select("_tessera_record")).to_pylist()
        return row, [r["_tessera_record"] for r in ids]

    return web.app.state.owner.read(pick)


def result_ids(html: str) -> list[str]:
    return re.findall(r'href="/customers/(T[0-9a-f]+)"', html)


def test_search_by_email_phone_name_and_any_id(web, merged):
    row, records = merged
    client = web.client("viewer")
    for text in (row["email"].upper(), row["phone"][-8:], f"{row['last_name']} {row['first_name'][:3]}",
                 records[0].split(":", 1)[1], row["tessera_id"]):
        page = client.get("/customers/search", params={"q": text})
        assert page.status_code == 200
        assert row["tessera_id"] in result_ids(page.text), text


def test_search_without_a_match_says_so_and_short_text_asks_for_more(web):
    client = web.client("viewer")
    assert "No customer matches" in client.get("/customers/search", params={"q": "zzqx-nobody"}).text
    assert "at least two characters" in client.get("/customers/search", params={"q": "a"}).text


def test_the_search_page_works_without_javascript(web, merged):
    row, _ = merged
    page = web.client("viewer").get("/customers", params={"q": row["email"]})
    assert 'hx-get="/customers/search"' in page.text
    assert row["tessera_id"] in result_ids(page.text)


def test_customer_360_shows_identities_graph_timeline_scores_and_segments(web, merged):
    row, records = merged
    page = web.client("viewer").get(f"/customers/{row['tessera_id']}")
    assert page.status_code == 200
    html = page.text
    header = html[html.index('id="header"'):html.index('id="segments"')]
    assert row["email"] in header and row["phone"] in header
    assert all(r in header for r in records), "every source record is an identity"
    graph = html[html.index('id="graph"'):html.index('id="charts"')]
    assert graph.count("<circle") == len(records)
    assert graph.count("<line") == len(records) - 1, "a tree of merges links n records with n - 1 edges"
    timeline = html[html.index('id="timeline"'):html.index('id="attributes"')]
    dates = re.findall(r"<li><span>(\d{4}-\d\d-\d\d \d\d:\d\d)</span>", timeline)
    assert len(dates) >= row["score_total_order_count"]
    assert dates == sorted(dates, reverse=True), "newest first"
    attributes = html[html.index('id="attributes"'):html.index('id="scores"')]
    assert re.search(r"<td>email</td><td>[^<]+</td>\s*<td class=\"small\">(crm_contacts|eshop_customers|pos_customers)<br>",
                     attributes), "an attribute names the source it came from"
    scores = html[html.index('id="scores"'):]
    assert "rfm_segment" in scores and "Group from the RFM digits" in scores
    assert f'hx-get="/customers/{row["tessera_id"]}/charts" hx-trigger="load"' in html


def test_the_charts_of_a_customer(web, merged):
    row, _ = merged
    html = web.client("viewer").get(f"/customers/{row['tessera_id']}/charts").text
    specs = [json.loads(unescape(s)) for s in re.findall(r'data-spec="([^"]+)"', html)]
    spend = next(s for s in specs if s["mark"]["type"] == "bar" and s["encoding"]["x"].get("timeUnit"))
    total = sum(v["amount"] for v in spend["data"]["values"])
    assert round(total, 2) == round(row["score_orders_total_amount"], 2)
    assert sum(v["orders"] for v in spend["data"]["values"]) == row["score_total_order_count"]
    assert "<html" not in html


def test_the_timeline_keeps_the_date_range(web, merged):
    row, _ = merged
    client = web.client("viewer")
    everything = client.get(f"/customers/{row['tessera_id']}").text
    dates = sorted(re.findall(r"<li><span>(\d{4}-\d\d-\d\d)", everything))
    first = dates[0]
    only_first_day = client.get(f"/customers/{row['tessera_id']}", params={"since": first, "until": first}).text
    kept = re.findall(r"<li><span>(\d{4}-\d\d-\d\d)", only_first_day)
    assert kept and set(kept) == {first}
    bad = client.get(f"/customers/{row['tessera_id']}", params={"since": "yesterday"})
    assert bad.status_code == 400 and "is not a date: use YYYY-MM-DD" in bad.text


def test_an_unknown_customer_is_a_404_page(web):
    page = web.client("viewer").get("/customers/Tnope")
    assert page.status_code == 404
    assert "no record Tnope" in page.text
