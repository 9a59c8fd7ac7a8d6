"""Aggregates: a value computed from a related dataset onto the current one.

"Number of orders in category A in the last 2 years" is an aggregate of the orders dataset onto
contacts: ``COUNT`` of orders, filtered by ``category = 'A'``, within a time window on the orders'
date, grouped by the orders' link to the contact. Everything is one grouped Ibis expression.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import ibis
import ibis.expr.datatypes as dt

FUNCTIONS = ("sum", "avg", "count", "count_distinct", "min", "max", "first", "last", "most_frequent", "list")
UNITS = {"days": 1, "months": 30, "years": 365}


@dataclass
class Aggregate:
    name: str
    function: str
    column: str | None  # None for count
    date_column: str | None
    last: int | None = None  # window: the last N units before as_of
    unit: str = "days"
    start: date | None = None  # window: between two dates (inclusive)
    end: date | None = None


def window_filter(rel: ibis.Table, agg: Aggregate, as_of: date) -> ibis.Value | None:
    """The time window of an aggregate as a condition on the related rows."""
    if agg.date_column is None:
        return None
    when = rel[agg.date_column].cast("date")
    cond = None
    if agg.last is not None:
        if agg.unit == "months":
            since = ibis.literal(as_of, dt.date) - ibis.interval(months=agg.last)
        elif agg.unit == "years":
            since = ibis.literal(as_of, dt.date) - ibis.interval(years=agg.last)
        else:
            since = ibis.literal(as_of, dt.date) - ibis.interval(days=agg.last)
        cond = (when > since) & (when <= ibis.literal(as_of, dt.date))
    if agg.start is not None:
        c = when >= ibis.literal(agg.start, dt.date)
        cond = c if cond is None else cond & c
    if agg.end is not None:
        c = when <= ibis.literal(agg.end, dt.date)
        cond = c if cond is None else cond & c
    return cond


def _exact(col: ibis.Value) -> ibis.Value:
    """A float column as exact decimals for a sum or mean: a float sum depends on the order the rows
    arrive in (2705.53 one run, 2705.5299999999997 the next), a decimal sum does not."""
    return col.cast(dt.Decimal(38, 9))


def aggregate(related: ibis.Table, link: str, aggs: list[tuple[Aggregate, ibis.Value | None]], *,
              as_of: date) -> ibis.Table:
    """One row per linked id (``_customer``) with one column per aggregate.

    Args:
        related: the related dataset (e.g. orders).
        link: its column holding the current dataset's ``tessera_id``.
        aggs: each aggregate with its optional filter condition (an expression on ``related``).
        as_of: the date windows end at.
    """
    rel = related  # conditions are bound to it: rows without a link are dropped after grouping
    values = {}
    frequent = []
    for agg, cond in aggs:
        window = window_filter(rel, agg, as_of)
        where = cond if window is None else (window if cond is None else cond & window)
        col = rel[agg.column] if agg.column else None
        f = agg.function
        if f == "count":
            values[agg.name] = (rel.count(where=where) if col is None else col.count(where=where)).cast("int64")
        elif f == "count_distinct":
            values[agg.name] = col.nunique(where=where).cast("int64")
        elif f == "sum":
            values[agg.name] = _exact(col).sum(where=where).cast(col.type()) if col.type().is_floating() \
                else col.sum(where=where)
        elif f == "avg":
            values[agg.name] = _exact(col).mean(where=where).cast("float64") if col.type().is_floating() \
                else col.mean(where=where)
        elif f == "min":
            values[agg.name] = col.min(where=where)
        elif f == "max":
            values[agg.name] = col.max(where=where)
        elif f in ("first", "last"):
            when = rel[agg.date_column] if agg.date_column else rel[
                "tessera_id" if "tessera_id" in rel.columns else "_tessera_record"]
            fn = col.argmin if f == "first" else col.argmax
            values[agg.name] = fn(when, where=where)
        elif f == "list":
            values[agg.name] = col.cast("string").collect(distinct=True, where=where).sort().join(", ").nullif("")
        elif f == "most_frequent":
            frequent.append((agg, where))
        else:  # pragma: no cover - validated by the configuration
            raise ValueError(f)
    out = rel.group_by(_customer=rel[link]).agg(**values) if values else \
        rel.select(_customer=rel[link]).distinct()
    out = out.filter(out._customer.notnull())
    for agg, where in frequent:
        col = rel[agg.column]
        sub = rel.filter(col.notnull() if where is None else col.notnull() & where)
        counted = sub.group_by(_customer=sub[link], _v=sub[agg.column]).agg(_k=sub.count())
        ranked = counted.mutate(_r=ibis.row_number().over(group_by="_customer",
                                                          order_by=[ibis.desc("_k"), "_v"]))
        top = ranked.filter(ranked._r == 0).select("_customer", **{agg.name: ranked._v})
        out = out.left_join(top, "_customer").drop("_customer_right")
    return out
