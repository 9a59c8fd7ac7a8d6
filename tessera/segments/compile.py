"""Compiling a segment's condition tree to one Ibis boolean expression per top-level condition.

A segment is evaluated on one table: the published dataset with, beside its columns,

- one boolean column ``_tessera_sql<i>`` per SQL leaf (checked against the user-SQL allow-list of
  :mod:`tessera.sqlcheck` and rendered by the engine's dialect);
- one value column ``_tessera_b<i>`` per behaviour leaf: a count, sum, average, minimum or maximum of
  the related rows (events, orders) of each record, grouped in the engine and left-joined on
  ``tessera_id``.

Every leaf is then an Ibis expression over that table; a leaf on an empty value is false, so
``not`` keeps the records for which its condition does not hold. Dates and windows are computed
in Python from ``as_of`` and written as date literals, so every engine gets the same bounds.
Membership of another segment compiles that segment's conditions in place (cycles are refused).
"""

from __future__ import annotations

import calendar
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import ibis
import ibis.expr.datatypes as dt

from tessera.config.models import ConditionConfig, SegmentConfig, WorkspaceConfig
from tessera.engine.types import FALSE_WORDS, TRUE_WORDS
from tessera.errors import ConfigError
from tessera.sqlcheck import check_expression

TID = "tessera_id"


@dataclass
class Context:
    """What a compilation reads: the configuration, the engine, the date windows end at, and how
    to get a dataset's table (published views, or a related dataset with pending rows)."""

    adapter: Any
    config: WorkspaceConfig
    as_of: date
    table: Callable[[str], ibis.Table]
    related: Callable[[str, str], ibis.Table] | None = None  # (related dataset, customer dataset) -> rows

    def related_table(self, name: str, customer_dataset: str) -> ibis.Table:
        if self.related is not None:
            return self.related(name, customer_dataset)
        return self.table(name)


@dataclass
class Compiled:
    segment: SegmentConfig
    table: ibis.Table  # the dataset with the helper columns
    conditions: list[ibis.BooleanValue]  # one per top-level condition, NULL read as false
    labels: list[str]
    where: ibis.BooleanValue  # the whole definition
    behaviour_datasets: set[str] = field(default_factory=set)
    base: ibis.Table | None = None  # the dataset before the behaviour values are joined (counts narrow it)
    compiler: Any = None  # the _Compiler that made it (a count compiles conditions again on a narrowed table)


# --------------------------------------------------------------------------- descriptions


def describe(cond: ConditionConfig) -> str:
    """A short text of a condition (its label when set), for counts and exit reasons."""
    if cond.label:
        return cond.label
    kind = cond.kind
    if kind in ("all", "any"):
        parts = getattr(cond, kind)
        return f"{kind} of ({'; '.join(describe(c) for c in parts)})"
    if kind == "not":
        return f"not ({describe(cond.not_)})"
    if kind == "column":
        if cond.value is None:
            return f"{cond.column} {cond.op.replace('_', ' ')}"
        value = cond.value if not isinstance(cond.value, (list, dict)) else json.dumps(cond.value, default=str)
        unit = f" {cond.unit}" if cond.op in ("in_last", "more_than_ago", "anniversary_within") else ""
        return f"{cond.column} {cond.op.replace('_', ' ')} {value}{unit}"
    if kind == "segment":
        return f"in segment {cond.segment}"
    window = f" in the last {cond.last} {cond.unit}" if cond.last else ""
    where = f" where {cond.filter}" if cond.filter else ""
    if kind == "did":
        times = next(((t, getattr(cond, t)) for t in ("at_least", "at_most", "exactly") if getattr(cond, t) is not None),
                     ("at_least", 1))
        return f"did '{cond.did}'{where} {times[0].replace('_', ' ')} {times[1]} time(s){window}"
    if kind == "not_done":
        return f"has not done '{cond.not_done}'{where}{window}"
    if kind == "aggregate":
        what = cond.column or "rows"
        return f"{cond.aggregate} of {cond.from_ or 'related'} {what}{where}{window} {cond.op} {cond.value}"
    return f"sql: {cond.sql}"


# --------------------------------------------------------------------------- dates


def shift(day: date, n: int, unit: str) -> date:
    """``day`` moved back by ``n`` units (days, weeks, months, years); the end of a shorter month
    is its last day."""
    if unit == "days":
        return day - timedelta(days=n)
    if unit == "weeks":
        return day - timedelta(days=7 * n)
    months = n if unit == "months" else 12 * n
    y, m = divmod(day.year * 12 + day.month - 1 - months, 12)
    return date(y, m + 1, min(day.day, calendar.monthrange(y, m + 1)[1]))


def _as_date(value: Any, where: str) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value).strip()[:10])
    except ValueError:
        raise ConfigError(f"{where}: '{value}' is not a date; write it as YYYY-MM-DD, e.g. 2024-01-31") from None


def _days_ahead(as_of: date, n: int) -> list[int]:
    """month*100+day of each day from ``as_of`` to ``as_of + n days`` (Feb 29 counts on Mar 1 of
    a year without it)."""
    out = set()
    for i in range(min(n, 366) + 1):
        d = as_of + timedelta(days=i)
        out.add(d.month * 100 + d.day)
        if d.month == 3 and d.day == 1 and not calendar.isleap(d.year):
            out.add(229)
    return sorted(out)


# --------------------------------------------------------------------------- compiler


class _Compiler:
    """Compiles the segments of one dataset over one shared table: a SQL leaf or a behaviour leaf
    that several segments share (the same condition, or a segment used by others) is one column."""

    def __init__(self, ctx: Context, dataset: str):
        self.ctx = ctx
        self.dataset = dataset
        self.by_name = {s.name: s for s in ctx.config.segments}
        self.datasets = {d.name: d for d in ctx.config.datasets}
        self.names: dict[int, str] = {}  # id(leaf) -> helper column
        self.shared: dict[str, str] = {}  # a leaf's definition -> helper column
        self.sql: list[tuple[str, str, ConditionConfig, str]] = []
        self.behaviours: list[tuple[str, ConditionConfig, str]] = []
        self.behaviour_datasets: set[str] = set()
        self.table: ibis.Table | None = None

    def _name(self, cond: ConditionConfig, prefix: str) -> str | None:
        """The helper column of a new leaf, or None when an equal leaf has one already."""
        key = json.dumps(cond.model_dump(mode="json", exclude={"label"}), sort_keys=True, default=str)
        if key in self.shared:
            self.names[id(cond)] = self.shared[key]
            return None
        name = f"{prefix}{len(self.shared)}"
        self.names[id(cond)] = self.shared[key] = name
        return name

    # -- first pass: helper columns
    def collect(self, cond: ConditionConfig, where: str, stack: tuple[str, ...]) -> None:
        kind = cond.kind
        if kind in ("all", "any"):
            for i, c in enumerate(getattr(cond, kind)):
                self.collect(c, f"{where}.{kind}[{i}]", stack)
        elif kind == "not":
            self.collect(cond.not_, f"{where}.not", stack)
        elif kind == "segment":
            other = self._referenced(cond, where, stack)
            for i, c in enumerate(other.conditions):
                self.collect(c, f"segment '{other.name}'.conditions[{i}]", stack + (other.name,))
        elif kind == "sql" and id(cond) not in self.names:
            name = self._name(cond, "_tessera_sql")
            if name is not None:
                self.sql.append((name, cond.sql, cond, where))
        elif kind in ("did", "not_done", "aggregate") and id(cond) not in self.names:
            name = self._name(cond, "_tessera_b")
            if name is not None:
                self.behaviours.append((name, cond, where))

    def uses_behaviour(self, cond: ConditionConfig) -> bool:
        """Whether a condition reads a behaviour value (a leaf of its own or of a segment it uses)."""
        kind = cond.kind
        if kind in ("did", "not_done", "aggregate"):
            return True
        if kind in ("all", "any"):
            return any(self.uses_behaviour(c) for c in getattr(cond, kind))
        if kind == "not":
            return self.uses_behaviour(cond.not_)
        if kind == "segment":  # compiled before: known, and no cycle
            return any(self.uses_behaviour(c) for c in self.by_name[cond.segment].conditions)
        return False

    def _referenced(self, cond: ConditionConfig, where: str, stack: tuple[str, ...]) -> SegmentConfig:
        if cond.segment in stack:
            cycle = " -> ".join(stack[stack.index(cond.segment):] + (cond.segment,))
            raise ConfigError(f"{where}.segment: segments use each other in a cycle: {cycle}")
        other = self.by_name.get(cond.segment)
        if other is None:
            raise ConfigError(f"{where}.segment: unknown segment '{cond.segment}' "
                              f"(segments: {', '.join(sorted(self.by_name)) or 'none'})")
        if other.dataset != self.dataset:
            raise ConfigError(f"{where}.segment: segment '{other.name}' is on dataset '{other.dataset}', this one on "
                              f"'{self.dataset}'; a segment uses segments of its own dataset")
        return other

    def build_table(self) -> ibis.Table:
        """The dataset with the helper columns: :meth:`build_base`, then :meth:`join_behaviours`."""
        return self.join_behaviours(self.build_base())

    def build_base(self) -> ibis.Table:
        """The dataset with the SQL leaves' columns (no behaviour value yet)."""
        ctx = self.ctx
        t = ctx.table(self.dataset)
        columns = set(t.columns)
        if self.sql:
            rendered = []
            for name, sql, _cond, where in self.sql:
                expr = check_expression(sql, columns, where=f"{where}.sql")
                rendered.append((name, ctx.adapter.dialect.render(expr)))
            t = ctx.adapter.add_sql_columns(t, rendered)
            for name, sql, _cond, where in self.sql:
                if not t[name].type().is_boolean():
                    raise ConfigError(f"{where}.sql: '{sql}' gives {t[name].type()} values, not true or false; "
                                      "write a condition, e.g. country = 'FR'")
        return t

    def join_behaviours(self, t: ibis.Table) -> ibis.Table:
        """``t`` (rows of the dataset, all or some) with the behaviour leaves' value columns."""
        # The behaviour leaves on one related dataset are one grouped aggregate (a value per leaf,
        # each over its own rows), left-joined once.
        from tessera.segments.related import related_info

        by_dataset: dict[str, list[tuple[str, ConditionConfig, str, Any]]] = {}
        for name, cond, where in self.behaviours:
            info = related_info(self.ctx.config, self.dataset, cond, where)
            self.behaviour_datasets.add(info.dataset)
            by_dataset.setdefault(info.dataset, []).append((name, cond, where, info))
        for leaves in by_dataset.values():
            per = self._behaviours(leaves)
            t = t.left_join(per, t[TID] == per._tessera_bid).drop("_tessera_bid")
        return t

    def _behaviours(self, leaves: list[tuple[str, ConditionConfig, str, Any]]) -> ibis.Table:
        """One row per record of the segment's dataset with related rows: ``_tessera_bid`` and one
        value per leaf (count, sum, average, minimum or maximum of the rows it keeps)."""
        info = leaves[0][3]
        rel = self.ctx.related_table(info.dataset, self.dataset)
        filters = [(f"_tessera_f{i}", cond, where) for i, (_n, cond, where, _i) in enumerate(leaves) if cond.filter]
        if filters:
            rendered = []
            for fname, cond, where in filters:
                expr = check_expression(cond.filter, set(rel.columns), where=f"{where}.filter")
                rendered.append((fname, self.ctx.adapter.dialect.render(expr)))
            rel = self.ctx.adapter.add_sql_columns(rel, rendered)
        def keeps_of(rel: ibis.Table) -> list:
            return [self._keep(rel, cond, where, leaf_info, f"_tessera_f{i}" if cond.filter else None)
                    for i, (_name, cond, where, leaf_info) in enumerate(leaves)]

        # Rows no leaf keeps are left out before grouping (the window's bounds let the engine skip
        # the blocks out of it); a record without rows gets 0 or NULL after the join.
        keeps = keeps_of(rel)
        linked = rel[info.link].notnull()
        if all(k is not None for k in keeps):
            linked = linked & _reduce(keeps, "or")
        rel = rel.filter(linked)
        keeps = keeps_of(rel)
        values = {}
        for (name, cond, where, _info), keep in zip(leaves, keeps):
            fn = cond.aggregate or "count"
            if fn == "count":
                values[name] = rel.count(where=keep)
                continue
            if cond.column not in rel.columns:
                raise ConfigError(f"{where}.column: '{cond.column}' is not a column of dataset '{info.dataset}'")
            col = rel[cond.column]
            values[name] = {"sum": col.sum, "avg": col.mean, "min": col.min, "max": col.max}[fn](where=keep)
        return rel.group_by(_tessera_bid=rel[info.link]).agg(**values)

    def _keep(self, rel: ibis.Table, cond: ConditionConfig, where: str, info, filter_column: str | None):
        """The rows of the related dataset a behaviour leaf counts (None: all its linked rows)."""
        keep = rel[filter_column].fill_null(False) if filter_column else None
        name = cond.did or cond.not_done
        if name is not None:
            if info.event_column is None or info.event_column not in rel.columns:
                raise ConfigError(f"{where}: dataset '{info.dataset}' has no event name column (a column 'event' or "
                                  "one with semantic: EventName)")
            c = rel[info.event_column] == name
            keep = c if keep is None else keep & c
        if cond.last is not None:
            date_column = info.date_column  # the leaf's date_column, else the dataset's date field
            if date_column is None or date_column not in rel.columns:
                raise ConfigError(f"{where}: a time window needs the date of the rows of '{info.dataset}': set "
                                  "date_column (or give a column semantic: EventTime or OrderDate)")
            c = _window(rel[date_column], shift(self.ctx.as_of, cond.last, cond.unit), self.ctx.as_of)
            keep = c if keep is None else keep & c
        return keep

    # -- second pass: expressions
    def expr(self, cond: ConditionConfig, t: ibis.Table, where: str, stack: tuple[str, ...]) -> ibis.BooleanValue:
        kind = cond.kind
        if kind == "all":
            return _reduce([self.expr(c, t, f"{where}.all[{i}]", stack) for i, c in enumerate(cond.all)], "and")
        if kind == "any":
            return _reduce([self.expr(c, t, f"{where}.any[{i}]", stack) for i, c in enumerate(cond.any)], "or")
        if kind == "not":
            return ~self.expr(cond.not_, t, f"{where}.not", stack)
        if kind == "segment":
            other = self._referenced(cond, where, stack)
            parts = [self.expr(c, t, f"segment '{other.name}'.conditions[{i}]", stack + (other.name,))
                     for i, c in enumerate(other.conditions)]
            return _reduce(parts, "and" if other.match == "all" else "or")
        if kind == "sql":
            return t[self.names[id(cond)]].fill_null(False)
        if kind in ("did", "not_done", "aggregate"):
            value = t[self.names[id(cond)]]
            if kind == "did":
                n = value.fill_null(0)
                if cond.at_most is not None:
                    return n <= cond.at_most
                if cond.exactly is not None:
                    return n == cond.exactly
                return n >= (cond.at_least if cond.at_least is not None else 1)
            if kind == "not_done":
                return value.fill_null(0) == 0
            if cond.aggregate in ("count", "sum"):
                value = value.fill_null(0)
            return _compare(value, cond.op, cond.value, where, self.ctx.as_of, cond.unit).fill_null(False)
        if cond.column not in t.columns or cond.column.startswith("_tessera_"):
            known = [c for c in t.columns if not c.startswith("_tessera")]
            raise ConfigError(f"{where}.column: '{cond.column}' is not a column of dataset '{self.dataset}' "
                              f"(columns: {', '.join(known)})")
        return _compare(t[cond.column], cond.op, cond.value, where, self.ctx.as_of, cond.unit).fill_null(False)


def _window(when: ibis.Value, since: date, as_of: date) -> ibis.BooleanValue:
    """After ``since`` and up to ``as_of`` (whole days); timestamps are compared with the bounds of
    those days, so the engine can skip the blocks out of the window."""
    if when.type().is_timestamp():
        lo = datetime.combine(since + timedelta(days=1), datetime.min.time())
        hi = datetime.combine(as_of + timedelta(days=1), datetime.min.time())
        return (when >= ibis.literal(lo, dt.timestamp)) & (when < ibis.literal(hi, dt.timestamp))
    day = when.cast("date")
    return (day > ibis.literal(since, dt.date)) & (day <= ibis.literal(as_of, dt.date))


def _reduce(parts: list[ibis.BooleanValue], how: str) -> ibis.BooleanValue:
    out = parts[0]
    for p in parts[1:]:
        out = (out & p) if how == "and" else (out | p)
    return out


def _literal(col: ibis.Value, value: Any, where: str) -> ibis.Value:
    typ = col.type()
    if typ.is_date() or typ.is_timestamp():
        return ibis.literal(_as_date(value, where), dt.date)
    if typ.is_numeric():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            try:
                value = float(value)
            except (TypeError, ValueError):
                raise ConfigError(f"{where}.value: '{value}' is not a number (the column holds {typ})") from None
        return ibis.literal(value)
    if typ.is_boolean():
        text = str(value).strip().lower()
        if text not in TRUE_WORDS + FALSE_WORDS:
            raise ConfigError(f"{where}.value: '{value}' is not true or false")
        return ibis.literal(text in TRUE_WORDS)
    return ibis.literal(str(value) if not isinstance(value, bool) else str(value).lower(), dt.string)


def _compare(col: ibis.Value, op: str, value: Any, where: str, as_of: date, unit: str) -> ibis.BooleanValue:
    typ = col.type()
    if typ.is_timestamp():
        col = col.cast("date")
        typ = col.type()
    if op in ("=", "!=", "<", "<=", ">", ">="):
        lit = _literal(col, value, where)
        return {"=": col == lit, "!=": col != lit, "<": col < lit, "<=": col <= lit, ">": col > lit,
                ">=": col >= lit}[op]
    if op == "between":
        lo, hi = (_literal(col, v, where) for v in value)
        return (col >= lo) & (col <= hi)
    if op in ("in", "not_in"):
        lits = [_literal(col, v, where) for v in value]
        return col.isin(lits) if op == "in" else col.notin(lits)
    if op in ("contains", "starts_with"):
        text = (col if typ.is_string() else col.cast("string")).lower()
        needle = str(value).lower()
        return text.contains(needle) if op == "contains" else text.startswith(needle)
    if op in ("is_empty", "is_not_empty"):
        empty = col.isnull()
        if typ.is_string():
            empty = empty | (col.strip() == "")
        return empty if op == "is_empty" else ~empty
    if op in ("is_true", "is_false"):
        if typ.is_boolean():
            return col if op == "is_true" else ~col
        if typ.is_numeric():
            return col == (1 if op == "is_true" else 0)
        if typ.is_string():
            return col.strip().lower().isin(TRUE_WORDS if op == "is_true" else FALSE_WORDS)
        raise ConfigError(f"{where}.op: {op} needs a true/false column (the column holds {typ})")
    if not typ.is_date():
        raise ConfigError(f"{where}.op: {op} is a date condition; the column holds {typ}, not dates")
    if op == "in_last":
        since = shift(as_of, value, unit)
        return (col > ibis.literal(since, dt.date)) & (col <= ibis.literal(as_of, dt.date))
    if op == "more_than_ago":
        return col < ibis.literal(shift(as_of, value, unit), dt.date)
    if op == "before":
        return col < ibis.literal(_as_date(value, where), dt.date)
    if op == "after":
        return col > ibis.literal(_as_date(value, where), dt.date)
    if op == "anniversary_within":
        days = (as_of + timedelta(days=0)) - shift(as_of, value, unit)  # the window's length in days
        return (col.month() * 100 + col.day()).isin(_days_ahead(as_of, days.days))
    raise ConfigError(f"{where}.op: unknown operator '{op}'")  # pragma: no cover - validated by the model


def compile_segment(ctx: Context, segment: SegmentConfig) -> Compiled:
    """The table and boolean expressions of ``segment`` (see the module's documentation).

    Raises:
        ConfigError: a column, dataset or segment it names does not exist, a SQL leaf is refused.
    """
    return compile_segments(ctx, [segment])[0]


def compile_segments(ctx: Context, segments: list[SegmentConfig]) -> list[Compiled]:
    """Compile segments of one dataset over one shared table, so that one query evaluates them
    all: a leaf they share is computed once, and the behaviour leaves on one related dataset are
    one grouped aggregate.

    Raises:
        ConfigError: as :func:`compile_segment`, for any of the segments.
    """
    if not segments:
        return []
    dataset = segments[0].dataset
    for segment in segments:
        if segment.dataset not in {d.name for d in ctx.config.datasets}:
            raise ConfigError(f"segment '{segment.name}'.dataset: unknown dataset '{segment.dataset}'")
        if segment.dataset != dataset:
            raise ValueError("compile_segments compiles segments of one dataset")  # a caller's bug
    c = _Compiler(ctx, dataset)
    for segment in segments:
        base = f"segment '{segment.name}'.conditions"
        for i, cond in enumerate(segment.conditions):
            c.collect(cond, f"{base}[{i}]", (segment.name,))
    base = c.build_base()
    t = c.join_behaviours(base) if c.behaviours else base
    out = []
    for segment in segments:
        conds = [c.expr(cond, t, f"segment '{segment.name}'.conditions[{i}]", (segment.name,))
                 for i, cond in enumerate(segment.conditions)]
        where = _reduce(conds, "and" if segment.match == "all" else "or")
        out.append(Compiled(segment, t, conds, [describe(x) for x in segment.conditions], where,
                            set(c.behaviour_datasets), base, c))
    return out


def failing_sql(ctx: Context, segment: SegmentConfig) -> tuple[str, str, str] | None:
    """The SQL condition of ``segment`` that the engine cannot compute on its dataset's rows, as
    (its place in the configuration, its text, the engine's words); None when each one alone works.

    Used to explain an engine failure of the whole segment: each condition is computed alone."""
    c = _Compiler(ctx, segment.dataset)
    base = f"segment '{segment.name}'.conditions"
    for i, cond in enumerate(segment.conditions):
        c.collect(cond, f"{base}[{i}]", (segment.name,))
    t = ctx.table(segment.dataset)
    for name, sql, _cond, where in c.sql:
        expr = check_expression(sql, set(t.columns), where=f"{where}.sql")
        one = ctx.adapter.add_sql_columns(t, [(name, ctx.adapter.dialect.render(expr))])
        try:
            ctx.adapter.count(one.filter(one[name]))
        except Exception as exc:  # noqa: BLE001 - the condition to name
            text = str(exc).split("\nSQL: ")[0].removeprefix("DuckDB refused a statement: ").strip()
            return f"{where}.sql", sql, " ".join((text.splitlines() or [type(exc).__name__])[0].split())[:400]
    return None


def explain_failure(ctx: Context, segment: SegmentConfig, exc: BaseException) -> str:
    """Why the engine could not compute ``segment`` (its error ``exc``), naming the failing SQL
    condition when one fails on its own."""
    try:
        found = failing_sql(ctx, segment)
    except Exception:  # noqa: BLE001 - the diagnosis is a courtesy: the first error is reported
        found = None
    if found is None:
        text = str(exc).split("\nSQL: ")[0].removeprefix("DuckDB refused a statement: ").strip()
        return "the engine could not compute it: " + " ".join((text.splitlines() or [type(exc).__name__])[0].split())
    place, sql, message = found
    return (f"the engine could not compute its condition {place} ({sql}) on the dataset's rows: {message}; fix the "
            "condition (tessera apply checks what it may use, not the values it meets)")


@dataclass(frozen=True)
class CountPlan:
    """The compiled query of a live count (see :func:`prepare_count`)."""

    segment: str
    dataset: str
    match: str
    labels: tuple[str, ...]
    query: Any  # tessera.engine.base.Prepared


def prepare_count(adapter, compiled: Compiled) -> CountPlan:
    """Compile the count of a segment: the number of records, and the count after each top-level
    condition (cumulative: each narrows, or with ``match: any`` widens, the audience), in one query."""
    seg = compiled.segment
    how = "and" if seg.match == "all" else "or"

    def steps(t: ibis.Table, conditions: list, first: int, **aggs) -> ibis.Table:
        acc = None
        for i, c in enumerate(conditions, start=first):
            acc = c if acc is None else (acc & c if how == "and" else acc | c)
            aggs[f"_s{i}"] = acc.ifelse(1, 0).sum()
        return t.aggregate(**aggs)

    c = compiled.compiler
    k = next((i for i, cond in enumerate(seg.conditions) if c is not None and c.uses_behaviour(cond)), 0)
    if how == "or" or k == 0:
        query = steps(compiled.table, compiled.conditions, 0, _n=compiled.table.count())
    else:
        # The behaviour values are joined to the records the conditions before the first behaviour
        # condition keep, not to every record (at 1M records that join costs as much as the scan
        # of 10M events): the counts up to it are read from the dataset, the later ones from
        # those records.
        base = compiled.base
        where = f"segment '{seg.name}'.conditions"
        head = [c.expr(cond, base, f"{where}[{i}]", (seg.name,)) for i, cond in enumerate(seg.conditions[:k])]
        narrowed = c.join_behaviours(base.filter(_reduce(head, "and")))
        tail = [c.expr(cond, narrowed, f"{where}[{i}]", (seg.name,))
                for i, cond in enumerate(seg.conditions[k:], start=k)]
        query = steps(base, head, 0, _n=base.count()).cross_join(steps(narrowed, tail, k))
    return CountPlan(seg.name, seg.dataset, seg.match, tuple(compiled.labels), adapter.prepare(query))


def run_count(adapter, plan: CountPlan) -> dict:
    """Run a compiled count: ``{"segment", "dataset", "records", "count", "match", "steps"}``."""
    row = adapter.fetch(plan.query)[0]
    steps = [{"condition": label, "count": int(row[f"_s{i}"] or 0)} for i, label in enumerate(plan.labels)]
    return {"segment": plan.segment, "dataset": plan.dataset, "records": int(row["_n"] or 0),
            "count": steps[-1]["count"] if steps else 0, "match": plan.match, "steps": steps}


def count_steps(adapter, compiled: Compiled) -> dict:
    """The number of records, the count of the whole definition and the count after each
    top-level condition (cumulative: each narrows, or with ``match: any`` widens, the audience),
    in one query."""
    return run_count(adapter, prepare_count(adapter, compiled))
