"""The score library: ready-made, documented values per customer computed from their orders
(and, for ``engagement``, from their events: :mod:`tessera.enrich.engagement`).

Every score is a set-based Ibis expression over three inputs whose columns are found by their
semantic fields (never by name):

- ``orders``: one row per order (the orders dataset's record key) with the customer's unified id,
  OrderDate, OrderAmount and,
  for some scores, DiscountAmount, Store, Channel;
- ``items`` (optional): one row per order line with the order's id, Quantity and ProductCategory;
- ``as_of``: the date scores are computed at (the run's date; fixed in tests).

:func:`compute_scores` returns one row per customer with the ``score_*`` columns; customers
without orders get NULL (or 0 for counts) once joined to the dataset. docs/scores.md documents
each score.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

import ibis
import ibis.expr.datatypes as dt

from tessera.config.scores import EVENT_SCORES, EVENTS, LIBRARY  # noqa: F401 - EVENT_SCORES re-exported
from tessera.errors import ConfigError

CID = "_customer"
MONEY = dt.Decimal(18, 4)


RFM_SEGMENTS = [
    # (segment, recency range, frequency+monetary average range), first match wins
    ("Champions", (4, 5), (4, 5)),
    ("Loyal Customers", (3, 5), (3, 5)),
    ("Can't Lose Them", (1, 1), (4, 5)),
    ("At Risk", (1, 2), (3, 5)),
    ("Potential Loyalist", (4, 5), (2, 3)),
    ("New Customers", (5, 5), (1, 1)),
    ("Promising", (4, 4), (1, 1)),
    ("Need Attention", (3, 3), (2, 3)),
    ("About To Sleep", (3, 3), (1, 2)),
    ("Hibernating", (2, 2), (1, 2)),
    ("Lost", (1, 1), (1, 2)),
]


@dataclass
class ScoreSettings:
    """Thresholds of the scores (documented in docs/scores.md)."""

    active_days: int = 365  # an order in the last N days: active customer
    new_customer_days: int = 90  # first order in the last N days: new customer
    regular_min_orders: int = 3  # at least N orders: regular customer
    timing_upcoming: float = 0.8  # ratio thresholds of purchase timing
    timing_overdue: float = 1.2
    timing_significantly_overdue: float = 2.0
    session_gap_minutes: float = 30  # engagement: a gap this long between two events starts a new session
    abandoned_cart_hours: float = 24  # engagement: an order this soon after a cart event buys it
    extra: dict = field(default_factory=dict)


def score_settings(values: dict[str, float], where: str) -> ScoreSettings:
    """The thresholds of ``scores.settings``; an unknown name is an error naming the known ones."""
    known = [f for f in ScoreSettings.__dataclass_fields__ if f != "extra"]
    unknown = [k for k in values if k not in known]
    if unknown:
        raise ConfigError(f"{where}.scores.settings: unknown setting(s) {', '.join(unknown)} "
                          f"(known: {', '.join(known)}; see docs/scores.md)")
    return ScoreSettings(**values)


def missing_fields(score: str, orders_fields: set[str], item_fields: set[str],
                   event_fields: set[str] = frozenset()) -> list[str]:
    d = LIBRARY[score]
    missing = []
    for need in d.needs:
        if need.startswith("item:"):
            if need[5:] not in item_fields:
                missing.append(f"{need[5:]} (order items)")
        elif need.startswith(EVENTS):
            if need[len(EVENTS):] not in event_fields:
                missing.append(f"{need[len(EVENTS):]} (events)")
        elif need not in orders_fields:
            missing.append(need)
    return missing


def _quintile(value: ibis.Value, *, descending: bool = False, among: ibis.Value | None = None) -> ibis.Value:
    """1-5 by quintile of the customers (of those with the same ``among`` when given); equal
    values share a score (cumulative distribution)."""
    order = ibis.desc(value) if descending else value
    cd = ibis.cume_dist().over(order_by=order) if among is None else ibis.cume_dist().over(group_by=among,
                                                                                          order_by=order)
    return (cd * 5).ceil().clip(lower=1, upper=5).cast("int64")


def rfm(t: ibis.Table, as_of: date, *, among: ibis.Value | None = None) -> ibis.Table:
    """``t`` (one row per customer with ``_n`` orders, the ``_last`` order's date and their
    ``_total``) with the RFM scores at ``as_of``: ``score_rfm_recency``, ``score_rfm_frequency``,
    ``score_rfm_monetary`` (quintiles of the customers, or of those with the same ``among``),
    ``score_rfm`` and ``score_rfm_segment``."""
    r = _quintile(_days(ibis.literal(as_of, dt.date), t._last), descending=True, among=among)
    f = _quintile(t._n, among=among)
    m = _quintile(t._total, among=among)
    out = t.mutate(score_rfm_recency=r, score_rfm_frequency=f, score_rfm_monetary=m)
    fm = (out.score_rfm_frequency + out.score_rfm_monetary).cast("float64") / 2
    rr = out.score_rfm_recency
    segment = ibis.cases(
        *[((rr >= rlo) & (rr <= rhi) & (fm >= flo) & (fm <= fhi), ibis.literal(name))
          for name, (rlo, rhi), (flo, fhi) in RFM_SEGMENTS],
        else_=ibis.literal("Need Attention"),
    )
    return out.mutate(
        score_rfm=rr.cast("string").concat(out.score_rfm_frequency.cast("string"),
                                            out.score_rfm_monetary.cast("string")),
        score_rfm_segment=segment,
    )


def _days(later: ibis.Value, earlier: ibis.Value) -> ibis.Value:
    return later.cast("date").delta(earlier.cast("date"), unit="day")


def compute_scores(orders: ibis.Table, fields: dict[str, str], scores: list[str], *, as_of: date,
                   items: ibis.Table | None = None, item_fields: dict[str, str] | None = None,
                   settings: ScoreSettings | None = None) -> ibis.Table:
    """Scores per customer.

    Args:
        orders: orders with a ``_customer`` column (the customer's unified id) and an ``_order``
            column (the order's id).
        fields: semantic field -> column of ``orders``.
        scores: names from :data:`LIBRARY`.
        as_of: the date the scores are computed at.
        items: order lines with an ``_order`` column, when item scores are asked.
        item_fields: semantic field -> column of ``items``.
        settings: thresholds.

    Returns:
        One row per customer with ``_customer`` and the asked scores' columns.

    Raises:
        ConfigError: a score needs semantic fields the datasets do not have.
    """
    settings = settings or ScoreSettings()
    item_fields = item_fields or {}
    problems = []
    for s in scores:
        if s not in LIBRARY:
            problems.append(f"unknown score '{s}' (known: {', '.join(LIBRARY)})")
            continue
        missing = missing_fields(s, set(fields), set(item_fields))
        if missing:
            problems.append(f"score '{s}' needs the semantic field(s) {', '.join(missing)}; "
                            "set them on the orders/order items dataset columns")
    if problems:
        raise ConfigError(problems)

    as_of_lit = ibis.literal(as_of, dt.date)
    o = orders
    when = o[fields["OrderDate"]].cast("date") if "OrderDate" in fields else None
    # Money is summed as exact decimals: float sums depend on the order rows arrive in, and
    # every engine must give the same totals.
    amount = o[fields["OrderAmount"]].cast(MONEY) if "OrderAmount" in fields else None
    cols = {"_when": when} if when is not None else {}
    if amount is not None:
        cols["_amount"] = amount
    if "discounts" in scores:
        cols["_disc"] = o[fields["DiscountAmount"]].cast(MONEY).fill_null(0)
    o = o.mutate(**cols)
    # One pass over the orders for every per-customer figure of the orders themselves (the
    # discounts' too): each further grouping of millions of orders costs as much again.
    discounts = {}
    if "discounts" in scores:
        discounts = dict(_discounted=o.count(where=o._disc > 0).cast("int64"),
                         _gross=(o._amount + o._disc).sum().cast("float64"),
                         _discount=o._disc.sum().cast("float64"))
    base = o.group_by(CID).agg(
        _n=o.count(),  # one row per order
        **({"_first": o._when.min(), "_last": o._when.max()} if when is not None else {}),
        **({"_total": o._amount.sum().cast("float64")} if amount is not None else {}),
        **discounts,
    )
    out = base
    parts: list[ibis.Table] = []

    def days_since_last(t: ibis.Table) -> ibis.Value:
        return _days(as_of_lit, t._last)

    def avg_gap(t: ibis.Table) -> ibis.Value:
        span = _days(t._last, t._first).cast("float64")
        return (t._n > 1).ifelse(span / (t._n - 1).cast("float64"), ibis.null(dt.float64))

    if "order_stats" in scores:
        out = out.mutate(
            score_first_order_date=out._first,
            score_last_order_date=out._last,
            score_days_since_last_order=days_since_last(out),
            score_total_order_count=out._n.cast("int64"),
            score_orders_total_amount=out._total,
            score_average_order_value=(out._total / out._n),
            score_average_days_between_orders=avg_gap(out),
            score_multi_buyer=out._n > 1,
            score_new_customer=_days(as_of_lit, out._first) <= settings.new_customer_days,
            score_regular_customer=out._n >= settings.regular_min_orders,
            score_active_customer=days_since_last(out) <= settings.active_days,
        )
    if "rfm" in scores:
        out = rfm(out, as_of)
    if "purchase_timing" in scores:
        gap = avg_gap(out)
        # Orders all on one day have no gap: no ratio (and no division by zero on any engine).
        ratio = (gap > 0).ifelse(days_since_last(out).cast("float64") / gap, ibis.null(dt.float64))
        status = ibis.cases(
            (ratio.isnull(), ibis.null(dt.string)),
            (ratio < settings.timing_upcoming, "recent purchase"),
            (ratio < settings.timing_overdue, "upcoming purchase"),
            (ratio < settings.timing_significantly_overdue, "overdue"),
            else_="significantly overdue",
        )
        out = out.mutate(score_purchase_timing_ratio=ratio, score_purchase_timing=status)
    if "discounts" in scores:
        out = out.mutate(
            score_discounted_order_count=out._discounted,
            score_discounted_order_rate=(out._discounted / out._n),
            score_average_discount_rate=(out._gross > 0).ifelse(out._discount / out._gross, 0.0),
        )
    if "stores" in scores:
        parts.append(_place_scores(o, fields["Store"], "store"))
    if "channels" in scores:
        ch = _place_scores(o, fields["Channel"], "channel", ends=False)
        parts.append(ch.select(CID, score_favorite_channel=ch.score_favorite_channel,
                               score_omnichannel=ch.score_channel_count > 1))
    if ("categories" in scores or "items" in scores) and items is not None:
        # one row per order (its id is the orders' record key): no DISTINCT over millions of rows
        links = o.select(CID, "_order")
        it = items.join(links, "_order")
        if "categories" in scores:
            cat = it[item_fields["ProductCategory"]].cast("string")
            it2 = it.mutate(_cat=cat).filter(cat.notnull())
            per = it2.group_by([CID, "_cat"]).agg(_k=it2.count())
            ranked = per.mutate(_rank=ibis.row_number().over(group_by=CID, order_by=[ibis.desc("_k"), "_cat"]))
            # Three ranks spelled out: ordered aggregates are not portable across engines.
            top = ranked.filter(ranked._rank < 3).group_by(CID).agg(
                **{f"_c{k}": ranked._cat.max(where=ranked._rank == k) for k in range(3)})
            joined = top._c0
            for k in (1, 2):
                joined = top[f"_c{k}"].isnull().ifelse(joined, joined.concat(", ", top[f"_c{k}"]))
            top3 = top.select(CID, score_top3_categories=joined)
            # ``per`` has one row per customer and category: no distinct needed
            allc = per.group_by(CID).agg(
                score_categories=per._cat.collect().sort().join(", "),
                score_category_count=per.count().cast("int64"),
            )
            allc = allc.mutate(score_multi_category=allc.score_category_count > 1)
            parts.append(allc.left_join(top3, CID).drop(f"{CID}_right"))
        if "items" in scores:
            q = it[item_fields["Quantity"]].cast("float64").fill_null(0)
            qi = it.mutate(_q=q).group_by(CID).agg(score_total_items=ibis._["_q"].sum(),
                                                   _orders=ibis._["_order"].nunique())
            parts.append(qi.select(CID, "score_total_items",
                                   score_average_items_per_order=(qi.score_total_items / qi._orders)))
    for p in parts:
        out = out.left_join(p, CID).drop(f"{CID}_right")
    keep = [c for c in out.columns if c == CID or c.startswith("score_")]
    return out.select(*keep)


def _place_scores(o: ibis.Table, column: str, what: str, *, ends: bool = True) -> ibis.Table:
    """Favorite (most orders, then most recent), count and, with ``ends``, all, first and last
    place of a customer (without: favorite and count only)."""
    place = o[column].cast("string")
    p = o.mutate(_place=place).filter(place.notnull())
    per = p.group_by([CID, "_place"]).agg(_k=p.count(), _recent=p._when.max())
    fav = per.mutate(_r=ibis.row_number().over(group_by=CID, order_by=[ibis.desc("_k"), ibis.desc("_recent"),
                                                                      "_place"]))
    fav = fav.filter(fav._r == 0).select(CID, **{f"score_favorite_{what}": fav._place})
    # ``per`` has one row per customer and place: no distinct needed
    counted = {f"score_{what}_count": per.count().cast("int64")}
    if not ends:
        agg = per.group_by(CID).agg(**counted)
        return agg.left_join(fav, CID).drop(f"{CID}_right")
    agg = per.group_by(CID).agg(**{f"score_{what}s": per._place.collect().sort().join(", "), **counted})
    agg = agg.mutate(**{f"score_multi_{what}": agg[f"score_{what}_count"] > 1})
    # First and last place by (date, order id) without a window: the smallest and largest of
    # "date<US>order<US>place" strings (ISO dates sort as text), then the place is cut out.
    sep = "\x1f"
    key = p._when.cast("string").concat(sep, p._order.cast("string"), sep, p._place)
    ends = p.group_by(CID).agg(_lo=key.min(), _hi=key.max())
    first = ends.select(CID, **{f"score_first_order_{what}": ends._lo.split(sep)[2]})
    last = ends.select(CID, **{f"score_last_order_{what}": ends._hi.split(sep)[2]})
    out = agg.left_join(fav, CID).drop(f"{CID}_right")
    out = out.left_join(first, CID).drop(f"{CID}_right")
    return out.left_join(last, CID).drop(f"{CID}_right")
