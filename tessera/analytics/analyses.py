"""Ready-made analyses that a grouping of one dataset cannot say, each one query in the engine
over the published datasets, answered as a :class:`~tessera.analytics.question.Plan` like any
question (so cache, CSV, pictures and filters work the same):

- ``rfm_migration``: every customer's RFM segment at two dates, each computed by the score library
  (:func:`tessera.enrich.scores.rfm`) from the orders up to that date (one grouping for both), counted per pair of
  segments: a matrix of who moved where. Customers without an order at the first date are
  ``(no order yet)``.
- ``cohort_retention``: customers grouped by the month of their first order (the cohort); for each
  month after it (0: the same month), the share of the cohort that ordered again in that month (in
  month 0: a second order). Months after the workspace's ``as_of`` are not shown; a month nobody
  ordered in shows 0.
- ``categories_together``: pairs of product categories bought in one basket (an order, or every
  order of a customer), with the number of baskets holding both and the lift:
  ``baskets with both x all baskets / (baskets with the first x baskets with the second)``
  (1: as often as chance; above: bought together more often).

The dashboard's filters: store and channel keep the orders (for the migration: the customers) made
there, segment keeps the segment's members; the period is the two dates of the migration, the
first orders of the cohorts, the orders of the baskets.
"""

from __future__ import annotations

from datetime import date

import ibis
import ibis.expr.datatypes as dt

from tessera.analytics.question import (
    TID,
    Column,
    Filters,
    Plan,
    Source,
    Unavailable,
    _in_period,
    _orders_dataset,
    customer_dataset,
)
from tessera.config.models import QuestionConfig
from tessera.enrich.scores import CID, MONEY, RFM_SEGMENTS, rfm
from tessera.segments.compile import shift
from tessera.segments.related import _semantics, links_to

NO_ORDER = "(no order yet)"
SEGMENTS = list(dict.fromkeys(name for name, _r, _f in RFM_SEGMENTS))


class _Shop:
    """The customers and orders of a workspace, with the dashboard's filters, for an analysis."""

    def __init__(self, src: Source, q: QuestionConfig, filters: Filters, where: str):
        self.src, self.q, self.filters, self.where = src, q, filters, where
        config = src.config
        cust = customer_dataset(config)
        if cust is None:
            raise Unavailable(f"{where}: {q.analysis.kind} needs a dataset of customers (deduplicate: true)")
        orders = _orders_dataset(config, cust.name)
        if orders is None:
            raise Unavailable(f"{where}: {q.analysis.kind} needs a dataset of orders (a column with semantic: "
                              f"OrderDate, linked to '{cust.name}')")
        self.customers, self.orders = cust.name, orders
        self.fields = _semantics(config, orders)
        self.link = links_to(config, orders, cust.name)
        # the order facts when prepared: the same orders, stored in the order of their date
        facts = src.facts(orders) if src.facts is not None else None
        self.table = facts if facts is not None else src.table(orders)
        self.datasets = {cust.name, orders}
        self.applied: list[str] = []
        self.ignored: list[str] = []
        self.segments: set[str] = set()

    def need(self, field_name: str) -> str:
        col = self.fields.get(field_name)
        if col is None or col not in self.table.columns:
            raise Unavailable(f"{self.where}: dataset '{self.orders}' has no column with the semantic field "
                              f"{field_name}; set semantic: {field_name} on one of its columns")
        return col

    def rows(self, *, places: bool = True, period: bool = False, amount: bool = False,
             table: ibis.Table | None = None, carry: tuple[str, ...] = (), since: date | None = None,
             flag: str | None = None) -> ibis.Table:
        """The orders with a customer: ``_customer``, ``_order``, ``_day`` (and ``_amount``),
        kept to the filtered stores and channels (``places``) and the period (``period``).
        ``table``: rows with the orders' columns to read instead of the orders (order lines with
        their order's columns), of which the ``carry`` columns are kept too; ``since``: only the
        orders from that day on; ``flag``: only the orders whose flag column (:meth:`flag`) is true."""
        t = self.table if table is None else table
        cols = {CID: t[self.link].cast("string"), "_order": t[TID].cast("string"),
                "_day": t[self.need("OrderDate")].cast("date")}
        if amount:
            cols["_amount"] = t[self.need("OrderAmount")]
        keep = t[self.link].notnull()
        if places:
            for name, values, field_name in (("store", self.filters.stores, "Store"),
                                             ("channel", self.filters.channels, "Channel")):
                if not values:
                    continue
                col = self.fields.get(field_name)
                if col is None or col not in t.columns:
                    self.ignored.append(name)
                    continue
                keep = keep & t[col].cast("string").isin(values)
                self.applied.append(name)
        if period and (self.filters.date_from or self.filters.date_to):
            # on the column itself: a timestamp is compared with the days' bounds, not cast per row
            keep = keep & _in_period(t[self.need("OrderDate")], self.filters.date_from, self.filters.date_to)
            if "period" not in self.applied:
                self.applied.append("period")
        if since is not None:
            keep = keep & _in_period(t[self.need("OrderDate")], since, None)
        if flag is not None:
            keep = keep & t[flag]
        return t.filter(keep).select(**cols, **{c: t[c] for c in carry})

    def in_period(self, day: ibis.Value) -> ibis.Value:
        f = self.filters
        keep = ibis.literal(True)
        if f.date_from:
            keep = keep & (day >= ibis.literal(f.date_from, dt.date))
        if f.date_to:
            keep = keep & (day <= ibis.literal(f.date_to, dt.date))
        if "period" not in self.applied:
            self.applied.append("period")
        return keep

    def flag(self) -> str | None:
        """The column of the order facts that flags the orders of the segment filter's members
        (:mod:`tessera.analytics.facts`: of the same refresh as the members), when the orders read
        are those facts: the rows kept with it are the members' (see :meth:`members`)."""
        name = self.filters.segment
        seg = next((s for s in self.src.config.segments if s.name == name), None) if name else None
        if seg is None or seg.dataset != self.customers or f"segment__{name}" not in self.table.columns:
            return None
        return f"segment__{name}"

    def members(self, t: ibis.Table, *, flagged: bool = False) -> ibis.Table:
        """``t`` (with ``_customer``) kept to the members of the segment filter; ``flagged``: its
        rows were kept with the segment's flag of the order facts (:meth:`flag`), they are the
        members' already."""
        name = self.filters.segment
        if not name:
            return t
        seg = next((s for s in self.src.config.segments if s.name == name), None)
        if seg is None:
            raise Unavailable(f"{self.where} filter segment: unknown segment '{name}'")
        if seg.dataset != self.customers:
            self.ignored.append("segment")
            return t
        self.applied.append("segment")
        self.segments.add(name)
        if flagged:
            return t
        members = self.src.members()
        if members is None:
            return t.filter(ibis.literal(False))
        m = members.filter(members.segment == name).select(_tessera_m=members.tessera_id.cast("string"))
        return t.filter(t[CID].isin(m._tessera_m))

    def plan(self, expr: ibis.Table, columns: list[Column], notes: list[str] | None = None) -> Plan:
        return Plan(self.q, expr, columns, list(dict.fromkeys(self.applied)), list(dict.fromkeys(self.ignored)),
                    self.datasets, self.segments, notes or [])


def _order_of(value: ibis.Value, labels: list[str]) -> ibis.Value:
    return ibis.cases(*[(value == label, k) for k, label in enumerate(labels)], else_=len(labels))


def _months_between(earlier: ibis.Value, later: ibis.Value) -> ibis.Value:
    return (later.year() - earlier.year()) * 12 + (later.month() - earlier.month())


def _need_dataset(q: QuestionConfig, dataset: str, what: str, where: str) -> None:
    if q.dataset != dataset:
        raise Unavailable(f"{where}.dataset: {q.analysis.kind} runs on the {what} ('{dataset}'), not on "
                          f"'{q.dataset}'")


# --------------------------------------------------------------------------- RFM migration


def _dates(src: Source, q: QuestionConfig, filters: Filters) -> tuple[date, date]:
    """The migration's two dates: the analysis's own, else the period filter's ends, else the 12
    months up to ``as_of``."""
    a = q.analysis
    to = a.date_to or filters.date_to or src.as_of
    return a.date_from or filters.date_from or shift(to, 12, "months"), to


def _rfm_key(since: date, to: date) -> str:
    """The name the prepared segments of every customer at ``since`` and ``to`` are found under
    (:attr:`Source.facts`; see :func:`prepare_rfm_segments`)."""
    return f"rfm_migration {since.isoformat()} {to.isoformat()}"


def _segments(shop: _Shop, since: date, to: date) -> ibis.Table:
    """Every customer with an order up to ``to``: ``_customer``, ``_after`` (the RFM segment at
    ``to``) and ``_before`` (at ``since``, or :data:`NO_ORDER`)."""
    # Each customer's orders up to both dates, in one grouping of the orders up to the second:
    # the scores at each date are quintiles of every customer who had ordered by then (the
    # filters keep customers only afterwards: a score compares a customer with all the others).
    orders = shop.rows(places=False, amount=True)
    orders = orders.filter(orders._day <= ibis.literal(to, dt.date))
    orders = orders.mutate(_amount=orders._amount.cast(MONEY))  # summed exactly, as the score library
    early = orders._day <= ibis.literal(since, dt.date)
    orders = orders.mutate(_day0=early.ifelse(orders._day, ibis.null(dt.date)),
                           _amount0=early.ifelse(orders._amount, ibis.null(MONEY)))
    base = orders.group_by(CID).agg(
        _n=orders.count(), _last=orders._day.max(), _total=orders._amount.sum().cast("float64"),
        _n0=orders._day0.count(), _last0=orders._day0.max(), _total0=orders._amount0.sum().cast("float64"))
    after = rfm(base, to)
    after = after.select(CID, "_n0", "_last0", "_total0", _after=after.score_rfm_segment)
    before = after.select(CID, "_after", "_n0", _n=after._n0, _last=after._last0, _total=after._total0)
    both = rfm(before, since, among=before._n0 > 0)  # quintiles of those who had ordered by the first date
    both = both.select(CID, "_after", _before=(both._n0 > 0).ifelse(both.score_rfm_segment, NO_ORDER))
    return both


def prepare_rfm_segments(src: Source, q: QuestionConfig) -> tuple[str, dict] | None:
    """Every customer's segments at the two dates the migration ``q`` shows without a period
    filter, kept in a table of the warehouse (``_tessera_analytics_facts_rfm_<dates>``, dropped
    with the order facts), for the views after a run: with a store, channel or segment filter, or
    the period of those same dates, the migration then counts the kept customers' rows of that
    table instead of scoring every customer twice (the scores compare a customer with all the
    others: they are the same). Returns (its name in :attr:`Source.facts`, its description), or
    None when the workspace lacks what the migration reads."""
    from tessera.analytics.facts import PREFIX

    try:
        shop = _Shop(src, q, Filters(), f"question '{q.name}'")
        if q.dataset != shop.customers:
            return None
        since, to = _dates(src, q, Filters())
        if since >= to:
            return None
        rows = _segments(shop, since, to)
    except Unavailable:
        return None
    table = f"{PREFIX}rfm_{since.strftime('%Y%m%d')}_{to.strftime('%Y%m%d')}"
    src.adapter.create_table(table, rows)
    return _rfm_key(since, to), {"table": table}


def rfm_migration(src: Source, q: QuestionConfig, filters: Filters, where: str) -> Plan:
    shop = _Shop(src, q, filters, where)
    _need_dataset(q, shop.customers, "dataset of customers", where)
    a = q.analysis
    since, to = _dates(src, q, filters)
    if (filters.date_from and not a.date_from) or (filters.date_to and not a.date_to):
        shop.applied.append("period")
    if since >= to:
        raise Unavailable(f"{where}: the migration compares two dates, and {since} is not before {to}: choose a "
                          "period whose start comes before its end")
    kept = src.facts(_rfm_key(since, to)) if src.facts is not None else None
    if kept is not None and {CID, "_after", "_before"} <= set(kept.columns):
        both = kept.select(CID, "_after", "_before")  # prepared after the run (prepare_rfm_segments)
    else:
        both = _segments(shop, since, to)
    flag = shop.flag() if filters.stores or filters.channels else None
    if filters.stores or filters.channels:  # the customers who bought there (up to the second date)
        there = shop.rows(places=True, flag=flag)  # (and in the segment, by the facts' flag)
        there = there.filter(there._day <= ibis.literal(to, dt.date))
        both = both.filter(both[CID].isin(there[CID]))
    both = shop.members(both, flagged=flag is not None)
    out = both.group_by(["_before", "_after"]).agg(customers=both.count())
    out = out.mutate(share=(out.customers.cast("float64") / out.customers.sum().over(group_by="_before")))
    before_labels = [NO_ORDER, *SEGMENTS]
    out = out.mutate(_o1=_order_of(out._before, before_labels), _o2=_order_of(out._after, SEGMENTS))
    out = out.order_by(["_o1", "_o2"]).select(rfm_segment_before=out._before, rfm_segment_after=out._after,
                                              customers=out.customers, share=out.share)
    d1, d2 = since.isoformat(), to.isoformat()
    columns = [
        Column("rfm_segment_before", f"RFM segment on {d1}", "dimension", "ordinal", before_labels,
               term="rfm_segment_on", args={"date": d1}),
        Column("rfm_segment_after", f"RFM segment on {d2}", "dimension", "ordinal", list(SEGMENTS),
               term="rfm_segment_on", args={"date": d2}),
        Column("customers", "customers", "measure", "quantitative"),
        Column("share", f"share of the segment on {d1}", "measure", "quantitative", percent=True,
               term="share_of_segment_on", args={"date": d1}),
    ]
    return shop.plan(out, columns, [f"from {d1} to {d2}"])


# --------------------------------------------------------------------------- cohort triangle


def cohort_retention(src: Source, q: QuestionConfig, filters: Filters, where: str) -> Plan:
    shop = _Shop(src, q, filters, where)
    _need_dataset(q, shop.orders, "dataset of orders", where)
    months = q.analysis.months
    flag = shop.flag()  # the segment's members by the order facts' flag (a customer's orders: all or none)
    orders = shop.rows(places=True, flag=flag)
    first = orders.group_by(CID).agg(_first=orders._day.min())
    if filters.date_from or filters.date_to:  # the cohorts whose first order is in the period
        first = first.filter(shop.in_period(first._first))
    first = shop.members(first, flagged=flag is not None)
    first = first.select(CID, _cohort=first._first.truncate("M").cast("date"))
    # each order's month after its customer's first, the months shown kept before any grouping;
    # with a period, a cohort's customers have no order before it (their first is in it): only
    # the orders from its first day on are read (the order facts are stored in time order)
    if filters.date_from:
        orders = shop.rows(places=True, since=filters.date_from, flag=flag)
    j = orders.join(first, orders[CID] == first[CID]).select(orders[CID], orders._day, first._cohort)
    j = j.mutate(_k=_months_between(j._cohort, j._day))
    j = j.filter(j._k <= months)
    per = j.group_by([CID, "_cohort", "_k"]).agg(_n=j.count())
    # in the first month a second order is ordering again; in the others any order is
    again = per.filter((per._k > 0) | (per._n > 1))
    again = again.group_by(["_cohort", "_k"]).agg(_again=again.count())
    sizes = first.group_by("_cohort").agg(_size=first.count())
    last = ibis.literal(src.as_of, dt.date)
    sizes = sizes.mutate(_span=_months_between(sizes._cohort, last))
    offsets = ibis.memtable({"_k": list(range(months + 1))}, schema={"_k": "int64"})
    grid = sizes.cross_join(offsets)
    grid = grid.filter(grid._k <= grid._span)
    again = again.select(_c2=again._cohort, _k2=again._k.cast("int64"), _again=again._again)
    out = grid.left_join(again, [grid._cohort == again._c2, grid._k == again._k2])
    out = out.select(months_after=out._k, cohort=out._cohort, repeat_rate=(
        out._again.fill_null(0).cast("float64") / out._size.cast("float64")),
        cohort_customers=out._size, customers_again=out._again.fill_null(0))
    out = out.order_by(["cohort", "months_after"])
    columns = [
        Column("months_after", "months after the first order", "dimension", "ordinal",
               [str(k) for k in range(months + 1)]),
        Column("cohort", "month of the first order", "dimension", "temporal", time_unit="yearmonth"),
        Column("repeat_rate", "ordered again", "measure", "quantitative", percent=True),
        Column("cohort_customers", "customers in the cohort", "measure", "quantitative"),
        Column("customers_again", "customers who ordered again", "measure", "quantitative"),
    ]
    columns[0].order = None  # numbers in their own order
    return shop.plan(out, columns)


# --------------------------------------------------------------------------- categories bought together


def categories_together(src: Source, q: QuestionConfig, filters: Filters, where: str) -> Plan:
    shop = _Shop(src, q, filters, where)
    config = src.config
    items = src.table(q.dataset)
    link = links_to(config, q.dataset, shop.orders)
    if link is None or link not in items.columns:
        raise Unavailable(f"{where}.dataset: categories_together runs on order lines linked to the orders of "
                          f"'{shop.orders}'; '{q.dataset}' has no link to them")
    shop.datasets.add(q.dataset)
    by_customer = q.analysis.basket == "customer"
    narrowed = bool(filters.stores or filters.channels or filters.segment or filters.date_from or filters.date_to)
    # the lines' facts when prepared (tessera.analytics.facts): each line with its order's columns,
    # in the order of their date: the orders' filters read them, no join of the lines to the orders
    carried: dict[str, ibis.Value] = {}
    facts = src.facts(q.dataset) if (by_customer or narrowed) and src.facts is not None else None
    if facts is not None and link in facts.columns:
        prefix = f"{shop.orders}__"
        names = [c for c in src.table(shop.orders).columns if not c.startswith("_")]
        if all(prefix + c in facts.columns for c in names):
            items, carried = facts, {c: facts[prefix + c] for c in names}
    own = _semantics(config, q.dataset).get("ProductCategory")
    if own and own in items.columns:
        lines = items.select(_order=items[link].cast("string"), _cat=items[own].cast("string"), **carried)
    else:
        products = next((d.name for d in config.datasets if "ProductCategory" in _semantics(config, d.name)
                         and links_to(config, q.dataset, d.name)), None)
        if products is None:
            raise Unavailable(f"{where}: dataset '{q.dataset}' has no ProductCategory column and no link to a "
                              "dataset of products that has one")
        plink = links_to(config, q.dataset, products)
        prod = src.table(products)
        cat = _semantics(config, products)["ProductCategory"]
        if plink not in items.columns or cat not in prod.columns:
            raise Unavailable(f"{where}: the categories of dataset '{products}' are not published")
        prod = prod.select(_pid=prod[TID].cast("string"), _cat=prod[cat].cast("string"))
        lines = items.select(_order=items[link].cast("string"), _pid=items[plink].cast("string"), **carried)
        lines = lines.join(prod, lines._pid == prod._pid).select(lines._order, prod._cat,
                                                                 *[lines[c] for c in carried])
        shop.datasets.add(products)
    lines = lines.filter(lines._cat.notnull())
    if carried:  # the lines kept by the orders' filters, with their order's customer
        kept = shop.members(shop.rows(places=True, period=True, table=lines, carry=("_cat",)))
        lines = kept.select(_b=kept[CID] if by_customer else kept._order, _cat=kept._cat)
    elif by_customer or narrowed:
        flag = shop.flag()
        orders = shop.rows(places=True, period=True, flag=flag)
        orders = shop.members(orders, flagged=flag is not None)
        orders = orders.select(_o=orders._order, _c=orders[CID])
        lines = lines.join(orders, lines._order == orders._o).select(
            _b=orders._c if by_customer else lines._order, _cat=lines._cat)
    else:
        lines = lines.select(_b=lines._order, _cat=lines._cat)
    baskets = lines.distinct()
    per = baskets.group_by("_cat").agg(_n=baskets.count())
    ids = baskets.select("_b").distinct()  # a grouping runs in parallel, an ungrouped COUNT DISTINCT may not
    total = ids.aggregate(_all=ids.count())
    other = baskets.select(_b2=baskets._b, _cat2=baskets._cat)
    pairs = baskets.join(other, [baskets._b == other._b2, baskets._cat < other._cat2])
    pairs = pairs.select(_c1=baskets._cat, _c2=other._cat2)
    pairs = pairs.group_by(["_c1", "_c2"]).agg(_both=pairs.count())
    n1 = per.select(_k1=per._cat, _n1=per._n)
    n2 = per.select(_k2=per._cat, _n2=per._n)
    out = pairs.join(n1, pairs._c1 == n1._k1).join(n2, pairs._c2 == n2._k2).cross_join(total)
    lift = (out._both.cast("float64") * out._all.cast("float64")) / (out._n1.cast("float64") * out._n2.cast("float64"))
    count = "customers" if by_customer else "orders"
    out = out.select(category=out._c1, other_category=out._c2, **{count: out._both}, lift=lift)
    out = out.order_by([ibis.desc(count), ibis.desc("lift"), "category", "other_category"]).limit(q.limit or 20)
    label = "customers who bought both" if by_customer else "orders with both"
    columns = [
        Column("category", "category", "dimension", "nominal"),
        Column("other_category", "bought with", "dimension", "nominal"),
        Column(count, label, "measure", "quantitative"),
        Column("lift", "lift", "measure", "quantitative"),
    ]
    return shop.plan(out, columns)


ANALYSES = {"rfm_migration": rfm_migration, "cohort_retention": cohort_retention,
            "categories_together": categories_together}


def plan_analysis(src: Source, q: QuestionConfig, filters: Filters | None = None, *,
                  where: str | None = None) -> Plan:
    """The query of a question with an ``analysis`` (see the module's documentation).

    Raises:
        Unavailable: the workspace lacks a dataset, a semantic field or a link the analysis reads.
    """
    return ANALYSES[q.analysis.kind](src, q, filters or Filters(), where or f"question '{q.name}'")


__all__ = ["ANALYSES", "NO_ORDER", "plan_analysis", "prepare_rfm_segments"]
