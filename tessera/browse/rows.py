"""Pages of a published dataset: a filter, a sort, and keyset paging with a cursor token.

The filter is a condition tree as in a segment (``[{"column": "country", "op": "eq", "value":
"FR"}, {"sql": "age >= 30"}]``, compiled by :mod:`tessera.segments.compile`; SQL leaves go
through the user-SQL allow-list), so a filter that works here works as a segment and back.

Paging is by keyset, never OFFSET: the rows are ordered by the sort columns then ``tessera_id``
(unique), nulls last, and the cursor carries the sort and the last row's values; the next page is
the rows strictly after them. A page costs the same at row 10 and at row 1,000,000, and rows
are neither repeated nor skipped between pages.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any

import ibis
from pydantic import ValidationError

from tessera.config.loader import segment_problems
from tessera.config.models import SegmentConfig
from tessera.engine.base import Prepared, param
from tessera.errors import ConfigError, EngineError, UsageError
from tessera.segments import compile_segment

TID = "tessera_id"
MAX_LIMIT = 1000
FILTER_NAME = "tessera_filter"


def plain(value: Any) -> Any:
    """A value as JSON writes it: dates and times in ISO 8601, decimals as text, bytes in hex."""
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (bytes, bytearray)):
        return value.hex()
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def parse_sort(sort: str | list[str] | None, columns: list[str]) -> list[tuple[str, bool]]:
    """``"-order_date,email"`` as ``[(column, descending)]``, ``tessera_id`` added last as the tie-break."""
    items = sort.split(",") if isinstance(sort, str) else list(sort or [])
    out: list[tuple[str, bool]] = []
    for raw in items:
        item = raw.strip()
        if not item:
            continue
        desc = item.startswith("-")
        name = item.lstrip("+-").strip()
        if name not in columns:
            raise UsageError(f"sort: unknown column '{name}' (columns: {', '.join(columns)}); write "
                             "sort=column or sort=-column (descending), several separated by commas")
        if name not in (c for c, _ in out):
            out.append((name, desc))
    if TID not in (c for c, _ in out):
        out.append((TID, False))
    return out


def _encode(sort: list[tuple[str, bool]], values: list[Any]) -> str:
    payload = {"s": [("-" if d else "") + c for c, d in sort], "v": [plain(v) for v in values]}
    return base64.urlsafe_b64encode(json.dumps(payload, separators=(",", ":")).encode()).decode().rstrip("=")


def _decode(cursor: str, sort: list[tuple[str, bool]]) -> list[Any]:
    try:
        payload = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        spec, values = payload["s"], payload["v"]
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise UsageError("cursor: not a cursor of this API; send the next_cursor of the previous page as it is") \
            from None
    expected = [("-" if d else "") + c for c, d in sort]
    if spec != expected or not isinstance(values, list) or len(values) != len(sort):
        raise UsageError(f"cursor: it was made for the sort {','.join(map(str, spec)) if isinstance(spec, list) else '?'}"
                         f", this page asks {','.join(expected)}; keep the same sort while paging, or start again "
                         "without a cursor")
    return values


def _check(kind, value: Any, name: str) -> str:
    """A cursor's value as the text bound in the page's query (cast there to the column's type),
    refused here when it does not fit the column."""
    try:
        if kind.is_decimal():
            ibis.literal(Decimal(str(value)), type=kind)
        elif kind.is_timestamp() and isinstance(value, str):
            datetime.fromisoformat(value)
        elif kind.is_date() and isinstance(value, str):
            date.fromisoformat(value)
        elif kind.is_time() and isinstance(value, str):
            time.fromisoformat(value)
        elif isinstance(value, (dict, list)) or (kind.is_boolean() and not isinstance(value, bool)):
            raise TypeError(value)
        elif kind.is_integer():
            int(str(value))
        elif kind.is_floating():
            float(value)
        else:
            ibis.literal(value).cast(kind)
    except (ValueError, TypeError, ArithmeticError, ibis.common.exceptions.IbisError):
        raise UsageError(f"cursor: the value of '{name}' does not fit its column; start again without a cursor") \
            from None
    return str(value)


def _after(t: ibis.Table, sort: list[tuple[str, bool]], nulls: tuple[bool, ...]) -> ibis.BooleanValue:
    """Rows strictly after the cursor's values in the order of ``sort`` (nulls last): the value of
    the i-th sort column is the parameter ``c<i>`` (its text, cast to the column's type), or null
    where ``nulls[i]``."""
    clauses = []
    equal: list[ibis.BooleanValue] = []
    for i, ((name, desc), null) in enumerate(zip(sort, nulls)):
        col = t[name]
        if null:
            beyond = ibis.literal(False)
            same = col.isnull()
        else:
            lit = param(f"c{i}").cast(col.type())
            beyond = col.isnull() | ((col < lit) if desc else (col > lit))
            same = col == lit
        clause = beyond
        for e in equal:
            clause = e & clause
        clauses.append(clause)
        equal.append(same)
    out = clauses[0]
    for c in clauses[1:]:
        out = out | c
    return out


def _loc(loc: tuple) -> str:
    parts = list(loc[1:]) if loc and loc[0] == "conditions" else list(loc)
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in parts)


def _filter_table(ws, dataset: str, conditions: list[dict] | None, match: str, sql: str | None) -> ibis.Table:
    """The published dataset with the rows of the filter (a condition tree, a SQL condition, or both)."""
    conds = list(conditions or [])
    if sql:
        conds.append({"sql": sql})
    table = ws.table(dataset)
    if not conds:
        return table
    config = ws.config
    try:
        draft = SegmentConfig.model_validate({"name": FILTER_NAME, "dataset": dataset, "match": match,
                                              "conditions": conds})
    except ValidationError as exc:
        raise ConfigError([f"filter{_loc(e['loc'])}: {e['msg'].removeprefix('Value error, ')}"
                           for e in exc.errors()], origin="the filter") from None
    others = [s for s in config.segments if s.name != FILTER_NAME]
    config = config.model_copy(update={"segments": [*others, draft]})
    problems = [p.replace(f"segments[{len(others)}] ({FILTER_NAME}).conditions", "filter")
                for p in segment_problems(config, only=FILTER_NAME)]
    if problems:
        raise ConfigError(problems, origin="the filter")
    compiled = compile_segment(ws._segment_context(config=config), draft)
    # All of the conditions: each one a predicate of its own (each already reads NULL as false),
    # which the engine orders, cheapest or most selective first, instead of one expression it
    # computes whole on every row (a million contacts: a fifth of the page's time).
    where = compiled.conditions if match == "all" else [compiled.where]
    return compiled.table.filter(*where).select(*table.columns)


def columns_of(ws, dataset: str) -> dict[str, Any]:
    """The columns of a published dataset and their types (read once per published state)."""
    return ws.cached_read(("rows_columns", dataset), lambda: dict(ws.table(dataset).schema().items()))


def _keys_query(ws, dataset: str, filtered: tuple, order: list[tuple[str, bool]], limit: int,
                nulls: tuple[bool, ...] | None) -> Prepared:
    """The keys of a page (its sort columns and ``tessera_id``), compiled once per filter, sort
    and state (the cursor's values are its parameters). A page's rows are read apart, by their
    keys: a sort that carries every column of a million rows costs several times one that
    carries a few."""
    t = _filter_table(ws, dataset, *filtered)
    if nulls is not None:
        t = t.filter(_after(t, order, nulls))
    keys = [ibis.desc(c, nulls_first=False) if d else ibis.asc(c, nulls_first=False) for c, d in order]
    return ws.adapter.prepare(t.select(*(c for c, _ in order)).order_by(keys).limit(limit + 1))


#: the sizes of the queries that read a page's rows by their ids (a page's ids padded to the next
#: one; a longer page is read by lists of the largest)
PAGE_SIZES = (1, 2, 5, 10, 20, 50, 100)


def _rows_query(ws, dataset: str, needed: tuple[str, ...], n: int) -> Prepared:
    """The ``needed`` columns of the rows of ``n`` ``tessera_id`` (the parameters ``k0``...),
    compiled once: the engine finds them through the column's index where it has one
    (Workspace.index_for_reads), a few milliseconds at a million rows; compiled again at each
    page, with the ids written in, the list cost several times as much."""
    t = ws.adapter.indexed_table(dataset)
    return ws.adapter.prepare(t.filter(t[TID].isin([param(f"k{i}") for i in range(n)])).select(*needed))


def _rows_of(ws, dataset: str, ids: list, needed: list[str]) -> list[dict]:
    """The rows of these ``tessera_id`` (a page's, in that order) with the ``needed`` columns."""
    found: dict = {}
    largest = PAGE_SIZES[-1]
    for start in range(0, len(ids), largest):
        chunk = ids[start:start + largest]
        size = next(s for s in PAGE_SIZES if s >= len(chunk))
        query = ws.cached_read(("rows_by_id", dataset, tuple(needed), size),
                               lambda size=size: _rows_query(ws, dataset, tuple(needed), size))
        # padded with the last id: a NULL in the list would make DuckDB read the whole column
        found.update((r[TID], r) for r in ws.adapter.fetch(query, **{f"k{i}": chunk[min(i, len(chunk) - 1)]
                                                                      for i in range(size)}))
    return [found[i] for i in ids if i in found]


def dataset_rows(ws, dataset: str, *, conditions: list[dict] | None = None, match: str = "all",
                 sql: str | None = None, sort: str | list[str] | None = None, limit: int = 50,
                 cursor: str | None = None, columns: list[str] | None = None, total: bool = False) -> dict:
    """One page of a published dataset's rows.

    Args:
        ws: the workspace (or its reader).
        dataset: a published dataset.
        conditions: a filter as a segment's condition tree (see docs/segments.md).
        match: ``all`` or ``any`` of the conditions.
        sql: a SQL condition over the dataset's columns (the user-SQL allow-list).
        sort: ``"col"`` or ``"-col"`` (descending), several separated by commas; ``tessera_id`` breaks ties.
        limit: rows per page (1..1000).
        cursor: ``next_cursor`` of the previous page (same sort).
        columns: the columns to answer (default: all).
        total: also count the rows that match the filter (one more query).

    Returns:
        ``{"data": [...], "count": n, "next_cursor": str | None, "sort": [...], "total"?: n}``.

    Raises:
        NotFoundError: the dataset is not published.
        ConfigError: the filter names an unknown column or a refused SQL (every problem at once).
        UsageError: an unknown sort column, a bad cursor.
    """
    limit = min(max(int(limit), 1), MAX_LIMIT)
    types = columns_of(ws, dataset)
    if TID not in types:
        raise UsageError(f"dataset '{dataset}' has no {TID} column to page on")
    order = parse_sort(sort, list(types))
    shown = list(types)
    if columns:
        unknown = [c for c in columns if c not in types]
        if unknown:
            raise UsageError(f"columns: unknown column(s) {', '.join(unknown)} (columns: {', '.join(types)})")
        shown = list(dict.fromkeys([*columns]))
    bound: dict[str, str] = {}
    nulls = None
    if cursor:
        values = _decode(cursor, order)
        nulls = tuple(v is None for v in values)
        bound = {f"c{i}": _check(types[c], v, c) for i, ((c, _), v) in enumerate(zip(order, values)) if v is not None}
    needed = list(dict.fromkeys([*shown, *(c for c, _ in order)]))
    filtered = (conditions, match, sql)
    # The filter's key: its conditions as JSON (a filter refused is refused again at each call:
    # nothing is kept for it).
    which = json.dumps([conditions or [], match, sql or ""], sort_keys=True, default=str)
    key = ("rows", dataset, which, tuple(order), limit, nulls)

    def page() -> tuple[list[dict], bool]:
        query = ws.cached_read(key, lambda: _keys_query(ws, dataset, filtered, order, limit, nulls))
        found = ws.adapter.fetch(query, **bound)
        more = len(found) > limit
        found = found[:limit]
        if not set(needed) <= {c for c, _ in order}:
            found = _rows_of(ws, dataset, [r[TID] for r in found], needed)
        return found, more

    try:
        rows, more = page()
    except EngineError:
        # A publication moved under the queries (its state is recorded just after): compile them again.
        ws.forget_read(key)
        for size in PAGE_SIZES:
            ws.forget_read(("rows_by_id", dataset, tuple(needed), size))
        rows, more = page()
    out: dict[str, Any] = {
        "data": [{c: plain(r[c]) for c in shown} for r in rows], "count": len(rows),
        "next_cursor": _encode(order, [rows[-1][c] for c, _ in order]) if more and rows else None,
        "sort": [("-" if d else "") + c for c, d in order],
    }
    if total:
        count = ws.cached_read(("rows_total", dataset, which), lambda: ws.adapter.prepare(
            _filter_table(ws, dataset, *filtered).aggregate(n=lambda t: t.count())))
        out["total"] = int(ws.adapter.fetch(count)[0]["n"])
    return out
