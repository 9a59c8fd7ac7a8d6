"""Sync state of erased customers: the destinations are told to delete them.

When a customer is erased (:mod:`tessera.privacy.erase`), the keys each sync delivered for them
are marked ``pending = 'erase'`` in the sync's state table. At its next run the sync sends a
delete for each such key, whatever its mode (a webhook of an ``upsert`` sync receives the delete
too), and the key leaves the state once the destination took it; a delete that fails stays
marked and is retried. :func:`customer_state` gives what each sync holds for a customer (the
export's ``syncs`` section).
"""

from __future__ import annotations

import ibis

from tessera.syncs.plan import ERASE, state_table_name, work_table_name
from tessera.syncs.runner import STATE_SCOPE


def _keys(ws, sync, ids: list[str]) -> ibis.Table | None:
    if ws.adapter.published_target(sync.dataset) is None:
        return None
    table = ws.table(sync.dataset)
    if sync.key not in table.columns or "tessera_id" not in table.columns:
        return None
    own = table.filter(table.tessera_id.isin(ids))
    key = own[sync.key] if own[sync.key].type().is_string() else own[sync.key].cast("string")
    return own.select(_tessera_erased_key=key)


def _states_of(ws, dataset: str, ids: list[str]):
    """``(sync, state table name, state, the state's rows of ids)`` for each sync of ``dataset`` with a state."""
    for sync in ws.config.syncs:
        name = state_table_name(sync.name)
        if sync.dataset != dataset or not ws.adapter.exists(name):
            continue
        keys = _keys(ws, sync, ids)
        if keys is None:
            continue
        state = ws.adapter.table(name)
        yield sync, name, state, state.filter(state.key.isin(keys._tessera_erased_key))


def mark_erased(ws, dataset: str, ids: list[str]) -> list[dict]:
    """Mark the keys of ``ids`` in the state of every sync of ``dataset``; what was marked."""
    adapter = ws.adapter
    out = []
    for sync, name, state, matched in _states_of(ws, dataset, ids):
        n = adapter.count(matched)
        if n:
            work = work_table_name(sync.name, "erase")
            marked = adapter.create_table(work, matched.mutate(pending=ibis.literal(ERASE)), temp=True)
            adapter.delete_matching(name, matched, ["key"])
            adapter.append_query(name, marked.select(*state.columns))
            adapter.drop_table(work)
        meta = ws.store.get_state(STATE_SCOPE, sync.name) or {}
        if meta:
            # the dataset changed in place: the next run plans again instead of skipping
            ws.store.set_state(STATE_SCOPE, sync.name, {**meta, "published": None})
        out.append({"sync": sync.name, "keys": n})
    return out


def customer_state(ws, dataset: str, ids: list[str]) -> list[dict]:
    """What each sync of ``dataset`` holds for ``ids``: key, status, last sent, pending operation."""
    out = []
    for sync, _name, _state, matched in _states_of(ws, dataset, ids):
        rows = ws.adapter.to_arrow(matched.select("key", "status", "sent_at", "pending", "error",
                                                  "attempts")).to_pylist()
        for r in rows:
            out.append({"sync": sync.name, "connection": sync.connection, "mode": sync.mode, **{
                k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in r.items()}})
    return out
