"""The engagement score group on hand-made events with known answers."""

from __future__ import annotations

from datetime import date, datetime

import ibis
import pytest
from event_helpers import add_events, event, table_rows

from tessera.enrich.engagement import compute_engagement

AS_OF = date(2024, 12, 31)
FIELDS = {"EventTime": "at", "EventName": "event", "EventType": "type"}


def _events() -> dict:
    rows = [
        # A: visits on 30 and 31 December, email opens and a click, a cart left on the 30th
        ("A", "page", None, "2024-12-30 10:00"),
        ("A", "page", None, "2024-12-30 10:10"),
        ("A", "page", None, "2024-12-30 10:50"),  # 40 minutes later: a new session
        ("A", "track", "Product Added", "2024-12-30 10:55"),
        ("A", "page", None, "2024-12-31 09:00"),  # the next day: a new session
        ("A", "identify", None, "2024-12-28 12:00"),  # not a visit
        ("A", "track", "Email Opened", "2024-12-29 08:00"),  # email events are not visits either
        ("A", "track", "Email Opened", "2024-12-20 08:00"),
        ("A", "track", "Email Link Clicked", "2024-12-20 08:01"),
        ("A", "page", None, "2024-11-01 10:00"),  # outside the 30 days
        ("A", "page", None, "2025-01-02 10:00"),  # after as_of: ignored
        # B: carts
        ("B", "track", "Product Added", "2024-12-10 10:00"),
        ("B", "track", "Checkout Started", "2024-12-10 12:00"),  # the same cart, 2 hours later
        ("B", "track", "Order Completed", "2024-12-10 12:30"),  # bought: not abandoned
        ("B", "track", "Cart Viewed", "2024-12-15 10:00"),  # an order of the orders dataset that day
        ("B", "track", "Product Added", "2024-12-20 10:00"),  # abandoned
        ("B", "track", "product added", "2024-12-25 10:00"),  # ordered 25 hours later: abandoned
        ("B", "track", "Order Completed", "2024-12-26 11:00"),
        ("B", "track", "Checkout Started", "2024-12-31 08:00"),  # not 24 hours old yet: not abandoned yet
        # C: seen 46 days ago
        ("C", "page", None, "2024-11-15 10:00"),
        # D: email clicks only, at the window's first day; one open the day before it
        *[("D", "track", "email link clicked", "2024-12-02 09:00")] * 4,
        ("D", "track", "Email Opened", "2024-12-01 23:00"),
    ]
    return {"_customer": [r[0] for r in rows], "type": [r[1] for r in rows], "event": [r[2] for r in rows],
            "at": [datetime.fromisoformat(r[3]) for r in rows]}


@pytest.fixture(scope="module")
def scores():
    con = ibis.duckdb.connect()
    orders = ibis.memtable({"_customer": ["B"], "_start": [datetime(2024, 12, 15)], "_end": [datetime(2024, 12, 16)]})
    out = compute_engagement(ibis.memtable(_events()), FIELDS, as_of=AS_OF, orders=orders)
    return {r["_customer"]: r for r in con.to_pyarrow(out).to_pylist()}


def test_last_seen_page_views_and_email(scores):
    a = scores["A"]
    assert a["score_last_seen"] == datetime(2024, 12, 31, 9, 0)
    assert a["score_page_views_30d"] == 4
    assert a["score_email_opens_30d"] == 2 and a["score_email_clicks_30d"] == 1
    d = scores["D"]
    assert d["score_email_clicks_30d"] == 4 and d["score_email_opens_30d"] == 0  # 1 December is 31 days back


def test_sessions(scores):
    assert scores["A"]["score_sessions_30d"] == 3
    # B: 10:00, 12:00 (2 h later), 12:30 (a gap of exactly 30 minutes starts a session), then 5 more days
    assert scores["B"]["score_sessions_30d"] == 8
    assert scores["D"]["score_sessions_30d"] == 0  # email events are not visits


def test_abandoned_carts(scores):
    assert scores["A"]["score_abandoned_carts_30d"] == 1
    assert scores["B"]["score_abandoned_carts_30d"] == 2
    assert scores["C"]["score_abandoned_carts_30d"] == 0


def test_abandoned_cart_hours_setting():
    con = ibis.duckdb.connect()
    out = compute_engagement(ibis.memtable(_events()), FIELDS, as_of=AS_OF, abandoned_cart_hours=48)
    by = {r["_customer"]: r for r in con.to_pyarrow(out).to_pylist()}
    # 48 hours: the 25-hour order buys its cart; without the orders dataset the 15 December cart is
    # abandoned; the 30 December cart (A) is not 48 hours old yet
    assert by["B"]["score_abandoned_carts_30d"] == 2 and by["A"]["score_abandoned_carts_30d"] == 0


def test_engagement_score(scores):
    # A: recency 30 + sessions 3x5 + page views 4x2 + clicks 1x5 + opens 2x2
    assert scores["A"]["score_engagement"] == 30 + 15 + 8 + 5 + 4
    assert scores["B"]["score_engagement"] == 30 + 25  # sessions capped at 5
    assert scores["C"]["score_engagement"] == 0  # seen 46 days ago, nothing in the last 30 days
    assert scores["D"]["score_engagement"] == 1 + 15  # seen 29 days ago; clicks capped at 3


def test_without_event_type_page_views_are_named():
    con = ibis.duckdb.connect()
    ev = {"_customer": ["A", "A", "A"], "event": ["Page Viewed", "Screen Viewed", "Signed Up"],
          "at": [datetime(2024, 12, 30, 10), datetime(2024, 12, 30, 10, 1), datetime(2024, 12, 30, 10, 2)]}
    out = con.to_pyarrow(compute_engagement(ibis.memtable(ev), {"EventTime": "at", "EventName": "event"},
                                            as_of=AS_OF)).to_pylist()
    assert out[0]["score_page_views_30d"] == 2 and out[0]["score_sessions_30d"] == 1


# --------------------------------------------------------------------------- in a run, on every engine

CONFIG = """
connections:
  - {name: files, type: local, path: data}
  - {name: web, type: http, write_key: wk_web}
sources:
  - name: crm
    connection: files
    pattern: crm.csv
    record_keys: [customer_id]
  - name: shop_orders
    connection: files
    pattern: orders.csv
    record_keys: [order_id]
    types: {order_date: date, amount: float}
    relations: [{column: customer_id, to: contacts.customer_id}]
  - name: web_events
    connection: web
    record_keys: [message_id]
    relations:
      - {column: user_id, to: contacts.customer_id}
      - {column: anonymous_id, to: contacts.anonymous_id}
datasets:
  - name: contacts
    deduplicate: true
    identity_keys: [{column: customer_id, limit: 1}]
    mappings: [{source: crm, columns: {customer_id: customer_id, anonymous_id: cookie}}]
    scores:
      library: [engagement, order_stats]
      settings: {abandoned_cart_hours: 24, session_gap_minutes: 30}
    computed:
      - {name: engaged, sql: "score_engagement >= 50"}
  - name: orders
    mappings: [{source: shop_orders, columns: {order_id: order_id, order_date: order_date, amount: amount}}]
  - name: events
    mappings:
      - source: web_events
        columns: {message_id: message_id, type: type, event: event, timestamp: timestamp}
"""


def test_engagement_in_a_run(make_workspace):
    ws = make_workspace(CONFIG, {
        "crm.csv": "customer_id,cookie\nA,ca\nB,cb\nC,cc\n",
        "orders.csv": "order_id,customer_id,order_date,amount\no1,B,2024-12-15,20\n",
    })
    add_events(ws, [
        event("page", "2024-12-30 10:00:00", anon="ca"),
        event("page", "2024-12-30 10:10:00", anon="ca"),
        event("page", "2024-12-30 10:50:00", anon="ca"),
        event("track", "2024-12-30 10:55:00", anon="ca", user="A", event="Product Added"),
        event("track", "2024-12-29 08:00:00", user="A", event="Email Opened"),
        event("track", "2024-12-20 08:01:00", user="A", event="Email Link Clicked"),
        event("track", "2024-12-15 10:00:00", user="B", event="Cart Viewed"),  # bought that day (orders)
        event("track", "2024-12-20 10:00:00", user="B", event="Product Added"),
    ])
    result = ws.run(as_of=date(2024, 12, 31))
    assert result.datasets["contacts"]["scores"] == 2
    by = {r["customer_id"]: r for r in table_rows(ws, "contacts", "customer_id")}
    a, b, c = by["A"], by["B"], by["C"]
    assert a["score_last_seen"] == datetime(2024, 12, 30, 10, 55)
    assert (a["score_page_views_30d"], a["score_sessions_30d"], a["score_email_opens_30d"],
            a["score_email_clicks_30d"], a["score_abandoned_carts_30d"]) == (3, 2, 1, 1, 1)
    assert a["score_engagement"] == 29 + 10 + 6 + 5 + 2 and a["engaged"] is True
    assert b["score_abandoned_carts_30d"] == 1 and b["score_total_order_count"] == 1
    assert b["score_engagement"] == 19 + 10 and b["engaged"] is False
    # no events: counts and score are zero, never seen
    assert c["score_last_seen"] is None and c["score_engagement"] == 0 and c["score_page_views_30d"] == 0


def test_event_columns_suggest_their_semantic_fields():
    from tessera.normalize.semantic import suggest_semantic

    assert [suggest_semantic(c) for c in ("timestamp", "event", "type", "event_name", "occurred_at")] == [
        "EventTime", "EventName", "EventType", "EventName", "EventTime"]
    # inside longer names these words say nothing about events
    assert suggest_semantic("product_type") is None and suggest_semantic("created_timestamp") == "CreatedAt"
    assert suggest_semantic("timestamp", "float") is None


def test_engagement_needs_an_events_dataset_and_known_settings(make_workspace):
    from tessera.errors import ConfigError

    config = """
    connections: [{name: files, type: local, path: data}]
    sources: [{name: crm, connection: files, pattern: crm.csv, record_keys: [customer_id]}]
    datasets:
      - name: contacts
        mappings: [{source: crm, columns: {customer_id: customer_id}}]
        scores: {library: [engagement]}
    """
    ws = make_workspace(config, {"crm.csv": "customer_id\nA\n"})
    with pytest.raises(ConfigError, match="the engagement score needs an events dataset with an EventTime field"):
        ws.run(as_of=AS_OF)
    # a mistyped setting is refused when the configuration is applied, before any run
    with pytest.raises(ConfigError, match=r"scores.settings.abandoned_cart_hour: unknown setting; did you mean "
                                          r"'abandoned_cart_hours'\? \(known: "):
        make_workspace(config.replace("{library: [engagement]}",
                                      "{library: [engagement], settings: {abandoned_cart_hour: 2}}"),
                       {"crm.csv": "customer_id\nA\n"})
