"""Helpers of the privacy tests: the shop's files and configuration, and the webhook receiver
of the sync tests (tests/syncs/sync_helpers.py, loaded under another name)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

HERE = Path(__file__).resolve().parent

_spec = importlib.util.spec_from_file_location("sync_fixtures", HERE.parent / "syncs" / "sync_helpers.py")
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


def customer(ws, customer_id: str) -> dict:
    t = ws.table("contacts")
    rows = ws.adapter.to_arrow(t.filter(t.customer_id == customer_id)).to_pylist()
    return rows[0] if rows else None
