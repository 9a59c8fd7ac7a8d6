"""The suppression list: salted hashes of the identifiers of erased customers.

When a customer is erased, the salted SHA-256 of each of their normalized identifiers (e-mails,
phones, customer and anonymous ids) goes into the warehouse table ``_tessera_suppressed``. The
salt is a random value kept encrypted in the workspace's secrets (never in the warehouse), so the
list cannot be reversed by hashing a directory of e-mails without the workspace's key.

Every way data comes in checks the list, in the engine (a semi-join of the hashes, never a loop
over rows): a new raw batch of a file or database source loses its matching rows at import
(:func:`purge_batch`), and collected events are dropped before they are loaded
(:func:`drop_suppressed_events`). The counts go into the import and run summaries.
"""

from __future__ import annotations

import secrets as pysecrets
from datetime import datetime, timezone

import ibis
import ibis.expr.datatypes as dt
import pyarrow as pa

from tessera.config.models import SourceConfig, WorkspaceConfig
from tessera.engine.base import EngineAdapter
from tessera.privacy.identifiers import EVENT_ID_COLUMNS, any_of, digest, identifier_table, text

SUPPRESSED = "_tessera_suppressed"
SALT_SECRET = "tessera:privacy_salt"  # not a connection's field: apply never prunes it
SCHEMA = pa.schema([("hash", pa.string()), ("kind", pa.string()), ("request", pa.int64()),
                    ("suppressed_at", pa.timestamp("us"))])


def salt(box, *, create: bool = False) -> str | None:
    """The workspace's suppression salt (from its secrets); made on first use when ``create``."""
    if box.store.get_secret(SALT_SECRET) is None:
        if not create:
            return None
        box.put(SALT_SECRET, pysecrets.token_hex(32))
    return box.get(SALT_SECRET, where="the privacy salt")


def has_suppressions(adapter: EngineAdapter) -> bool:
    return adapter.exists(SUPPRESSED)


def hashes(adapter: EngineAdapter) -> ibis.Table:
    return adapter.table(SUPPRESSED).select("hash")


def add(adapter: EngineAdapter, values: ibis.Table, request: int) -> int:
    """Add the hashes of ``values`` (columns ``hash``, ``kind``) not listed yet; how many were new."""
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    new = values.filter(values.hash.notnull()).distinct()
    if adapter.exists(SUPPRESSED):
        new = new.anti_join(adapter.table(SUPPRESSED).select("hash"), "hash")
    new = new.select("hash", "kind", request=ibis.literal(request, dt.int64),
                     suppressed_at=ibis.literal(now, dt.timestamp))
    n = adapter.count(new)
    if n:
        if not adapter.exists(SUPPRESSED):
            adapter.create_table(SUPPRESSED, SCHEMA.empty_table())
        adapter.append_query(SUPPRESSED, new)
    return n


def listing(adapter: EngineAdapter, limit: int = 100) -> dict:
    """The suppression list as it may be shown: hash prefixes, kinds, requests; counts per kind."""
    if not adapter.exists(SUPPRESSED):
        return {"count": 0, "kinds": {}, "rows": []}
    t = adapter.table(SUPPRESSED)
    kinds = {r["kind"]: int(r["n"]) for r in adapter.to_arrow(t.group_by("kind").agg(n=t.count())).to_pylist()}
    rows = adapter.to_arrow(t.order_by([ibis.desc("suppressed_at"), "hash"]).limit(limit)).to_pylist()
    return {"count": sum(kinds.values()), "kinds": kinds,
            "rows": [{"hash": r["hash"][:16], "kind": r["kind"], "request": r["request"],
                      "suppressed_at": r["suppressed_at"].isoformat() if r["suppressed_at"] else None}
                     for r in rows]}


def is_listed(adapter: EngineAdapter, value: str, salt_value: str) -> bool:
    """Whether a normalized identifier is on the list."""
    if not adapter.exists(SUPPRESSED):
        return False
    t = adapter.table(SUPPRESSED)
    return bool(adapter.count(t.filter(t.hash == digest(text(ibis.literal(value, dt.string)), salt_value))))


def purge_batch(adapter: EngineAdapter, config: WorkspaceConfig, src: SourceConfig, name: str,
                salt_value: str) -> int:
    """Delete from raw batch ``name`` of ``src`` the rows of suppressed customers; how many.

    The identifiers are normalized into a work table first (normalization expressions are large:
    computed once), then hashed and semi-joined with the list."""
    work = f"_tessera_purge_{name}"[:63]
    ids, columns = identifier_table(adapter, config, src, adapter.table(name), work)
    if ids is None:
        return 0
    try:
        listed = hashes(adapter)
        matched = ids.filter(any_of([digest(text(ids[c]), salt_value).isin(listed.hash) for c in columns])
                             .fill_null(False))
        n = adapter.count(matched)
        if n:
            adapter.delete_matching(name, matched.select("_tessera_line"), ["_tessera_line"])
    finally:
        adapter.drop_table(work)
    return n


def event_condition(events: ibis.Table, listed: ibis.Table, salt_value: str) -> ibis.BooleanValue:
    return any_of([digest(text(events[c]), salt_value).isin(listed.hash) for c in EVENT_ID_COLUMNS
                   if c in events.columns]).fill_null(False)


def drop_suppressed_events(adapter: EngineAdapter, events: pa.Table, salt_value: str | None) -> tuple[pa.Table, int]:
    """The collected events of a load minus those of suppressed customers, and how many were dropped.

    The check is a semi-join in the engine of the batch (an in-memory table) with the list."""
    if salt_value is None or events.num_rows == 0 or not adapter.exists(SUPPRESSED):
        return events, 0
    batch = ibis.memtable(events)
    keep = batch.filter(~event_condition(batch, hashes(adapter), salt_value))
    kept = adapter.to_arrow(keep).cast(events.schema)
    return kept, events.num_rows - kept.num_rows
