"""Hand-made collected events for the event tests.

Events are appended to ``_tessera_events`` exactly as the collection API stores them (one row per
event, JSON objects as text, times as naive UTC timestamps, plus the log offset), so these tests
do not need the server.
"""

from __future__ import annotations

import json
from datetime import datetime
from itertools import count

import pyarrow as pa

EVENTS_TABLE = "_tessera_events"
_TEXT = ["message_id", "connection", "type", "event", "name", "user_id", "anonymous_id", "previous_id",
         "group_id", "email"]
_TIMES = ["timestamp", "original_timestamp", "sent_at", "received_at"]
_JSON = ["properties", "traits", "context", "integrations", "extra"]
_ids = count(1)


def event(kind: str, at: str, *, user: str | None = None, anon: str | None = None, prev: str | None = None,
          event: str | None = None, name: str | None = None, email: str | None = None, group: str | None = None,
          traits: dict | None = None, properties: dict | None = None, context: dict | None = None,
          connection: str = "web", message_id: str | None = None, received: str | None = None,
          extra: dict | None = None) -> dict:
    """One collected event; ``at`` is its time ("2024-12-01 10:00")."""
    when = datetime.fromisoformat(at)
    return {
        "message_id": f"m{next(_ids)}" if message_id is None else message_id, "connection": connection,
        "type": kind, "event": event,
        "name": name, "user_id": user, "anonymous_id": anon, "previous_id": prev, "group_id": group,
        "email": email, "timestamp": when, "original_timestamp": when, "sent_at": when,
        "received_at": datetime.fromisoformat(received) if received else when,
        "properties": json.dumps(properties or {}), "traits": json.dumps(traits or {}),
        "context": json.dumps(context or {}), "integrations": "{}", "extra": json.dumps(extra) if extra else None,
    }


def events_table(rows: list[dict], first_offset: int = 0) -> pa.Table:
    cols = {c: pa.array([r[c] for r in rows], pa.string()) for c in _TEXT}
    cols.update({c: pa.array([r[c] for r in rows], pa.timestamp("us")) for c in _TIMES})
    cols.update({c: pa.array([r[c] for r in rows], pa.string()) for c in _JSON})
    cols["log_offset"] = pa.array(range(first_offset, first_offset + len(rows)), pa.int64())
    ordered = [*_TEXT[:10], *_TIMES, *_JSON, "log_offset"]
    return pa.table({c: cols[c] for c in ordered})


def add_events(ws, rows: list[dict]) -> None:
    """Append collected events to the workspace's warehouse."""
    ws.adapter.append(EVENTS_TABLE, events_table(rows))


def table_rows(ws, name: str, order_by="message_id") -> list[dict]:
    t = ws.table(name)
    if order_by:
        t = t.order_by(order_by)
    return ws.adapter.to_arrow(t).to_pylist()
