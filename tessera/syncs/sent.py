"""What the syncs sent: of one record, each sync's last send (from its state table: its last send
of each key, with the time and whether the destination took it); of one sync, the records it
could not deliver, grouped by error."""

from __future__ import annotations

import ibis

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


def failures(ws, sync: str, limit: int = 10) -> dict:
    """The records a sync could not deliver (sent again at its next run), from its state table:
    ``{"records": N, "errors": [{"error", "records", "attempts"}]}``, the most frequent
    errors first."""
    table = state_table_name(sync)
    if not ws.adapter.exists(table):
        return {"records": 0, "errors": []}
    t = ws.adapter.table(table)
    failed = t.filter(t.status == "failed")
    grouped = (failed.group_by(error=failed.error.fill_null(""))
               .aggregate(records=failed.count(), attempts=failed.attempts.max())
               .order_by([ibis.desc("records"), "error"]).limit(limit))
    errors = ws.adapter.to_arrow(grouped).to_pylist()
    return {"records": sum(e["records"] for e in errors) if len(errors) < limit else ws.adapter.count(failed),
            "errors": errors}
