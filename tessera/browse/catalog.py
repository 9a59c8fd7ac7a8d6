"""The source catalog: each source with its connection, what it reads, its record keys, columns
seen so far, imported files and rejected rows (one source in full: ``Workspace.source``)."""

from __future__ import annotations

from typing import Any


def source_list(ws) -> list[dict[str, Any]]:
    """Every source with a summary: connection, what it reads, record keys, columns seen, files
    imported, rows rejected and the datasets it feeds."""
    config = ws.config
    conns = {c.name: c for c in config.connections}
    files = ws.store.list_imported_files()
    out = []
    for src in config.sources:
        mine = [f for f in files if f["source"] == src.name]
        out.append({
            "name": src.name, "connection": src.connection,
            "connection_type": conns[src.connection].type if src.connection in conns else None,
            "what": src.pattern or src.table or src.query or "(collected events)",
            "record_keys": list(src.record_keys),
            "columns": len(ws.store.get_source_schema(src.name)),
            "files": len(mine), "rows": sum(f.get("rows") or 0 for f in mine),
            "rejected": sum(f.get("rejected") or 0 for f in mine),
            "datasets": [d.name for d in config.datasets if any(m.source == src.name for m in d.mappings)],
        })
    return out
