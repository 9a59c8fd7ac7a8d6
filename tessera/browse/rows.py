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
from tessera.errors import ConfigError, UsageError
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


def _literal(column: ibis.Value, value: Any, name: str) -> ibis.Value:
    kind = column.type()
    try:
        if kind.is_decimal():
            return ibis.literal(Decimal(str(value)), type=kind)
        if kind.is_timestamp() and isinstance(value, str):
            return ibis.literal(datetime.fromisoformat(value)).cast(kind)
        if kind.is_date() and isinstance(value, str):
            return ibis.literal(date.fromisoformat(value))
        if kind.is_time() and isinstance(value, str):
            return ibis.literal(time.fromisoformat(value))
        return ibis.literal(value).cast(kind)
    except (ValueError, TypeError, ArithmeticError, ibis.common.exceptions.IbisError):
        raise UsageError(f"cursor: the value of '{name}' does not fit its column; start again without a cursor") \
            from None


def _after(t: ibis.Table, sort: list[tuple[str, bool]], values: list[Any]) -> ibis.BooleanValue:
    """Rows strictly after ``values`` in the order of ``sort`` (nulls last)."""
    clauses = []
    equal: list[ibis.BooleanValue] = []
    for (name, desc), value in zip(sort, values):
        col = t[name]
        if value is None:
            beyond = ibis.literal(False)
            same = col.isnull()
        else:
            lit = _literal(col, value, name)
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
    return compiled.table.filter(compiled.where.fill_null(False)).select(*table.columns)


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
    t = _filter_table(ws, dataset, conditions, match, sql)
    if TID not in t.columns:
        raise UsageError(f"dataset '{dataset}' has no {TID} column to page on")
    order = parse_sort(sort, list(t.columns))
    shown = list(t.columns)
    if columns:
        unknown = [c for c in columns if c not in t.columns]
        if unknown:
            raise UsageError(f"columns: unknown column(s) {', '.join(unknown)} (columns: {', '.join(t.columns)})")
        shown = list(dict.fromkeys([*columns]))
    page = t
    if cursor:
        page = page.filter(_after(t, order, _decode(cursor, order)))
    keys = [ibis.desc(page[c], nulls_first=False) if d else ibis.asc(page[c], nulls_first=False) for c, d in order]
    needed = list(dict.fromkeys([*shown, *(c for c, _ in order)]))
    rows = ws.adapter.to_arrow(page.order_by(keys).select(*needed).limit(limit + 1)).to_pylist()
    more = len(rows) > limit
    rows = rows[:limit]
    out: dict[str, Any] = {
        "data": [{c: plain(r[c]) for c in shown} for r in rows], "count": len(rows),
        "next_cursor": _encode(order, [rows[-1][c] for c, _ in order]) if more and rows else None,
        "sort": [("-" if d else "") + c for c, d in order],
    }
    if total:
        out["total"] = ws.adapter.count(t)
    return out
