"""Identity stitching: anonymous visitors merged into known customers through the identity graph.

A contacts dataset is fed by a CRM file and by the identities carried by events (userId, email,
anonymousId); an events dataset links each event to its contact by user id, anonymous id or email.
"""

from __future__ import annotations

from datetime import datetime

from event_helpers import add_events, event, table_rows

CRM = (
    "customer_id,email,first_name,updated_at\n"
    "C1,ana@example.com,Ana,2024-11-01 09:00:00\n"
    "C2,bo@example.com,Bo,2024-11-01 09:00:00\n"
    "C3,cy@example.com,Cy,2024-11-01 09:00:00\n"
    "C4,di@example.com,Di,2024-11-01 09:00:00\n"
)

CONFIG = """
connections:
  - {name: files, type: local, path: data}
  - {name: web, type: http, write_key: wk_web}
sources:
  - name: crm
    connection: files
    pattern: crm.csv
    record_keys: [customer_id]
    types: {updated_at: timestamp}
    normalize: {email: [email]}
  - name: web_identities
    connection: web
    record_keys: [message_id]
    filter: "user_id is not null or email is not null"
  - name: web_events
    connection: web
    record_keys: [message_id]
    relations:
      - {column: user_id, to: contacts.customer_id}
      - {column: anonymous_id, to: contacts.anonymous_id}
      - {column: email, to: contacts.email}
datasets:
  - name: contacts
    deduplicate: true
    identity_keys: [{column: customer_id, limit: 1}, {column: email}, {column: anonymous_id}]
    date_column: updated_at
    columns:
      - {name: customer_id, semantic: CustomerId}
      # events carry few attributes: a newer event without a value keeps the one known
      - {name: email, semantic: Email, merge: non_null_most_recent}
      - {name: anonymous_id, semantic: AnonymousId, merge: non_null_most_recent}
      - {name: first_name, merge: non_null_most_recent}
      - {name: plan, merge: non_null_most_recent}
      - {name: updated_at, type: timestamp, merge: max}
    mappings:
      - source: crm
        columns: {customer_id: customer_id, email: email, first_name: first_name, updated_at: updated_at}
      - source: web_identities
        columns: {customer_id: user_id, email: email, anonymous_id: anonymous_id,
                  first_name: traits.first_name, plan: traits.plan, updated_at: timestamp}
  - name: events
    mappings:
      - source: web_events
        columns: {message_id: message_id, type: type, event: event, at: timestamp, user_id: user_id,
                  anonymous_id: anonymous_id, email: email}
"""


def contacts_by_customer(ws) -> dict[str, dict]:
    return {r["customer_id"]: r for r in table_rows(ws, "contacts", "tessera_id") if r["customer_id"]}


def links(ws) -> dict[str, str | None]:
    return {r["message_id"]: r["tessera_contacts_id"] for r in table_rows(ws, "events")}


def test_anonymous_page_views_join_the_customer_once_identified(make_workspace):
    ws = make_workspace(CONFIG, {"crm.csv": CRM})
    add_events(ws, [
        event("page", "2024-12-01 10:00:00", anon="a1", message_id="p1"),
        event("page", "2024-12-01 10:05:00", anon="a1", message_id="p2"),
    ])
    ws.run()
    assert links(ws) == {"p1": None, "p2": None}  # nobody knows who a1 is yet
    add_events(ws, [
        event("identify", "2024-12-01 10:10:00", anon="a1", user="C1", message_id="i1",
              traits={"first_name": "Anna", "plan": "pro"}),
        event("track", "2024-12-02 08:00:00", anon="a1", user="C1", event="Product Added", message_id="t1"),
    ])
    ws.run()
    contacts = contacts_by_customer(ws)
    ana = contacts["C1"]
    # the CRM record, the identify and the track carrying C1 are one contact
    assert ana["tessera_record_count"] == 3 and ana["anonymous_id"] == "a1"
    # merges are retroactive: the page views seen before the identify now belong to Ana
    assert links(ws) == {"p1": ana["tessera_id"], "p2": ana["tessera_id"], "i1": ana["tessera_id"],
                         "t1": ana["tessera_id"]}
    # identify traits update the contact (newer than the CRM's update); the later track has no traits
    assert ana["first_name"] == "Anna" and ana["plan"] == "pro"
    assert ana["updated_at"] == datetime(2024, 12, 2, 8, 0)
    assert contacts["C2"]["first_name"] == "Bo" and contacts["C2"]["tessera_record_count"] == 1
    assert len(table_rows(ws, "contacts", None)) == 4


def test_alias_links_the_previous_id_to_the_user(make_workspace):
    ws = make_workspace(CONFIG, {"crm.csv": CRM})
    add_events(ws, [
        event("page", "2024-12-01 10:00:00", anon="a2", message_id="p1"),
        event("alias", "2024-12-01 10:01:00", prev="a2", user="C2", message_id="al"),
        event("page", "2024-12-01 10:02:00", anon="a3", message_id="p2"),  # never aliased
    ])
    ws.run()
    bo = contacts_by_customer(ws)["C2"]
    assert bo["anonymous_id"] == "a2"
    assert links(ws) == {"p1": bo["tessera_id"], "al": bo["tessera_id"], "p2": None}


def test_a_shared_device_does_not_merge_two_customers(make_workspace):
    ws = make_workspace(CONFIG, {"crm.csv": CRM})
    add_events(ws, [
        # one browser (anonymous id d) used by Cy, then by Di
        event("identify", "2024-12-01 10:00:00", anon="d", user="C3", message_id="i3"),
        event("page", "2024-12-01 10:01:00", anon="d", user="C3", message_id="p3"),
        event("identify", "2024-12-01 18:00:00", anon="d", user="C4", message_id="i4"),
        event("page", "2024-12-01 18:01:00", anon="d", user="C4", message_id="p4"),
        event("page", "2024-12-02 09:00:00", anon="d", message_id="pd"),  # logged out: who is it?
    ])
    result = ws.run()
    contacts = contacts_by_customer(ws)
    cy, di = contacts["C3"], contacts["C4"]
    assert cy["tessera_id"] != di["tessera_id"]
    assert cy["tessera_record_count"] == 3 and di["tessera_record_count"] == 3
    assert cy["email"] == "cy@example.com" and di["email"] == "di@example.com"
    assert result.datasets["contacts"]["refused_by_limits"] > 0
    got = links(ws)
    assert got["p3"] == cy["tessera_id"] and got["p4"] == di["tessera_id"]
    assert got["pd"] is None  # an anonymous id shared by two customers links to neither


def test_placeholder_ids_link_nothing(make_workspace):
    ws = make_workspace(CONFIG, {"crm.csv": CRM})
    add_events(ws, [
        # broken tracking code sends placeholders as ids
        event("identify", "2024-12-01 10:00:00", anon="undefined", user="C1", message_id="i1"),
        event("identify", "2024-12-01 10:00:00", anon="anonymous", user="C2", message_id="i2"),
        event("identify", "2024-12-01 10:00:00", anon="null", user="0", email="x@example.com", message_id="i3"),
        event("identify", "2024-12-01 10:00:00", anon="0", user="NULL", email="y@example.com", message_id="i4"),
        event("page", "2024-12-01 10:05:00", anon="undefined", message_id="p1"),
        event("page", "2024-12-01 10:05:00", anon="anonymous", user="undefined", message_id="p2"),
        event("page", "2024-12-01 10:05:00", anon="0", message_id="p3"),
    ])
    ws.run()
    contacts = table_rows(ws, "contacts", "tessera_id")
    by_email = {r["email"]: r for r in contacts}
    assert len(contacts) == 6  # C1..C4, x and y: nobody merged through a placeholder
    assert by_email["x@example.com"]["customer_id"] is None and by_email["x@example.com"]["anonymous_id"] is None
    assert by_email["ana@example.com"]["anonymous_id"] is None
    got = links(ws)
    assert got["i1"] == by_email["ana@example.com"]["tessera_id"]
    assert got["i3"] == by_email["x@example.com"]["tessera_id"]
    assert got["p1"] is None and got["p2"] is None and got["p3"] is None


def test_placeholder_ids_of_other_sources_never_merge(make_workspace):
    """The same placeholders are blocked identity values for every source, e.g. a CSV export."""
    config = CONFIG.replace("      - source: crm\n        columns: {customer_id: customer_id,",
                            "      - source: crm\n        columns: {anonymous_id: cookie, customer_id: customer_id,")
    crm = ("customer_id,email,first_name,updated_at,cookie\n"
           "C1,ana@example.com,Ana,2024-11-01 09:00:00,undefined\n"
           "C2,bo@example.com,Bo,2024-11-01 09:00:00,Undefined\n"
           "C3,cy@example.com,Cy,2024-11-01 09:00:00,[object Object]\n"
           "C4,di@example.com,Di,2024-11-01 09:00:00,[object Object]\n")
    ws = make_workspace(config, {"crm.csv": crm})
    result = ws.run()
    assert len(table_rows(ws, "contacts", None)) == 4
    assert result.datasets["contacts"]["refused_by_limits"] == 0  # blocked before any merge was tried
