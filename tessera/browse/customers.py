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
from tessera.datasets.search import PHONE_SIGNS, TOKEN, phone_digits, prefix_range, query_words, search_view
from tessera.engine.base import Prepared, param
from tessera.errors import EngineError, NotFoundError, UsageError
from tessera.config.models import NULL_LIKE_DEFAULT
from tessera.normalize.phone import DEFAULT_COUNTRY, e164_python
from tessera.normalize.rules import _PY_WS, apply_rules
from tessera.normalize.semantic import suggest_semantic
from tessera.segments.related import _semantics

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
    ids, searched = _exact_ids(ws, dataset, plan, kind, value, config)
    rows = _rows_of(ws.adapter, plan.row, ids[:limit])
    return {"data": [{k: plain(v) for k, v in r.items()} for r in rows], "count": len(rows), "searched": searched}


def _exact_ids(ws, dataset: str, plan: "_Plan", kind: str, value: str,
               config) -> tuple[list[str], dict[str, list[str]]]:
    """The core of an exact lookup: (the sorted tessera_ids with the value normalized as at import,
    {column: [the values looked up]})."""
    adapter = ws.adapter
    searched: dict[str, list[str]] = {}
    if kind == "tessera_id":
        searched[TID] = [value.strip()]
        return searched[TID], searched
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
    return sorted(found), searched


def _rows_of(adapter, row: Prepared, ids: list[str]) -> list[dict]:
    """The unified records of ``ids``, in their order (point reads through the tessera_id index)."""
    return [r for tid in ids for r in adapter.fetch(row, tid=tid)]


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


# --------------------------------------------------------------------------- search as you type
MAX_WORDS = 6  # words of a search read (more narrow nothing a person would type)
FIRST_TOKENS = 1_000  # tokens read for a one-word search (a customer has several starting alike)
SHOWN = (("first", "FirstName"), ("last", "LastName"), ("full", "FullName"), ("email", "Email"),
         ("phone", "Phone"), ("city", "City"))


@dataclass
class _SearchPlan:
    """The compiled queries of the search as you type in one dataset (one per published state)."""

    first: Prepared | None  # the first tokens starting with a prefix (``lo``, ``hi``), in token order
    capped: Prepared | None  # how many tokens start with a prefix, up to CANDIDATES
    by_words: dict[int, Prepared]  # n -> the tessera_ids with a token starting with each of n prefixes
    rows: Prepared | None  # the shown columns of up to MAX_CUSTOMERS + 1 ids (``t0``...)
    shown: dict[str, str]  # result key -> column of the dataset


CANDIDATES = 100_000  # customers of the rarest word typed checked against the other words


def search_customers(ws, text: str, dataset: str | None = None, *, limit: int = 20) -> dict[str, Any]:
    """Customers found as you type: by the start of any word of their name, of an e-mail address
    or its domain, of a phone number's digits (written any way), of any id (the unified id, an
    identity key, a source record's key); and by the exact lookup of :func:`find_customers` (the
    value normalized as at import: a phone number written as its country writes it). Every word
    typed must start one of a customer's tokens (see :mod:`tessera.datasets.search`).

    Args:
        ws: the workspace (or its reader).
        text: what was typed (two characters at least).
        dataset: the customer dataset (default: the first deduplicated dataset).
        limit: at most this many customers (1..100): exact matches first, then by the token matched.

    Returns:
        ``{"dataset", "query", "results": [{"tessera_id", "name", "email", "phone", "city"}], "more": bool}``.
    """
    config = ws.config
    ds = _customer_dataset(config, dataset)
    query = " ".join((text or "").split())
    out: dict[str, Any] = {"dataset": ds.name, "query": query, "results": [], "more": False}
    if len(query) < 2:
        return out
    limit = min(max(int(limit), 1), MAX_CUSTOMERS)
    ws.table(ds.name)  # NotFoundError while the dataset is not published
    key = ("customers", ds.name, "search")
    plan = ws.cached_read(key, lambda: _search_plan(ws, ds.name, config))
    if plan.first is None and ws.adapter.published_target(search_view(ds.name)) is not None:
        ws.forget_read(key)  # published since (by the server's start): planned again
        plan = ws.cached_read(key, lambda: _search_plan(ws, ds.name, config))
    try:
        ids = _search_ids(ws, ds.name, plan, query, limit, config)
        rows = _shown_rows(ws, plan, ids[:limit])
    except EngineError:
        # A publication moved under the plans (its state is recorded just after): plan them again.
        for k in [key, *[("customers", ds.name, kind) for kind in KINDS]]:
            ws.forget_read(k)
        plan = ws.cached_read(key, lambda: _search_plan(ws, ds.name, config))
        ids = _search_ids(ws, ds.name, plan, query, limit, config)
        rows = _shown_rows(ws, plan, ids[:limit])
    for r in rows:
        got = {k: (str(r[c]) if r.get(c) is not None else None) for k, c in plan.shown.items()}
        name = got.get("full") or " ".join(x for x in (got.get("first"), got.get("last")) if x)
        out["results"].append({"tessera_id": r[TID], "name": name or None, "email": got.get("email"),
                               "phone": got.get("phone"), "city": got.get("city")})
    out["more"] = len(ids) > limit
    if not rows and phone_digits(query) is None and set(query) <= PHONE_SIGNS | set("0123456789"):
        out["short_number"] = True  # the start of a phone number: four digits at least are searched
    return out


def _shown_rows(ws, plan: _SearchPlan, ids: list[str]) -> list[dict]:
    """The shown columns of the unified records of ``ids``, in their order: one read of them all."""
    if not ids:
        return []
    bound = {f"t{i}": ids[min(i, len(ids) - 1)] for i in range(MAX_CUSTOMERS + 1)}  # the last repeated
    by_id = {r[TID]: r for r in ws.adapter.fetch(plan.rows, **bound)}
    return [by_id[t] for t in ids if t in by_id]


def _search_ids(ws, dataset: str, plan: _SearchPlan, query: str, limit: int, config) -> list[str]:
    """The tessera_ids found for ``query``: exact matches first (an id, an e-mail, a phone), then
    those with a token starting with each word typed, by the first token matched; ``limit + 1`` at most."""
    kinds = [kind for kind, wanted in (("id", " " not in query), ("email", "@" in query),
                                       ("phone", phone_digits(query) is not None)) if wanted]
    found: dict[str, None] = {}
    for kind in kinds:
        exact = ws.cached_read(("customers", dataset, kind), lambda: _plan(ws, dataset, kind, config))
        found.update(dict.fromkeys(_exact_ids(ws, dataset, exact, kind, query, config)[0]))
    if plan.first is None:  # no search index yet: the exact lookups alone
        return list(found)[:limit + 1]
    ranked: list[tuple[str, str]] = []
    for way in query_words(query):
        words = way[:MAX_WORDS]
        if len(words) == 1:
            lo, hi = prefix_range(words[0])
            # Read in the table's order (by token): the engine stops after the first rows found.
            ranked += [(r[TOKEN], r[TID]) for r in ws.adapter.fetch(plan.first, lo=lo, hi=hi)]
            continue
        counts = []
        for w in words:
            lo, hi = prefix_range(w)
            counts.append(ws.adapter.fetch(plan.capped, lo=lo, hi=hi)[0]["n"])
        if min(counts) == 0:
            continue
        # the rarest word first: its customers (CANDIDATES at most) are checked against the others
        words = [w for _n, w in sorted(zip(counts, words), key=lambda x: x[0])]
        bound = {}
        for i, w in enumerate(words):
            bound[f"lo{i}"], bound[f"hi{i}"] = prefix_range(w)
        ranked += [(r["_first"], r[TID]) for r in ws.adapter.fetch(plan.by_words[len(words)], **bound)]
    for _first, tid in sorted(ranked):
        found.setdefault(tid, None)
    return list(found)[:limit + 1]


def _search_plan(ws, dataset: str, config) -> _SearchPlan:
    adapter = ws.adapter
    fields = _semantics(config, dataset)
    table = adapter.indexed_table(dataset)
    shown = {k: fields[f] for k, f in SHOWN if f in fields and fields[f] in table.columns}
    ids = [param(f"t{i}") for i in range(MAX_CUSTOMERS + 1)]
    rows = adapter.prepare(table.filter(table[TID].isin(ids)).select(TID, *dict.fromkeys(shown.values())))
    view = search_view(dataset)
    if adapter.published_target(view) is None:
        return _SearchPlan(None, None, {}, rows, shown)
    s = adapter.table(view)

    def starting(i):
        return (s[TOKEN] >= param(f"lo{i}")) & (s[TOKEN] < param(f"hi{i}"))

    first = adapter.prepare(s.filter(starting("")).select(TID, TOKEN).limit(FIRST_TOKENS))
    some = s.filter(starting("")).select(TID).limit(CANDIDATES)
    capped = adapter.prepare(some.aggregate(n=some.count()))
    by_words = {}
    for n in range(2, MAX_WORDS + 1):
        candidates = s.filter(starting(0)).select(TID).limit(CANDIDATES)
        parts = [s.filter(starting(i) & s[TID].isin(candidates[TID])).select(TID, TOKEN, _w=ibis.literal(i))
                 for i in range(n)]
        u = parts[0]
        for p in parts[1:]:
            u = u.union(p, distinct=False)
        g = u.group_by(TID).aggregate(_n=u._w.nunique(), _first=u[TOKEN].min())
        g = g.filter(g._n == n)
        by_words[n] = adapter.prepare(g.order_by([g._first, g[TID]]).select(TID, "_first").limit(MAX_CUSTOMERS + 1))
    return _SearchPlan(first, capped, by_words, rows, shown)
