"""Order facts: the orders with their customer's columns and segment flags, joined once.

A question on the orders that reads a column of the customers (``contacts.birth_date``) or a
segment of the customers (a dimension, the dashboard's segment filter) joins every order to its
customer on the link column: with millions of orders that join costs several times the grouping
itself. When the dashboards are prepared after a run (:meth:`tessera.analytics.Analytics.prepare`),
that join is made once into a table of the warehouse, ``_tessera_analytics_facts_<orders>``: every
column of the orders, every column of the customers named ``<customers>__<column>`` (the names a
question's join gives them) but those that identify a person (e-mail, phone, names, address,
ids: :data:`PERSONAL`) and one ``segment__<segment>`` flag per segment of the customers (its
members of the last refresh). A question then reads it as one grouped scan.

The table is used only while the publications and segment refresh it was built from are the
current ones (the stamp of the prepared bundle, :mod:`tessera.analytics.prepared`): after a run, an
incremental run or a segment refresh, questions join as before until the next preparation. An
erasure drops it (:func:`drop`).
"""

from __future__ import annotations

from typing import Any, Iterable

import ibis

from tessera.segments.related import _semantics, links_to

PREFIX = "_tessera_analytics_facts_"
#: the customers' columns that identify a person rather than describe a group of customers: not
#: copied (a question that reads one joins the customers as before)
PERSONAL = ("CustomerId", "Email", "Phone", "FirstName", "LastName", "FullName", "Address", "LoyaltyCard",
            "AnonymousId")


def build(src: Any, dataset: str, customers: str) -> dict | None:
    """Build the facts of ``dataset`` (the orders) with the columns and segment flags of
    ``customers``; returns its description (``table``, ``customers``, ``columns``, ``segments``)
    or None when the orders have no link column to the customers."""
    config = src.config
    sem = _semantics(config, customers)
    linked = _related(src, dataset, customers, personal={sem[f] for f in PERSONAL if f in sem})
    if linked is None:
        return None
    orders, link, rel, names = linked
    flags: dict[str, str] = {}
    members = src.members()
    if members is not None:
        for s in config.segments:
            flag = f"segment__{s.name}"
            if s.dataset == customers and flag not in orders.columns and flag not in rel.columns:
                flags[s.name] = flag
    if flags:
        m = members.filter(members.segment.isin(list(flags)))
        per = m.group_by(_tessera_m=m.tessera_id.cast("string")).aggregate(
            **{flag: (m.segment == name).any() for name, flag in flags.items()})
        rel = rel.left_join(per, rel._tessera_k == per._tessera_m).drop("_tessera_m")
    day = _semantics(config, dataset).get("OrderDate")
    table = _store(src, dataset, orders, link, rel, day if day in orders.columns else None, flags.values())
    return {"table": table, "customers": customers, "columns": sorted(names.values()), "segments": sorted(flags)}


def build_lines(src: Any, dataset: str, orders: str) -> dict | None:
    """Build the facts of ``dataset`` (the order lines): every column of the lines and every
    column of their order, named ``<orders>__<column>`` (the names a question's join gives them),
    stored in the order of the order's date on an engine that skips the blocks outside a filter's
    bounds (a period then reads its days only). A chart of order lines by month, or a dashboard's
    period, store or channel on order lines (their order's), reads them as one scan instead of
    joining every line to its order. Returns its description, or None when the lines have no link
    to the orders or the orders no date."""
    linked = _related(src, dataset, orders)
    if linked is None:
        return None
    lines, link, rel, names = linked
    day = _semantics(src.config, orders).get("OrderDate")
    table = _store(src, dataset, lines, link, rel, names.get(day))
    return {"table": table, "customers": orders, "columns": sorted(names.values()), "segments": []}


def _related(src: Any, dataset: str, other: str, personal: set[str] | None = None) -> tuple | None:
    """The rows of ``dataset``, their link column to ``other``, the rows of ``other`` by their id
    (``_tessera_k``) with its columns named ``<other>__<column>`` (but those whose name starts with
    ``_`` and those the rows have already; with ``personal``, those columns that identify a person
    and its id are left out too), and those names by column; None when ``dataset`` has no link
    column to ``other``."""
    from tessera.analytics.question import TID

    link = links_to(src.config, dataset, other)
    rows = src.table(dataset)
    if link is None or link not in rows.columns:
        return None
    o = src.table(other)
    left_out = set() if personal is None else personal | {TID}
    names = {c: f"{other}__{c}" for c in o.columns
             if not c.startswith("_") and c not in left_out and f"{other}__{c}" not in rows.columns}
    rel = o.select(_tessera_k=o[TID].cast("string"), **{n: o[c] for c, n in names.items()})
    return rows, link, rel, names


def _store(src: Any, dataset: str, rows: ibis.Table, link: str, rel: ibis.Table, day: str | None,
           flags: Iterable[str] = ()) -> str:
    """Store ``rows`` with the columns of ``rel`` joined by the link column (the ``flags`` false
    where it has no row) as the facts of ``dataset``, in the order of the ``day`` column on an
    engine that skips the blocks outside a filter's bounds (a period then reads its days only);
    the table's name."""
    t = rows.left_join(rel, rows[link].cast("string") == rel._tessera_k).drop("_tessera_k")
    flags = list(flags)
    if flags:
        t = t.mutate(**{flag: t[flag].fill_null(False) for flag in flags})
    if day is not None and getattr(src.adapter, "prunes_by_order", False):
        t = t.order_by(day)
    table = PREFIX + dataset
    src.adapter.create_table(table, t)
    return table


FIRSTS = "firsts "  # the key of a firsts table in the prepared bundle: FIRSTS + the orders' name


def build_firsts(src: Any, dataset: str, entry: dict) -> tuple[str, dict] | None:
    """Build each customer's first order day per store and channel from the order facts of
    ``dataset`` (``entry``, :func:`build`), one row per customer, store and channel: the link
    column, the store and channel columns (their names in the orders), ``_first`` (the day of the
    first order there, a date) and the facts' segment flags. The customers who bought at the
    stores and channels of a filter, and their first order there, are then the minimum of a few
    rows per customer (stored in the order of the store: a store filter reads its rows only)
    instead of a grouping of every order there (the RFM migration's and the cohort triangle's).
    Returns (its key in the prepared bundle, its description), or None when the orders have no
    date."""
    t = table(src.adapter, entry)
    fields = _semantics(src.config, dataset)
    link = links_to(src.config, dataset, entry["customers"])
    day = fields.get("OrderDate")
    if t is None or link is None or day not in t.columns:
        return None
    keys = [link] + [fields[f] for f in ("Store", "Channel") if fields.get(f) in t.columns]
    flags = [f"segment__{s}" for s in entry.get("segments", []) if f"segment__{s}" in t.columns]
    t = t.filter(t[link].notnull())
    rows = t.group_by(keys).agg(_first=t[day].cast("date").min(), **{f: t[f].any() for f in flags})
    if len(keys) > 1 and getattr(src.adapter, "prunes_by_order", False):
        rows = rows.order_by(keys[1])
    name = f"{PREFIX}firsts_{dataset}"
    src.adapter.create_table(name, rows)
    return FIRSTS + dataset, {"table": name, "keys": keys, "segments": list(entry.get("segments", []))}


def drop(adapter) -> None:
    """Drop every facts table (after an erasure: it may hold the customer's columns)."""
    for name in adapter.list_tables():
        if name.startswith(PREFIX):
            adapter.drop_table(name)


def table(adapter, entry: dict | None) -> ibis.Table | None:
    """The facts table described by ``entry``, when it still exists."""
    if not entry or not adapter.exists(entry["table"]):
        return None
    return adapter.table(entry["table"])


__all__ = ["FIRSTS", "PREFIX", "build", "build_firsts", "build_lines", "drop", "table"]
