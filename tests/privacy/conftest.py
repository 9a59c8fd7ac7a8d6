"""Fixtures of the privacy tests: a shop with a CRM file, an orders file and collected events.

``shop(syncs=None)`` makes a workspace (DuckDB, or the engine of the test) whose customers come
from ``data/crm_1.csv`` (Ana's record spans two lines: a quoted line break), whose orders point at
them by e-mail, and whose events (``web``) link by user id, anonymous id or e-mail; it is run
once. ``receiver`` is the webhook receiver of the sync tests.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "events"))

_spec = importlib.util.spec_from_file_location("sync_fixtures", HERE.parent / "syncs" / "conftest.py")
sync_fixtures = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(sync_fixtures)
Receiver, webhook_connection = sync_fixtures.Receiver, sync_fixtures.webhook_connection

CRM = (
    "customer_id,email,phone,first_name,note,email_optin,updated_at\n"
    "C1, Ana@Example.com ,06 12 34 56 78,Ana,\"likes\nred\",yes,2024-11-01 09:00:00\n"
    "C2,bo@example.com,0699887766,Bo,,no,2024-11-01 09:00:00\n"
    "C3,cy@example.com,,Cy,,yes,2024-11-01 09:00:00\n"
)
ORDERS = (
    "order_id,customer_email,amount\n"
    "O1,ana@example.com,10\n"
    "O2,bo@example.com,20\n"
    "O3,ANA@example.com,5\n"
    "O4,cy@example.com,7\n"
)


def config(syncs: list[dict] | None = None, connections: list[dict] | None = None) -> dict:
    return {
        "connections": [{"name": "files", "type": "local", "path": "data"},
                        {"name": "web", "type": "http", "write_key": "wk_web"}, *(connections or [])],
        "sources": [
            {"name": "crm", "connection": "files", "pattern": "crm*.csv", "record_keys": ["customer_id"],
             "types": {"updated_at": "timestamp"},
             "normalize": {"email": ["email"], "phone": [{"phone": {"country": "FR"}}]}},
            {"name": "orders", "connection": "files", "pattern": "orders*.csv", "record_keys": ["order_id"],
             "relations": [{"column": "customer_email", "to": "crm.email"}]},
            {"name": "web_identities", "connection": "web", "record_keys": ["message_id"],
             "filter": "user_id is not null or email is not null"},
            {"name": "web_events", "connection": "web", "record_keys": ["message_id"],
             "relations": [{"column": "user_id", "to": "contacts.customer_id"},
                           {"column": "anonymous_id", "to": "contacts.anonymous_id"},
                           {"column": "email", "to": "contacts.email"}]},
        ],
        "datasets": [
            {"name": "contacts", "deduplicate": True,
             "identity_keys": [{"column": "customer_id", "limit": 1}, {"column": "email"}, {"column": "phone"},
                               {"column": "anonymous_id"}],
             "date_column": "updated_at",
             "columns": [{"name": "customer_id", "semantic": "CustomerId"},
                         {"name": "email", "semantic": "Email", "merge": "non_null_most_recent"},
                         {"name": "anonymous_id", "semantic": "AnonymousId", "merge": "non_null_most_recent"},
                         {"name": "email_optin", "semantic": "EmailOptIn", "merge": "non_null_most_recent"},
                         {"name": "updated_at", "type": "timestamp", "merge": "max"}],
             "mappings": [
                 {"source": "crm", "columns": {"customer_id": "customer_id", "email": "email", "phone": "phone",
                                               "first_name": "first_name", "note": "note",
                                               "email_optin": "email_optin", "updated_at": "updated_at"}},
                 {"source": "web_identities", "columns": {"customer_id": "user_id", "email": "email",
                                                          "anonymous_id": "anonymous_id",
                                                          "first_name": "traits.first_name",
                                                          "updated_at": "timestamp"}}]},
            {"name": "orders", "mappings": [{"source": "orders", "columns": {
                "order_id": "order_id", "customer_email": "customer_email", "amount": "amount"}}]},
            {"name": "events", "mappings": [{"source": "web_events", "columns": {
                "message_id": "message_id", "type": "type", "event": "event", "at": "timestamp",
                "user_id": "user_id", "anonymous_id": "anonymous_id", "email": "email"}}]},
        ],
        "syncs": syncs or [],
    }


@pytest.fixture
def shop(make_workspace, tmp_path):
    """``shop(syncs=None, connections=None, events=None)``: the shop, run once."""
    from event_helpers import add_events, event

    def make(syncs: list[dict] | None = None, connections: list[dict] | None = None, events=None):
        ws = make_workspace(None, {"crm_1.csv": CRM, "orders_1.csv": ORDERS})
        cfg = config(syncs, connections)
        cfg["connections"][0]["path"] = str(tmp_path / "data")
        ws.apply(cfg)
        add_events(ws, events if events is not None else [
            event("identify", "2024-12-01 10:10:00", anon="a1", user="C1", email="ana@example.com",
                  message_id="i1", traits={"first_name": "Ana"}),
            event("page", "2024-12-01 10:00:00", anon="a1", message_id="p1"),
            event("track", "2024-12-01 10:20:00", user="C2", event="Order Completed", message_id="t1"),
        ])
        ws.run()
        return ws

    return make


@pytest.fixture
def receiver(monkeypatch):
    from tessera.connectors import webhook

    monkeypatch.setattr(webhook, "BACKOFF_BASE", 0.01)
    r = Receiver().start()
    yield r
    r.stop()


def customer(ws, customer_id: str) -> dict:
    t = ws.table("contacts")
    rows = ws.adapter.to_arrow(t.filter(t.customer_id == customer_id)).to_pylist()
    return rows[0] if rows else None
