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

from typing import Any

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
    from tessera.analytics.question import TID

    config = src.config
    link = links_to(config, dataset, customers)
    orders = src.table(dataset)
    if link is None or link not in orders.columns:
        return None
    cust = src.table(customers)
    sem = _semantics(config, customers)
    personal = {sem[f] for f in PERSONAL if f in sem} | {TID}
    names = {c: f"{customers}__{c}" for c in cust.columns
             if not c.startswith("_") and c not in personal and f"{customers}__{c}" not in orders.columns}
    rel = cust.select(_tessera_k=cust[TID].cast("string"), **{n: cust[c] for c, n in names.items()})
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
    t = orders.left_join(rel, orders[link].cast("string") == rel._tessera_k).drop("_tessera_k")
    if flags:
        t = t.mutate(**{flag: t[flag].fill_null(False) for flag in flags.values()})
    day = _semantics(config, dataset).get("OrderDate")
    if day in orders.columns and getattr(src.adapter, "prunes_by_order", False):
        t = t.order_by(day)  # a period reads its days only (see build_lines)
    table = PREFIX + dataset
    src.adapter.create_table(table, t)
    return {"table": table, "customers": customers, "columns": sorted(names.values()), "segments": sorted(flags)}


def build_lines(src: Any, dataset: str, orders: str) -> dict | None:
    """Build the facts of ``dataset`` (the order lines): every column of the lines and every
    column of their order, named ``<orders>__<column>`` (the names a question's join gives them),
    stored in the order of the order's date on an engine that skips the blocks outside a filter's
    bounds (a period then reads its days only). A chart of order lines by month, or a dashboard's
    period, store or channel on order lines (their order's), reads them as one scan instead of
    joining every line to its order. Returns its description, or None when the lines have no link
    to the orders or the orders no date."""
    from tessera.analytics.question import TID

    config = src.config
    link = links_to(config, dataset, orders)
    lines = src.table(dataset)
    if link is None or link not in lines.columns:
        return None
    o = src.table(orders)
    names = {c: f"{orders}__{c}" for c in o.columns
             if not c.startswith("_") and f"{orders}__{c}" not in lines.columns}
    rel = o.select(_tessera_k=o[TID].cast("string"), **{n: o[c] for c, n in names.items()})
    t = lines.left_join(rel, lines[link].cast("string") == rel._tessera_k).drop("_tessera_k")
    day = _semantics(config, orders).get("OrderDate")
    if day in names and getattr(src.adapter, "prunes_by_order", False):
        t = t.order_by(names[day])
    table = PREFIX + dataset
    src.adapter.create_table(table, t)
    return {"table": table, "customers": orders, "columns": sorted(names.values()), "segments": []}


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


__all__ = ["PREFIX", "build", "build_lines", "drop", "table"]
