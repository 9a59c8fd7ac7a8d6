"""Fixtures of the sync tests: a workspace on a local CSV of contacts, and a webhook receiver.

``make_ws(syncs, connections)`` builds a workspace (the shared ``make_workspace``, run once) whose
dataset ``contacts`` is fed by ``data/contacts.csv`` (import strategy ``full``: the latest file
is the whole source). ``change(ws, text)`` rewrites that file and runs the pipeline again.

``receiver`` is a webhook receiver (``http.server`` in a thread on 127.0.0.1, port 0) that
checks the HMAC signature of every request and keeps what it received.
"""

from __future__ import annotations

import pytest

from sync_helpers import CONTACTS, Receiver, config
from tessera.workspace import Workspace


@pytest.fixture
def make_ws(make_workspace, tmp_path):
    """``make_ws(syncs, connections=None, contacts=CONTACTS, warehouse=None)``: a workspace of the
    shared factory (tests/conftest.py), run once."""

    def make(syncs: list[dict], connections: list[dict] | None = None, contacts: str = CONTACTS,
             warehouse: str | None = None) -> Workspace:
        return make_workspace(config(tmp_path, syncs, connections), {"contacts.csv": contacts}, warehouse=warehouse,
                              run=True, path=tmp_path / "ws")

    return make


@pytest.fixture
def change(tmp_path):
    """``change(ws, contacts_text)``: a new source file, then a pipeline run."""

    def run(ws: Workspace, contacts: str) -> None:
        (tmp_path / "data" / "contacts.csv").write_text(contacts)
        ws.run()

    return run


@pytest.fixture
def receiver(monkeypatch):
    from tessera.connectors import webhook

    monkeypatch.setattr(webhook, "BACKOFF_BASE", 0.01)  # retries without waiting seconds
    r = Receiver().start()
    yield r
    r.stop()
