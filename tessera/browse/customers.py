"""Customers found by their ``tessera_id`` or by any identity value: an email, a phone, an id.

The value asked is normalized exactly as at import, by the same code: for each source mapped to
the identity column, its source rules (e.g. ``phone: {country: FR}`` turns ``06 12 34 56 78`` and
``+33 6 12 34 56 78`` into ``+33612345678``), then the dataset column's rules, then trimmed, all
computed by the engine in one query. The normalized values are then looked up in the records of
the unified dataset (``<dataset>__records``: every source record with its ``tessera_id``), so a
customer is found by an old address or a second phone too, not only by the value kept by the
merge rules.
"""

from __future__ import annotations

from typing import Any

import ibis

from tessera.browse.rows import plain
from tessera.errors import NotFoundError, UsageError
from tessera.normalize.rules import apply_rules

TID = "tessera_id"
KINDS = ("email", "phone", "id")
MAX_CUSTOMERS = 100


def _customer_dataset(config, dataset: str | None):
    name = dataset or next((d.name for d in config.datasets if d.deduplicate), None)
    ds = next((d for d in config.datasets if d.name == name), None)
    if ds is None:
        raise NotFoundError(f"unknown or missing customer dataset '{name}': name a deduplicated dataset "
                            f"(datasets: {', '.join(d.name for d in config.datasets) or 'none'})")
    return ds


def lookup_columns(ws, dataset: str | None, kind: str) -> list[str]:
    """The columns searched for an ``email``, a ``phone`` or an ``id``: the identity keys of that
    meaning (Email, Phone; for ``id`` the other identity keys and the columns mapped from the
    sources' record keys)."""
    if kind not in KINDS:
        raise UsageError(f"unknown kind of identity value '{kind}': use {', '.join(KINDS)}")
    config = ws.config
    ds = _customer_dataset(config, dataset)
    described = {c["column"]: c for c in ws.describe(ds.name)}
    keys = [k.column for k in ds.identity_keys]
    if kind in ("email", "phone"):
        wanted = "Email" if kind == "email" else "Phone"
        return [k for k in keys if (described.get(k) or {}).get("semantic") == wanted]
    others = [k for k in keys if (described.get(k) or {}).get("semantic") not in ("Email", "Phone")]
    record_keys = {(s.name, c) for s in config.sources for c in s.record_keys}
    mapped = [col for m in ds.mappings for col, src_col in m.columns.items() if (m.source, src_col) in record_keys]
    return list(dict.fromkeys([*others, *mapped]))


def lookup_values(ws, dataset: str | None, column: str, value: str) -> list[str]:
    """``value`` normalized as each source mapped to ``column`` normalizes it at import (distinct,
    empty results left out), computed in the engine by the rules of :mod:`tessera.normalize`."""
    config = ws.config
    ds = _customer_dataset(config, dataset)
    sources = {s.name: s for s in config.sources}
    declared = {c.name: c for c in ds.columns}
    dialect = ws.adapter.dialect
    exprs: dict[str, ibis.Value] = {}
    raw = ibis.literal(value, type="string")
    for i, m in enumerate(ds.mappings):
        if column not in m.columns or m.source not in sources:
            continue
        v = raw
        rules = sources[m.source].normalize.get(m.columns[column], [])
        if rules:
            v = apply_rules(v, rules, dialect)
        cfg = declared.get(column)
        if cfg is not None and cfg.normalize:
            v = apply_rules(v.cast("string") if not v.type().is_string() else v, cfg.normalize, dialect)
        exprs[f"v{i}"] = v.cast("string").strip()
    if not exprs:
        return [value.strip()] if value.strip() else []
    row = ws.adapter.to_arrow(ibis.memtable({"_one": [1]}).select(**exprs)).to_pylist()[0]
    return sorted({v for v in row.values() if v})


def find_customers(ws, *, email: str | None = None, phone: str | None = None, id: str | None = None,
                   tessera_id: str | None = None, dataset: str | None = None,
                   limit: int = 20) -> dict[str, Any]:
    """The unified customers with this identity value (one kind of value per call).

    Args:
        ws: the workspace (or its reader).
        email, phone, id: a value as a person would type it (normalized as at import).
        tessera_id: a unified id.
        dataset: the customer dataset (default: the first deduplicated dataset).
        limit: at most this many customers (1..100).

    Returns:
        ``{"data": [rows of the dataset], "count": n, "searched": {column: [normalized values]}}``.

    Raises:
        UsageError: none or several of the values given.
        NotFoundError: no such dataset, or it is not published yet.
    """
    given = {k: v for k, v in (("email", email), ("phone", phone), ("id", id), ("tessera_id", tessera_id))
             if v is not None and str(v).strip()}
    if len(given) != 1:
        raise UsageError("give one of email, phone, id or tessera_id, e.g. /api/customers?email=ada@example.com")
    (kind, value), = given.items()
    limit = min(max(int(limit), 1), MAX_CUSTOMERS)
    ds = _customer_dataset(ws.config, dataset)
    table = ws.table(ds.name)
    searched: dict[str, list[str]] = {}
    if kind == "tessera_id":
        ids = ibis.literal(value.strip()) == table[TID]
        found = table.filter(ids)
        searched[TID] = [value.strip()]
    else:
        columns = lookup_columns(ws, ds.name, kind)
        if kind == "id":
            searched[TID] = [value.strip()]
        for col in columns:
            searched[col] = lookup_values(ws, ds.name, col, value)
        source = f"{ds.name}__records"
        records = ws.table(source) if ws.adapter.published_target(source) is not None else table
        cond = None
        for col, values in searched.items():
            if col not in records.columns or not values:
                continue
            c = records[col].cast("string").isin(values)
            cond = c if cond is None else cond | c
        if cond is None:
            return {"data": [], "count": 0, "searched": searched}
        matched = records.filter(cond).select(_tessera_found=records[TID]).distinct()
        found = table.semi_join(matched, table[TID] == matched._tessera_found)
    rows = ws.adapter.to_arrow(found.order_by(TID).limit(limit)).to_pylist()
    return {"data": [{k: plain(v) for k, v in r.items()} for r in rows], "count": len(rows), "searched": searched}
