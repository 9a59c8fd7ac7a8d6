"""Compiling a question (dataset, dimensions, measures, filters) to one grouped Ibis query.

A question runs on one published dataset with, beside its columns,

- the columns of related datasets it names (``contacts.birth_date`` on orders), left-joined once per
  related dataset through the link column (``tessera_contacts_id``), named ``<dataset>__<column>``;
- one flag per segment it uses (``segment__<segment>``), from the members of the segment's last
  refresh, joined on the record (the segment's dataset) or on the link to it;
- the helper columns of the segment compiler (:mod:`tessera.segments.compile`) for its filters, the
  dashboard's filters turned into conditions, and the conditions of ``share`` measures.

The result is one ``GROUP BY`` over the dimensions, computed in the engine; bands (age, month,
number bins) are expressions with a sort key so their order is the bands' order, not the labels'.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any, Callable

import ibis
import ibis.expr.datatypes as dt

from tessera.config.models import (
    ConditionConfig,
    DatasetConfig,
    DimensionConfig,
    MeasureConfig,
    QuestionConfig,
    SegmentConfig,
    WorkspaceConfig,
)
from tessera.errors import ConfigError
from tessera.segments import MEMBERS, Context, compile_segment
from tessera.segments.compile import _compare
from tessera.segments.related import _semantics, links_to
from tessera.sqlcheck import check_expression, referenced_columns

TID = "tessera_id"
AGE_BANDS = [(None, 18, "under 18"), (18, 25, "18-24"), (25, 35, "25-34"), (35, 45, "35-44"), (45, 55, "45-54"),
             (55, 65, "55-64"), (65, None, "65 and over")]
WEEKDAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
TEMPORAL_BANDS = ("day", "week", "month", "quarter", "year")
_TRUNC = {"week": "W", "month": "M", "quarter": "Q", "year": "Y"}


class Unavailable(ConfigError):
    """A question that cannot run on this workspace: its dataset, a column or a link is missing
    (answered like any configuration error; a dashboard shows it in place of the chart)."""


@dataclass
class Filters:
    """The values of a dashboard's filters: a period (inclusive days), stores, channels, a segment."""

    date_from: date | None = None
    date_to: date | None = None
    stores: list[str] = field(default_factory=list)
    channels: list[str] = field(default_factory=list)
    segment: str | None = None

    def active(self) -> list[str]:
        out = []
        if self.date_from or self.date_to:
            out.append("period")
        if self.stores:
            out.append("store")
        if self.channels:
            out.append("channel")
        if self.segment:
            out.append("segment")
        return out

    def key(self) -> tuple:
        return (self.date_from, self.date_to, tuple(self.stores), tuple(self.channels), self.segment)


@dataclass
class Column:
    """One column of a question's result: its key in the rows, its role and its Vega-Lite type."""

    key: str
    label: str
    role: str  # dimension | measure
    vega_type: str  # nominal | ordinal | temporal | quantitative
    order: list[str] | None = None  # the bands' labels in their order (ordinal dimensions)
    time_unit: str | None = None  # Vega-Lite's time unit of a date band (yearmonth...)
    percent: bool = False  # a share (0 to 1), shown as a percentage
    term: str | None = None  # the label's entry in the web app's catalogs (chart.<term>), when not its slug
    args: dict[str, str] | None = None  # the values of the term's {placeholders}


@dataclass
class Plan:
    question: QuestionConfig
    expr: ibis.Table  # the grouped, sorted result
    columns: list[Column]
    applied: list[str]  # dashboard filters that narrow this question
    ignored: list[str]  # dashboard filters that do not concern it (no such column)
    datasets: set[str]
    segments: set[str]
    notes: list[str] = field(default_factory=list)  # optional measures left out, and why


@dataclass
class Source:
    """How questions read a workspace (what :meth:`Workspace._analytics_source` gives)."""

    adapter: Any
    config: WorkspaceConfig
    as_of: date
    table: Callable[[str], ibis.Table]  # a published dataset
    segment_context: Context
    members: Callable[[], ibis.Table | None]  # the segment members table, when it exists
    # the orders joined to their customers once (tessera.analytics.facts), when prepared for the
    # current publications: dataset -> table or None
    facts: Callable[[str], ibis.Table | None] | None = None
    # rows several questions of one dashboard view read (the customers who bought in the period, at
    # the stores, on the channels; the orders of the period...): (key, expression, the columns this
    # question reads or None for all) -> a table computed once for the view, or the expression
    # itself (:meth:`tessera.analytics.Analytics.run_dashboard`)
    once: Callable[[tuple, ibis.Table, set[str] | None], ibis.Table] | None = None


# --------------------------------------------------------------------------- references


def _slug(text: str) -> str:
    s = re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")
    return s or "value"


def customer_dataset(config: WorkspaceConfig) -> DatasetConfig | None:
    """The dataset of customers: the first deduplicated dataset (the one segments usually target)."""
    return next((d for d in config.datasets if d.deduplicate), None)


class _Refs:
    """Resolves the names a question uses (``@Semantic``, ``dataset.column``) to columns of the
    joined table, remembering the related columns to join."""

    def __init__(self, src: Source, q: QuestionConfig, where: str):
        self.src = src
        self.config = src.config
        self.q = q
        self.where = where
        names = {d.name: d for d in self.config.datasets}
        if q.dataset not in names:
            raise Unavailable(f"{where}.dataset: this workspace has no dataset '{q.dataset}' "
                              f"(datasets: {', '.join(names) or 'none'})")
        self.base = src.table(q.dataset)
        self.related: dict[str, dict[str, str]] = {}  # dataset -> {column: joined name}
        self.segments: dict[str, str] = {}  # segment -> flag column
        self.buyers: ibis.Column | None = None  # customers kept by the dashboard's order filters
        self.buyers_key: tuple | None = None  # their key in the dashboard view (Source.once)
        self.buyers_members = False  # whether they are kept to the segment filter's members already
        self.narrowing: list[dict] = []  # the dashboard's conditions, to copy the rows once per view
        self.copy: tuple[tuple, ibis.Table] | None = None  # (key, the customers the filters keep)
        self.from_copy = False  # whether the rows read are that copy (or its expression)
        self.datasets = {q.dataset}

    def semantic(self, dataset: str, field_name: str, where: str) -> str:
        col = _semantics(self.config, dataset).get(field_name)
        if col is None:
            raise Unavailable(f"{where}: dataset '{dataset}' has no column with the semantic field {field_name}; "
                              f"set semantic: {field_name} on one of its columns")
        return col

    def column(self, ref: str, where: str) -> str:
        """The joined table's column for ``ref``."""
        if ref in self.segments.values():
            return ref
        if "." in ref:
            other, col = ref.split(".", 1)
            if other == self.q.dataset:
                return self.column(col, where)
            if other not in {d.name for d in self.config.datasets}:
                raise Unavailable(f"{where}: '{ref}' names dataset '{other}', which this workspace does not have")
            if col.startswith("@"):
                col = self.semantic(other, col[1:], where)
            table = self.src.table(other)
            if col not in table.columns:
                raise Unavailable(f"{where}: dataset '{other}' has no column '{col}'")
            if links_to(self.config, self.q.dataset, other) is None:
                raise Unavailable(f"{where}: dataset '{self.q.dataset}' has no link to dataset '{other}' (a relation "
                                  f"of its sources to '{other}'); use a column of '{self.q.dataset}'")
            self.datasets.add(other)
            return self.related.setdefault(other, {}).setdefault(col, f"{other}__{col}")
        col = self.semantic(self.q.dataset, ref[1:], where) if ref.startswith("@") else ref
        if col not in self.base.columns or col.startswith("_tessera"):
            known = [c for c in self.base.columns if not c.startswith("_")]
            raise Unavailable(f"{where}: dataset '{self.q.dataset}' has no column '{col}' (columns: "
                              f"{', '.join(known[:40])}{'...' if len(known) > 40 else ''})")
        return col

    def segment_flag(self, name: str, where: str) -> str:
        seg = next((s for s in self.config.segments if s.name == name), None)
        if seg is None:
            raise Unavailable(f"{where}: unknown segment '{name}' (segments: "
                              f"{', '.join(s.name for s in self.config.segments) or 'none'})")
        if seg.dataset != self.q.dataset and links_to(self.config, self.q.dataset, seg.dataset) is None:
            raise Unavailable(f"{where}: segment '{name}' is on dataset '{seg.dataset}', which dataset "
                              f"'{self.q.dataset}' does not link to")
        return self.segments.setdefault(name, f"segment__{name}")

    def customer_key(self, where: str) -> str:
        cust = customer_dataset(self.config)
        if cust is None:
            raise Unavailable(f"{where}: no dataset of customers (a dataset with deduplicate: true) to count")
        if cust.name == self.q.dataset:
            return TID
        link = links_to(self.config, self.q.dataset, cust.name)
        if link is None or link not in self.base.columns:
            raise Unavailable(f"{where}: dataset '{self.q.dataset}' has no link to the customers of '{cust.name}'")
        return link

    def joined(self, needed: set[str] | None = None) -> ibis.Table:
        """The dataset (only the ``needed`` columns when given: a narrow table compiles and runs
        faster) with the related columns and segment flags joined."""
        t = self.base
        related, segments = dict(self.related), dict(self.segments)
        facts = self.src.facts(self.q.dataset) if self.src.facts is not None and (related or segments) else None
        if facts is not None:
            # the columns and flags the facts table already holds are read from it, not joined
            have = set(facts.columns)
            related = {o: cols for o, cols in related.items() if not all(n in have for n in cols.values())}
            segments = {n: f for n, f in segments.items() if f not in have}
            if len(related) == len(self.related) and len(segments) == len(self.segments):
                facts = None
            else:
                t = facts
                if needed is not None:
                    needed = needed | {n for o, cols in self.related.items() if o not in related
                                       for n in cols.values()} | {f for n, f in self.segments.items()
                                                                  if n not in segments}
        if facts is None and self.copy is not None:
            t = self.src.once(*self.copy, needed)
            self.from_copy = True
        elif self.narrowing and self.src.once is not None:
            if facts is None:
                t = self._with_filtered_columns(t)
            t = self._narrowed(t, "facts" if facts is not None else "dataset", needed)
            related = {o: cols for o, cols in related.items() if not all(n in t.columns for n in cols.values())}
        if needed is not None:
            keep = [c for c in t.columns if c in needed or c == TID]
            t = t.select(*keep)
        if facts is not None:  # a dataset the facts hold only some of the columns of is joined whole
            t = t.drop(*[n for cols in related.values() for n in cols.values() if n in t.columns])
        for other, cols in related.items():
            link = links_to(self.config, self.q.dataset, other)
            rel = self.src.table(other)
            rel = rel.select(_tessera_k=rel[TID].cast("string"), **{name: rel[c] for c, name in cols.items()})
            t = t.left_join(rel, t[link].cast("string") == rel._tessera_k).drop("_tessera_k")
        return self._flags(t, segments)

    def _with_filtered_columns(self, t: ibis.Table) -> ibis.Table:
        """In a dashboard view, when the dashboard's conditions name columns of a related dataset
        (the order lines' period and store are their order's) or a segment's flag: ``t`` with every
        column of those datasets (``<dataset>__<column>``) and those flags joined, the same for
        every question of the view, so that its rows are narrowed and copied once
        (:meth:`_narrowed`: only the columns the view's questions read are kept) and each question
        reads the related columns from the copy instead of joining them again."""
        named = {c.get("column") for c in self.narrowing} - set(t.columns)
        others = sorted(o for o, cols in self.related.items() if named & set(cols.values()))
        flags = sorted((n, f) for n, f in self.segments.items() if f in named)
        if not others and not flags:
            return t
        for other in others:
            link = links_to(self.config, self.q.dataset, other)
            rel = self.src.table(other)
            rel = rel.select(_tessera_k=rel[TID].cast("string"),
                             **{f"{other}__{c}": rel[c] for c in rel.columns if f"{other}__{c}" not in t.columns})
            t = t.left_join(rel, t[link].cast("string") == rel._tessera_k).drop("_tessera_k")
        return self._flags(t, dict(flags))

    def _flags(self, t: ibis.Table, segments: dict[str, str]) -> ibis.Table:
        """``t`` with a flag column per segment (``name -> flag``): whether the row's customer is
        among its members of the last refresh (a flag already on the rows is kept)."""
        members = self.src.members() if segments else None
        for name, flag in segments.items():
            if flag in t.columns:  # already on the rows (a dashboard view's copy of its customers)
                continue
            seg = next(s for s in self.config.segments if s.name == name)
            key = TID if seg.dataset == self.q.dataset else links_to(self.config, self.q.dataset, seg.dataset)
            if members is None:
                t = t.mutate(**{flag: ibis.literal(False)})
                continue
            m = members.filter(members.segment == name).select(_tessera_m=members.tessera_id.cast("string"))
            m = m.distinct().mutate(**{flag: ibis.literal(True)})
            t = t.left_join(m, t[key].cast("string") == m._tessera_m).drop("_tessera_m")
            t = t.mutate(**{flag: t[flag].fill_null(False)})
        return t

    def _narrowed(self, t: ibis.Table, which: str, needed: set[str] | None) -> ibis.Table:
        """In a dashboard view: the rows of ``t`` (the dataset or its order facts) kept by the
        dashboard's conditions on its own columns, copied once for every question of the view
        (:attr:`Source.once`); the questions still apply every condition (the same rows)."""
        usable = [c for c in self.narrowing if c.get("column") in t.columns]
        if not usable:
            return t
        rows = t.filter(*[_kept(t, c, self.where, self.src.as_of) for c in usable])
        key = ("rows", self.q.dataset, which, json.dumps(usable, sort_keys=True, default=str))
        return self.src.once(key, rows, needed)


def _rewrite(cond: dict, refs: _Refs, where: str) -> dict:
    """A condition (as a mapping) with its related and semantic column names made joined columns."""
    out = dict(cond)
    for key in ("all", "any"):
        if out.get(key):
            out[key] = [_rewrite(c, refs, f"{where}.{key}[{i}]") for i, c in enumerate(out[key])]
    if out.get("not"):
        out["not"] = _rewrite(out["not"], refs, f"{where}.not")
    if out.get("column") and out.get("aggregate") is None:
        out["column"] = refs.column(out["column"], f"{where}.column")
    return out


# --------------------------------------------------------------------------- dashboard filters


def _filter_conditions(refs: _Refs, filters: Filters, where: str) -> tuple[list[dict], list[str], list[str]]:
    """The dashboard's filters as conditions on the question's dataset, with the filters applied and
    those that do not concern it."""
    config, q = refs.config, refs.q
    conds: list[dict] = []
    applied: list[str] = []
    ignored: list[str] = []
    wanted = filters.active()
    if not wanted:
        return conds, applied, ignored
    cust = customer_dataset(config)
    orders = _orders_dataset(config, cust.name if cust else None)
    own = _semantics(config, q.dataset)

    def find(field_name: str, explicit: str | None = None) -> str | None:
        if explicit:
            return explicit
        if field_name in own:
            return own[field_name]
        for d in config.datasets:  # a related dataset that carries it (order lines -> orders)
            if d.name != q.dataset and links_to(config, q.dataset, d.name) and field_name in _semantics(config, d.name):
                return f"{d.name}.{_semantics(config, d.name)[field_name]}"
        return None

    is_customers = cust is not None and q.dataset == cust.name and orders is not None
    date_col = find("OrderDate", q.date_column) or find("EventTime")
    behaviour: list[tuple[str, str]] = []  # (filter, orders' column): customers who bought so
    for name in ("period", "store", "channel"):
        if name not in wanted:
            continue
        if name == "period":
            col = date_col
            if is_customers and q.date_column is None:
                col = "@OrderDate"
        else:
            col = find("Store" if name == "store" else "Channel")
            if is_customers and col is None:
                col = "@Store" if name == "store" else "@Channel"
        if col is None:
            ignored.append(name)
            continue
        if is_customers and col.startswith("@"):
            # customers who bought in the period / at the store / on the channel
            ocol = _semantics(config, orders).get(col[1:])
            if ocol is None:
                ignored.append(name)
                continue
            behaviour.append((name, ocol))
            applied.append(name)
            continue
        if name == "period":
            if filters.date_from and filters.date_to:
                conds.append({"column": col, "op": "between",
                              "value": [filters.date_from.isoformat(), filters.date_to.isoformat()]})
            elif filters.date_from:
                conds.append({"column": col, "op": ">=", "value": filters.date_from.isoformat()})
            else:
                conds.append({"column": col, "op": "<=", "value": filters.date_to.isoformat()})
        else:
            conds.append({"column": col, "op": "in", "value": filters.stores if name == "store" else filters.channels})
        applied.append(name)
    if behaviour:
        refs.buyers = _buyers(refs, orders, cust.name, behaviour, filters)
    if "segment" in wanted:
        try:
            refs.segment_flag(filters.segment, f"{where} filter segment")
            conds.append({"column": f"segment__{filters.segment}", "op": "is_true"})
            applied.append("segment")
        except Unavailable:
            if filters.segment not in {s.name for s in config.segments}:
                raise
            ignored.append("segment")
    return conds, applied, ignored


def _buyers(refs: _Refs, orders: str, customers: str, behaviour: list[tuple[str, str]],
            filters: Filters) -> ibis.Column:
    """The customers with an order in the period, at one of the stores, on one of the channels:
    one semi-join on the orders (a subquery the engine runs once per question, or a table computed
    once for all the questions of a dashboard view when the source gives :attr:`Source.once`)."""
    # the order facts when prepared: the same orders, stored in the order of their date
    o = refs.src.facts(orders) if refs.src.facts is not None else None
    if o is None:
        o = refs.src.table(orders)
    link = links_to(refs.config, orders, customers)
    keep = o[link].notnull()
    for name, col in behaviour:
        c = o[col]
        if name == "period":
            keep = keep & _in_period(c, filters.date_from, filters.date_to)
        else:
            keep = keep & c.cast("string").isin(filters.stores if name == "store" else filters.channels)
    # with a segment filter on the customers, the order facts' flag of its members (of the same
    # refresh) keeps the buyers who are members: the copy of their rows needs no join with them
    seg = next((s for s in refs.config.segments if s.name == filters.segment), None) if filters.segment else None
    flag = f"segment__{seg.name}" if seg is not None and seg.dataset == customers else None
    if flag is not None and flag in o.columns:
        keep = keep & o[flag]
        refs.buyers_members = True
    refs.datasets.add(orders)
    buyers = o.filter(keep).select(_tessera_b=o[link].cast("string"))
    if refs.src.once is not None:
        # the same customers for every question of the dashboard: their rows are copied once for
        # the view (see plan), the semi-join made by that copy
        refs.buyers_key = ("buyers", orders, customers, tuple(behaviour), filters.key(), refs.buyers_members)
    return buyers._tessera_b


def _in_period(col: ibis.Value, since: date | None, until: date | None) -> ibis.BooleanValue:
    """Whether ``col`` (a date or a timestamp) falls on a day from ``since`` to ``until`` (both
    included, either may be None). A timestamp without a time zone is compared with the bounds'
    midnights (``>= since``, ``< the day after until``), which is its day being in the period
    without casting every row to a date: the engine then reads the bounds against each block's
    min and max (a table stored in time order is read for the period's blocks only)."""
    typ = col.type()
    parts = []
    if typ.is_timestamp() and typ.timezone is None:
        if since:
            parts.append(col >= ibis.literal(datetime.combine(since, time()), dt.timestamp))
        if until and until < date.max:
            parts.append(col < ibis.literal(datetime.combine(until + timedelta(days=1), time()), dt.timestamp))
    else:
        day = col.cast("date") if typ.is_timestamp() else col
        if since:
            parts.append(day >= ibis.literal(since, dt.date))
        if until:
            parts.append(day <= ibis.literal(until, dt.date))
    if not parts:
        return col.notnull()  # an open period: every dated row
    keep = parts[0]
    for p in parts[1:]:
        keep = keep & p
    return keep


def _kept(t: ibis.Table, cond: dict, where: str, as_of: date) -> ibis.BooleanValue:
    """The predicate of one of the dashboard's filters (:func:`_filter_conditions`: a period, the
    stores or channels, a segment's flag) on ``t``: what the segment compiler's condition keeps
    in a filter (a row whose value is null is not kept), written so that the engine pushes it
    into its scans and joins (no ``COALESCE(..., FALSE)`` around it, a period on a timestamp
    without casting it: :func:`_in_period`)."""
    col, op, value = t[cond["column"]], cond["op"], cond.get("value")
    if op in ("between", ">=", "<=") and (col.type().is_timestamp() or col.type().is_date()):
        lo, hi = value if op == "between" else ((value, None) if op == ">=" else (None, value))
        return _in_period(col, date.fromisoformat(lo) if lo else None, date.fromisoformat(hi) if hi else None)
    return _compare(col, op, value, where, as_of, cond.get("unit") or "days")


def _orders_dataset(config: WorkspaceConfig, customers: str | None) -> str | None:
    if customers is None:
        return None
    for d in config.datasets:
        if d.name != customers and "OrderDate" in _semantics(config, d.name) and links_to(config, d.name, customers):
            return d.name
    return None


# --------------------------------------------------------------------------- dimensions and measures


def _dimension(t: ibis.Table, refs: _Refs, d: DimensionConfig, i: int, as_of: date, where: str
               ) -> tuple[str, ibis.Value, ibis.Value | None, Column]:
    """(key, value, sort key or None, column) of one dimension."""
    if d.segment is not None:
        flag = refs.segments[d.segment]
        label = d.label or f"in {d.segment}"
        value = t[flag].ifelse(f"in {d.segment}", f"not in {d.segment}")
        return _slug(label), value, t[flag].ifelse(0, 1), Column(_slug(label), label, "dimension", "nominal",
                                                                [f"in {d.segment}", f"not in {d.segment}"])
    name = refs.column(d.column, where)
    col = t[name]
    typ = col.type()
    base_label = d.label or d.column.split(".")[-1].lstrip("@").replace("_", " ")
    if d.band == "age":
        if not (typ.is_date() or typ.is_timestamp()):
            raise ConfigError(f"{where}.band: age bands need a birth date; '{d.column}' holds {typ}")
        day = col.cast("date")
        md = day.month() * 100 + day.day()
        age = (as_of.year - day.year()) - (md > (as_of.month * 100 + as_of.day)).ifelse(1, 0)
        branches, order = [], []
        for k, (lo, hi, label) in enumerate(AGE_BANDS):
            cond = (age >= lo) if hi is None else ((age < hi) if lo is None else ((age >= lo) & (age < hi)))
            branches.append((cond, label))
            order.append((cond, k))
        value = ibis.cases(*branches, else_=d.empty or "unknown")
        sort = ibis.cases(*order, else_=len(AGE_BANDS))
        labels = [b[2] for b in AGE_BANDS] + [d.empty or "unknown"]
        label = d.label or "age"
        return _slug(label), value, sort, Column(_slug(label), label, "dimension", "ordinal", labels)
    if d.band is not None:
        if not (typ.is_date() or typ.is_timestamp()):
            raise ConfigError(f"{where}.band: {d.band} is a band of a date; '{d.column}' holds {typ}")
        day = col.cast("date")
        key = _slug(f"{base_label} {d.band}") if not d.label else _slug(d.label)
        if d.band == "weekday":
            idx = day.day_of_week.index()
            value = ibis.cases(*[(idx == k, w) for k, w in enumerate(WEEKDAYS)], else_=None)
            return key, value, idx, Column(key, d.label or f"{base_label} (day of week)", "dimension", "ordinal",
                                           list(WEEKDAYS))
        value = day if d.band == "day" else day.truncate(_TRUNC[d.band]).cast("date")
        unit = {"day": "yearmonthdate", "week": "yearmonthdate", "month": "yearmonth", "quarter": "yearquarter",
                "year": "year"}[d.band]
        return key, value, None, Column(key, d.label or f"{base_label} ({d.band})", "dimension", "temporal",
                                        time_unit=unit)
    if d.bins:
        if not typ.is_numeric():
            raise ConfigError(f"{where}.bins: bins are bands of a number; '{d.column}' holds {typ}")
        edges = list(d.bins)
        fmt = lambda x: f"{x:g}"  # noqa: E731
        labels = [f"under {fmt(edges[0])}", *[f"{fmt(lo)}-{fmt(hi)}" for lo, hi in zip(edges, edges[1:])],
                  f"{fmt(edges[-1])} and over"]
        labels = list(d.labels) if d.labels else labels
        branches = [(col < edges[0], labels[0])]
        for k, (lo, hi) in enumerate(zip(edges, edges[1:])):
            branches.append(((col >= lo) & (col < hi), labels[k + 1]))
        branches.append((col >= edges[-1], labels[-1]))
        value = ibis.cases(*branches, else_=d.empty or "unknown")
        sort = ibis.cases(*[(c, k) for k, (c, _l) in enumerate(branches)], else_=-1 if d.empty else len(branches))
        key = _slug(d.label or base_label)
        labels = [d.empty, *labels] if d.empty else [*labels, "unknown"]
        return key, value, sort, Column(key, d.label or base_label, "dimension", "ordinal", labels)
    key = _slug(d.label or base_label)
    if typ.is_date() or typ.is_timestamp():
        return key, col, None, Column(key, d.label or base_label, "dimension", "temporal")
    if typ.is_numeric():
        return key, col, None, Column(key, d.label or base_label, "dimension", "ordinal")
    if typ.is_boolean():
        return key, col.cast("string").fill_null(d.empty or "unknown"), None, Column(key, d.label or base_label, "dimension",
                                                                          "nominal")
    value = col.cast("string").fill_null(d.empty or "(empty)")
    if d.order:
        # the listed values first, in their order; the others after them
        listed = list(dict.fromkeys(d.order))
        sort = ibis.cases(*[(value == v, k) for k, v in enumerate(listed)], else_=len(listed))
        return key, value, sort, Column(key, d.label or base_label, "dimension", "ordinal", listed)
    return key, value, None, Column(key, d.label or base_label, "dimension", "nominal")


def _measure_label(m: MeasureConfig) -> str:
    if m.label:
        return m.label
    what = (m.column or m.sql or "").split(".")[-1].lstrip("@").replace("_", " ")
    return {"count": "rows", "customers": "customers", "share": "share"}.get(m.fn) or f"{m.fn} of {what}"


# --------------------------------------------------------------------------- the plan


def plan(src: Source, q: QuestionConfig, filters: Filters | None = None, *, where: str | None = None) -> Plan:
    """The query of question ``q`` with the dashboard's ``filters`` (see the module's documentation).

    Raises:
        Unavailable: its dataset, a column, a link or a segment is missing in this workspace.
        ConfigError: a band does not fit its column's type, a SQL expression is refused.
    """
    filters = filters or Filters()
    where = where or f"question '{q.name}'"
    refs = _Refs(src, q, where)
    notes: list[str] = []
    if any(m.optional for m in q.measures):
        kept = []
        for i, m in enumerate(q.measures):
            try:
                if m.optional and m.column:
                    refs.column(m.column, f"{where}.measures[{i}].column")
                if m.optional and m.where is not None:
                    _rewrite(m.where.model_dump(mode="json", exclude_defaults=True, by_alias=True), refs,
                             f"{where}.measures[{i}].where")
                kept.append(m)
            except Unavailable as exc:
                notes += exc.problems
        if not kept:
            raise Unavailable(notes)
        q = q.model_copy(update={"measures": kept})
    # names first (they decide the joins), then expressions on the joined table
    for i, d in enumerate(q.dimensions):
        if d.segment is not None:
            refs.segment_flag(d.segment, f"{where}.dimensions[{i}].segment")
        else:
            refs.column(d.column, f"{where}.dimensions[{i}].column")
    measure_cols = []
    for i, m in enumerate(q.measures):
        mw = f"{where}.measures[{i}]"
        measure_cols.append(refs.column(m.column, f"{mw}.column") if m.column else None)
        if m.fn == "customers":
            refs.customer_key(mw)
    conditions = [_rewrite(c.model_dump(mode="json", exclude_defaults=True, by_alias=True), refs,
                           f"{where}.filters[{i}]") for i, c in enumerate(q.filters)]
    extra, applied, ignored = _filter_conditions(refs, filters, where)
    # the dashboard's filters: plain predicates on the rows (the engine pushes them into its scans
    # and joins), not conditions of the segment compiler (see _kept)
    dashboard = [_rewrite(c, refs, f"{where} filter {j}") for j, c in enumerate(extra)]
    if src.once is not None and refs.buyers_key is None:
        refs.narrowing = dashboard
    n_all = len(conditions)
    for i, m in enumerate(q.measures):
        if m.fn == "share":
            conditions.append(_rewrite(m.where.model_dump(mode="json", exclude_defaults=True, by_alias=True), refs,
                                       f"{where}.measures[{i}].where"))
    if refs.buyers_key is not None:
        # in a dashboard view, the customers kept by its order filters are copied once (every
        # column) for all its questions: each then reads a few thousand rows, not every customer
        b = refs.base
        narrowed = b.filter(b[TID].cast("string").isin(refs.buyers))
        seg = next((s for s in src.config.segments if s.name == filters.segment), None) \
            if "segment" in applied else None
        if seg is not None and seg.dataset == q.dataset:
            # and the segment's flag, read from the copy instead of joined to each question
            members = src.members()
            flag = refs.segments[seg.name]
            if members is None:
                narrowed = narrowed.mutate(**{flag: ibis.literal(False)})
            else:
                if not refs.buyers_members:
                    m = members.filter(members.segment == seg.name).select(
                        _tessera_m=members.tessera_id.cast("string"))
                    narrowed = narrowed.filter(narrowed[TID].cast("string").isin(m._tessera_m))
                narrowed = narrowed.mutate(**{flag: ibis.literal(True)})
        refs.copy = (("customers", q.dataset, seg.name if seg else None, refs.buyers_key), narrowed)
    joined = refs.joined(_needed(refs, q, conditions + dashboard, measure_cols))
    if refs.buyers is not None and not refs.from_copy:  # (the copy holds only the customers who bought so)
        joined = joined.filter(joined[TID].cast("string").isin(refs.buyers))
    if dashboard:
        joined = joined.filter(*[_kept(joined, c, f"{where} filter {j}", src.as_of) for j, c in enumerate(dashboard)])
    if conditions:
        ctx = Context(src.adapter, src.config, src.as_of,
                      lambda name: joined if name == q.dataset else src.table(name),
                      src.segment_context.related)
        try:
            seg = SegmentConfig(name="question", dataset=q.dataset,
                                conditions=[ConditionConfig.model_validate(c) for c in conditions])
        except ValueError as exc:
            raise ConfigError(f"{where}.filters: {exc}") from None
        compiled = compile_segment(ctx, seg)
        t = compiled.table
        keep = None
        for c in compiled.conditions[:n_all]:
            keep = c if keep is None else keep & c
        shares = compiled.conditions[n_all:]
        t = t.mutate(**{f"_tessera_share{k}": c for k, c in enumerate(shares)})
        if keep is not None:
            t = t.mutate(_tessera_keep=keep)
            t = t.filter(t._tessera_keep)
    else:
        t = joined
    sql_cols = [(f"_tessera_m{i}", m.sql, i) for i, m in enumerate(q.measures) if m.sql]
    if sql_cols:
        rendered = []
        for name, sql, i in sql_cols:
            expr = check_expression(sql, set(t.columns), where=f"{where}.measures[{i}].sql")
            rendered.append((name, src.adapter.dialect.render(expr)))
        t = src.adapter.add_sql_columns(t, rendered)
    # Bands computed per row (an age band: a dozen date computations in a CASE) cost more than the
    # grouping itself: the rows are first grouped by the band's date (thousands of birth days)
    # with partial measures, and the bands computed on those groups (see _two_levels).
    rows, (t, partial) = t, _two_levels(t, refs, q, measure_cols, src.as_of, where)
    # dimensions
    groups: dict[str, ibis.Value] = {}
    sorts: list[str] = []
    columns: list[Column] = []
    used: set[str] = set()
    for i, d in enumerate(q.dimensions):
        if partial is not None and not (d.band in _TWO_LEVEL_BANDS and d.column):
            # computed by the first grouping
            key, value, sort, column = _dimension(rows, refs, d, i, src.as_of, f"{where}.dimensions[{i}]")
            value, sort = t[f"_tessera_d{i}"], (t[f"_tessera_s{i}"] if sort is not None else None)
        else:
            key, value, sort, column = _dimension(t, refs, d, i, src.as_of, f"{where}.dimensions[{i}]")
        key = _unique(key, used)
        column.key = key
        groups[key] = value
        if sort is not None:
            groups[f"_tessera_o{i}"] = sort
            sorts += [f"_tessera_o{i}", key]  # (values outside a listed order: by name)
        else:
            sorts.append(key)
        columns.append(column)
    # measures
    aggs: dict[str, ibis.Value] = {}
    share_index = 0
    for i, m in enumerate(q.measures):
        mw = f"{where}.measures[{i}]"
        label = _measure_label(m)
        key = _unique(_slug(label), used)
        if partial is not None:
            aggs[key] = partial[i]
            columns.append(Column(key, label, "measure", "quantitative", percent=m.fn == "share"))
            continue
        if m.fn == "count":
            value = t.count()
        elif m.fn == "customers":
            link = refs.customer_key(mw)
            # On the customers' own dataset each row is one customer (its joins are to one row each and
            # the dashboard's filters are semi-joins): counting rows gives the same number without the
            # costly distinct count of text ids.
            value = t.count() if link == TID else t[link].nunique()
        elif m.fn == "share":
            flag = t[f"_tessera_share{share_index}"]
            share_index += 1
            value = flag.ifelse(1, 0).cast("float64").mean().cast("float64")
        else:
            col = t[f"_tessera_m{i}"] if m.sql else t[measure_cols[i]]
            if not col.type().is_numeric() and m.fn in ("sum", "avg", "median"):
                if col.type().is_boolean():
                    col = col.ifelse(1, 0)
                else:
                    raise ConfigError(f"{mw}: {m.fn} needs numbers; '{m.column or m.sql}' holds {col.type()}")
            if m.fn in ("avg", "median"):
                col = col.cast("float64")
            value = {"sum": col.sum, "avg": col.mean, "median": col.median, "min": col.min, "max": col.max}[m.fn]()
            if m.fn in ("avg", "median"):
                value = value.cast("float64")
        aggs[key] = value
        columns.append(Column(key, label, "measure", "quantitative", percent=m.fn == "share"))
    if groups:
        out = t.group_by(**groups).aggregate(**aggs)
        first_measure = next(c.key for c in columns if c.role == "measure")
        by_measure = q.sort == "measure" or (
            q.sort is None and len(q.dimensions) == 1 and columns[0].vega_type == "nominal"
            and sorts[0] == columns[0].key)
        order = [ibis.desc(first_measure), *sorts] if by_measure else [*sorts]
        out = out.order_by(order)
        if q.limit:
            out = out.limit(q.limit)
        out = out.select(*[c.key for c in columns])
    else:
        out = t.aggregate(**aggs)
    return Plan(q, out, columns, applied, ignored, refs.datasets, set(refs.segments), notes)


_TWO_LEVEL_BANDS = ("age", "weekday")


def _two_levels(t: ibis.Table, refs: _Refs, q: QuestionConfig, measure_cols: list, as_of: date, where: str
                ) -> tuple[ibis.Table, list[ibis.Value] | None]:
    """When a dimension is an age or weekday band and every measure adds up across groups (count,
    sum, min, max, average, share, customers counted as rows): ``t`` grouped by the bands' dates
    (as a day) and the other dimensions' values, with partial measures, and the measures that
    combine them; else ``(t, None)`` (one grouping, as before).

    The second grouping computes each band once per day instead of once per row: the same figures
    (an average is its sum over its count of values, a share its matches over its rows)."""
    if not any(d.band in _TWO_LEVEL_BANDS and d.column for d in q.dimensions):
        return t, None
    for i, m in enumerate(q.measures):
        if m.fn in ("median",) or (m.fn == "customers" and refs.customer_key(f"{where}.measures[{i}]") != TID):
            return t, None
    keys: dict[str, ibis.Value] = {}
    for i, d in enumerate(q.dimensions):
        if d.band in _TWO_LEVEL_BANDS and d.column:
            name = refs.column(d.column, f"{where}.dimensions[{i}].column")
            col = t[name]
            if not (col.type().is_date() or col.type().is_timestamp()):
                return t, None  # _dimension names the problem
            keys[name] = col.cast("date") if col.type().is_timestamp() else col
        else:
            _key, value, sort, _column = _dimension(t, refs, d, i, as_of, f"{where}.dimensions[{i}]")
            keys[f"_tessera_d{i}"] = value
            if sort is not None:
                keys[f"_tessera_s{i}"] = sort
    parts: dict[str, ibis.Value] = {"_tessera_n": t.count()}
    share_index = 0
    for i, m in enumerate(q.measures):
        if m.fn == "share":
            parts[f"_tessera_p{i}"] = t[f"_tessera_share{share_index}"].ifelse(1, 0).sum()
            share_index += 1
        elif m.fn in ("sum", "avg", "min", "max"):
            col = t[f"_tessera_m{i}"] if m.sql else t[measure_cols[i]]
            if not col.type().is_numeric():
                if not (col.type().is_boolean() and m.fn in ("sum", "avg")):
                    return t, None  # as in one grouping (or the problem it names)
                col = col.ifelse(1, 0)
            if m.fn == "sum":
                parts[f"_tessera_p{i}"] = col.sum()
            elif m.fn == "avg":
                parts[f"_tessera_p{i}"] = col.cast("float64").sum()
                parts[f"_tessera_c{i}"] = col.count()
            else:
                parts[f"_tessera_p{i}"] = col.min() if m.fn == "min" else col.max()
    if set(keys) & set(parts):
        return t, None
    g = t.group_by(**keys).aggregate(**parts)
    out: list[ibis.Value] = []
    for i, m in enumerate(q.measures):
        if m.fn in ("count", "customers"):
            out.append(g._tessera_n.sum())
        elif m.fn == "share":
            out.append((g[f"_tessera_p{i}"].sum().cast("float64") / g._tessera_n.sum()).cast("float64"))
        elif m.fn == "sum":
            out.append(g[f"_tessera_p{i}"].sum())
        elif m.fn == "avg":
            out.append((g[f"_tessera_p{i}"].sum() / g[f"_tessera_c{i}"].sum().nullif(0)).cast("float64"))
        else:
            out.append(g[f"_tessera_p{i}"].min() if m.fn == "min" else g[f"_tessera_p{i}"].max())
    return g, out


def _needed(refs: _Refs, q: QuestionConfig, conditions: list[dict], measure_cols: list) -> set[str] | None:
    """The columns of the dataset the question reads: its dimensions and measures, the columns its
    conditions name (segments referenced included, SQL through its parser), the link columns."""
    lower = {c.lower(): c for c in refs.base.columns}
    out: set[str] = {TID}
    for other in refs.related:
        out.add(links_to(refs.config, q.dataset, other) or "")
    for name in refs.segments:
        seg = next(s for s in refs.config.segments if s.name == name)
        if seg.dataset != q.dataset:
            out.add(links_to(refs.config, q.dataset, seg.dataset) or "")
    for d in q.dimensions:
        if d.column:
            out.add(refs.column(d.column, "dimension"))
    out |= {c for c in measure_cols if c}
    for m in q.measures:
        if m.fn == "customers":
            out.add(refs.customer_key("measure"))
        if m.sql:
            found = referenced_columns(m.sql)
            if not found:
                return None
            out |= {lower.get(c.lower(), c) for c in found}
    seen: set[str] = set()

    def walk(cond: dict) -> bool:
        for key in ("all", "any"):
            for c in cond.get(key) or []:
                if not walk(c):
                    return False
        if cond.get("not"):
            return walk(cond["not"])
        if cond.get("column") and cond.get("aggregate") is None:
            out.add(cond["column"])
        if cond.get("sql"):
            found = referenced_columns(cond["sql"])
            if not found:
                return False
            out.update(lower.get(c.lower(), c) for c in found)
        if cond.get("segment") and cond["segment"] not in seen:
            seen.add(cond["segment"])
            seg = next((s for s in refs.config.segments if s.name == cond["segment"]), None)
            if seg is None:
                return False
            return all(walk(c.model_dump(mode="json", exclude_defaults=True, by_alias=True)) for c in seg.conditions)
        return True

    if not all(walk(c) for c in conditions):
        return None  # let the compiler name the problem on the whole table
    return out


def _unique(key: str, used: set[str]) -> str:
    k, n = key, 2
    while k in used:
        k = f"{key}_{n}"
        n += 1
    used.add(k)
    return k


def as_date_value(v: Any) -> Any:
    return v.isoformat() if hasattr(v, "isoformat") else v


__all__ = ["Column", "Filters", "Plan", "Source", "Unavailable", "customer_dataset", "plan"]
