"""The same sync on every warehouse engine: DuckDB always, PostgreSQL with --postgres, Spark with
--spark (the ``engine`` fixture of tests/conftest.py)."""

from __future__ import annotations

import csv
import io

from sync_helpers import CONTACTS, webhook_connection
from tessera.syncs import run_syncs


def test_plan_state_and_retries_on_every_engine(engine, make_ws, change, receiver, tmp_path):
    syncs = [
        {"name": "to_files", "dataset": "contacts", "connection": "out", "key": "crm_id", "mode": "mirror",
         "filter": "amount > 5 or city = 'Paris'", "fields": {"id": "crm_id", "town": "city", "amount": "amount"}},
        {"name": "to_hook", "dataset": "contacts", "connection": "hook", "key": "crm_id", "mode": "mirror",
         "fields": {"id": "crm_id", "town": "city"}},
    ]
    conns = [{"name": "out", "type": "local", "path": str(tmp_path / "out"), "requires_consent": ["email"]},
             webhook_connection(receiver.url)]
    receiver.record_error = lambda r: "refused" if r["key"] == "3" else None
    ws = make_ws(syncs, conns, warehouse=engine)
    files, hook = run_syncs(ws)
    assert files.status == "succeeded", files.errors
    assert files.inserted == 3  # Bob has not opted in
    assert (hook.inserted, hook.failed) == (3, 1)
    receiver.record_error = None
    change(ws, CONTACTS.replace("Lyon,false,20", "Lyon,true,20").replace("Nice,yes,7", "Nice,yes,8")
           .replace("1,ann@example.com,Ann,Paris,true,10.5\n", ""))
    files, hook = run_syncs(ws)
    assert (files.inserted, files.updated, files.deleted, files.unchanged) == (1, 1, 1, 1)
    newest = sorted((tmp_path / "out").glob("to_files_*.csv"))[-1]
    rows = sorted((r["_tessera_op"], r["id"]) for r in csv.DictReader(io.StringIO(newest.read_text())))
    assert rows == [("delete", "1"), ("insert", "2"), ("update", "4")]
    assert (hook.inserted, hook.deleted, hook.retried, hook.failed) == (1, 1, 1, 0)
    again = run_syncs(ws)
    assert [(r.inserted, r.updated, r.deleted, r.failed) for r in again] == [(0, 0, 0, 0)] * 2
