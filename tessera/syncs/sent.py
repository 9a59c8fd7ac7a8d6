"""What the syncs last sent of one record: read from each sync's state table (its last send of
each key, with the time and whether the destination took it)."""

from __future__ import annotations

from tessera.syncs.plan import state_table_name


def sends_of(ws, dataset: str, record: dict) -> list[dict]:
    """The last send of ``record`` (a row of ``dataset``) by each sync of that dataset:
    ``[{"sync", "at", "status", "error", "connection"}]``, newest first; syncs that never sent it
    are left out."""
    out = []
    for sync in ws.config.syncs:
        value = record.get(sync.key)
        table = state_table_name(sync.name)
        if sync.dataset != dataset or value is None or not ws.adapter.exists(table):
            continue
        t = ws.adapter.table(table)
        rows = ws.adapter.to_arrow(t.filter((t.key == str(value)) & t.sent_at.notnull())
                                   .select("sent_at", "status", "error").limit(1)).to_pylist()
        for r in rows:
            out.append({"sync": sync.name, "at": r["sent_at"].isoformat() if r["sent_at"] else None,
                        "status": r["status"], "error": r["error"], "connection": sync.connection})
    out.sort(key=lambda s: s["at"] or "", reverse=True)
    return out
