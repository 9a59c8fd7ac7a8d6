"""Fixtures of the privacy tests: a shop with a CRM file, an orders file and collected events.

``shop(syncs=None)`` makes a workspace (DuckDB, or the engine of the test) whose customers come
from ``data/crm_1.csv`` (Ana's record spans two lines: a quoted line break), whose orders point at
them by e-mail, and whose events (``web``) link by user id, anonymous id or e-mail; it is run
once. ``receiver`` is the webhook receiver of the sync tests.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "events"))

from privacy_helpers import CRM, ORDERS, Receiver, config  # noqa: E402


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

