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

import re
from dataclasses import dataclass
from typing import Any

import ibis

from tessera.browse.rows import plain
from tessera.engine.base import Prepared, param
from tessera.errors import EngineError, NotFoundError, UsageError
from tessera.config.models import NULL_LIKE_DEFAULT
from tessera.normalize.phone import DEFAULT_COUNTRY, e164_python
from tessera.normalize.rules import _PY_WS, apply_rules
from tessera.normalize.semantic import suggest_semantic

TID = "tessera_id"
KINDS = ("email", "phone", "id")
MAX_CUSTOMERS = 100
MAX_RECORDS = 10_000  # source records read per value looked up (a value shared by more is a placeholder)
_SQL_WS = " \t\n\r\x0b\x0c"  # what the engine's strip() removes (not the non-breaking spaces the trim rule removes)


def _customer_dataset(config, dataset: str | None):
    name = dataset or next((d.name for d in config.datasets if d.deduplicate), None)
    ds = next((d for d in config.datasets if d.name == name), None)
    if ds is None:
        raise NotFoundError(f"unknown or missing customer dataset '{name}': name a deduplicated dataset "
                            f"(datasets: {', '.join(d.name for d in config.datasets) or 'none'})")
    return ds


def lookup_columns(ws, dataset: str | None, kind: str, config=None) -> list[str]:
    """The columns searched for an ``email``, a ``phone`` or an ``id``: the identity keys of that
    meaning (their semantic field Email, Phone, declared or suggested from the name; for ``id``
    the other identity keys and the columns mapped from the sources' record keys)."""
    if kind not in KINDS:
        raise UsageError(f"unknown kind of identity value '{kind}': use {', '.join(KINDS)}")
    config = config or ws.config
    ds = _customer_dataset(config, dataset)
    declared = {c.name: c.semantic for c in ds.columns}
    semantic = {k.column: declared.get(k.column) or suggest_semantic(k.column) for k in ds.identity_keys}
    if kind in ("email", "phone"):
        wanted = "Email" if kind == "email" else "Phone"
        return [k for k, s in semantic.items() if s == wanted]
    others = [k for k, s in semantic.items() if s not in ("Email", "Phone")]
    record_keys = {(s.name, c) for s in config.sources for c in s.record_keys}
    mapped = [col for m in ds.mappings for col, src_col in m.columns.items() if (m.source, src_col) in record_keys]
    return list(dict.fromkeys([*others, *mapped]))


def _in_python(value: str | None, rules) -> tuple[bool, str | None]:
    """``value`` through ``rules`` with the Python twins of the engine's rules (trim, lower, upper,
    null-like, email, phone: tests/api/test_customers.py checks they agree with the engine), or
    ``(False, None)`` when a rule has no twin. A lookup is one value: the phone rule's SQL, built
    from every calling code's patterns, costs more to compile than the lookup itself."""
    for rule in rules:
        if value is None:
            return True, None
        kind = rule.kind
        if kind == "trim":
            value = value.strip(_PY_WS)
        elif kind == "lower":
            value = value.lower()
        elif kind == "upper":
            value = value.upper()
        elif kind == "null_like":
            keys = {str(v).strip(_PY_WS).upper() for v in (NULL_LIKE_DEFAULT if rule.null_like is True
                                                            else rule.null_like)}
            value = None if value.strip(_PY_WS).upper() in keys else value
        elif kind == "email":
            value = re.sub(f"^[{_PY_WS}]*mailto:|[{_PY_WS}]+", "", value.lower(), count=0) or None
        elif kind == "phone":
            options = {} if rule.phone is True else dict(rule.phone)
            value = e164_python([value], options.get("country") or DEFAULT_COUNTRY)[0]
        else:
            return False, None
    return True, value


def lookup_values(ws, dataset: str | None, column: str, value: str, *, engine: bool = False,
                  config=None) -> list[str]:
    """``value`` normalized as each source mapped to ``column`` normalizes it at import (distinct,
    empty results left out): the rules of :mod:`tessera.normalize`, their Python twins where every
    rule of a chain has one, else computed by the engine (``engine=True``: always)."""
    config = ws.config
    ds = _customer_dataset(config, dataset)
    sources = {s.name: s for s in config.sources}
    declared = {c.name: c for c in ds.columns}
    dialect = ws.adapter.dialect
    exprs: dict[str, ibis.Value] = {}
    out: set[str] = set()
    raw = ibis.literal(value, type="string")
    for i, m in enumerate(ds.mappings):
        if column not in m.columns or m.source not in sources:
            continue
        rules = list(sources[m.source].normalize.get(m.columns[column], []))
        cfg = declared.get(column)
        dataset_rules = list(cfg.normalize) if cfg is not None else []
        if not engine:
            ok, result = _in_python(value, [*rules, *dataset_rules])
            if ok:
                result = result.strip(_SQL_WS) if result is not None else None
                if result:
                    out.add(result)
                continue
        v = raw
        if rules:
            v = apply_rules(v, rules, dialect)
        if dataset_rules:
            v = apply_rules(v.cast("string") if not v.type().is_string() else v, dataset_rules, dialect)
        exprs[f"v{i}"] = v.cast("string").strip()
    if exprs:
        row = ws.adapter.to_arrow(ibis.memtable({"_one": [1]}).select(**exprs)).to_pylist()[0]
        out |= {v for v in row.values() if v}
    elif not out and not any(column in m.columns for m in ds.mappings) and value.strip():
        out.add(value.strip())
    return sorted(out)


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
    config = ws.config
    ds = _customer_dataset(config, dataset)
    ws.table(ds.name)  # NotFoundError while the dataset is not published
    key = ("customers", ds.name, kind)
    plan = ws.cached_read(key, lambda: _plan(ws, ds.name, kind, config))
    try:
        return _find(ws, ds.name, plan, kind, value, limit, config)
    except EngineError:
        # A publication moved under the plan (its state is recorded just after): plan it again.
        ws.forget_read(key)
        plan = ws.cached_read(key, lambda: _plan(ws, ds.name, kind, config))
        return _find(ws, ds.name, plan, kind, value, limit, config)


def _find(ws, dataset: str, plan: "_Plan", kind: str, value: str, limit: int, config) -> dict[str, Any]:
    adapter = ws.adapter
    searched: dict[str, list[str]] = {}
    if kind == "tessera_id":
        searched[TID] = [value.strip()]
        ids = searched[TID]
    else:
        if kind == "id":
            searched[TID] = [value.strip()]
        for col in plan.columns:
            searched[col] = lookup_values(ws, dataset, col, value, config=config)
        # One point read per column and value, each through the column's index where the engine
        # has one (Workspace.index_for_reads): an IN list or an OR of columns would scan them all.
        found: set[str] = set()
        for col, values in searched.items():
            query = plan.by_column.get(col)
            for v in values if query is not None else ():
                found.update(r[TID] for r in adapter.fetch(query, v=v))
        ids = sorted(found)[:limit]
        if not ids:
            return {"data": [], "count": 0, "searched": searched}
    rows = [r for tid in ids for r in adapter.fetch(plan.row, tid=tid)][:limit]
    return {"data": [{k: plain(v) for k, v in r.items()} for r in rows], "count": len(rows), "searched": searched}


@dataclass
class _Plan:
    """The compiled queries of the lookups of one kind in one dataset (one per published state)."""

    columns: list[str]  # the columns an identity value is normalized for and searched in
    by_column: dict[str, Prepared]  # column -> the tessera_id of the records with a value (``v``)
    row: Prepared  # the unified record of a tessera_id (``tid``)


def _plan(ws, dataset: str, kind: str, config) -> _Plan:
    adapter = ws.adapter
    ws.table(dataset)
    table = adapter.indexed_table(dataset)  # read through its indexes (Workspace.index_for_reads)
    source = f"{dataset}__records"
    records = adapter.indexed_table(source) if adapter.published_target(source) is not None else table
    columns = lookup_columns(ws, dataset, kind, config) if kind != "tessera_id" else []
    by_column = {}
    for col in [*columns, *([TID] if kind == "id" else [])]:
        if col not in records.columns:
            continue
        c = records[col]
        # A text column compared as it is, so that the engine can use its index.
        cond = c == param("v") if c.type().is_string() else c.cast("string") == param("v")
        # Distinct and sorted in Python: DuckDB leaves the index for a DISTINCT or an ORDER BY.
        by_column[col] = adapter.prepare(records.filter(cond).select(TID).limit(MAX_RECORDS))
    return _Plan(columns, by_column, adapter.prepare(table.filter(table[TID] == param("tid")).limit(1)))
