"""The ``engagement`` score group: how much a customer interacts, from their events.

Computed per customer from the events dataset related to the customers' dataset, whose columns
are found by their semantic fields: EventTime (needed), EventName (the track event's name,
needed) and EventType (the Segment call type: page, screen, track, identify...; optional). Only
events up to the end of the ``as_of`` day count; "30d" is the 30 days ending on ``as_of``
(the same window as an aggregate's ``last: 30``). Everything is one set of Ibis expressions:
sessions and cart chains use window functions, abandoned carts an anti-join. docs/scores.md
documents each column and the score's formula.
"""

from __future__ import annotations

from datetime import date, timedelta

import ibis
import ibis.expr.datatypes as dt

CID = "_customer"
WINDOW_DAYS = 30

PAGE_TYPES = ("page", "screen")
PAGE_NAMES = ("page viewed", "screen viewed")  # track events that some SDKs send for page views
CART_NAMES = ("product added", "cart viewed", "checkout started")
ORDER_NAMES = ("order completed",)
ACTIVITY_TYPES = ("page", "screen", "track")  # what a session is made of (identify, alias, group are not visits)

#: Output columns; the counts and the score are 0 for a customer without events.
COLUMNS = ("score_last_seen", "score_page_views_30d", "score_sessions_30d", "score_email_opens_30d",
           "score_email_clicks_30d", "score_abandoned_carts_30d", "score_engagement")
ZERO_WHEN_NO_EVENTS = COLUMNS[1:]

# score_engagement: points per part, and the count that earns the part's maximum.
RECENCY_POINTS = 30  # 30 points when last seen on as_of, one less per day before
SESSION_POINTS, SESSION_CAP = 5, 5  # 5 points per session, up to 5 sessions (25)
PAGE_POINTS, PAGE_CAP = 2, 10  # 2 per page view, up to 10 (20)
CLICK_POINTS, CLICK_CAP = 5, 3  # 5 per email click, up to 3 (15)
OPEN_POINTS, OPEN_CAP = 2, 5  # 2 per email open, up to 5 (10)


def _minutes(value: float) -> ibis.Value:
    return ibis.interval(minutes=int(round(value)))


def compute_engagement(events: ibis.Table, fields: dict[str, str], *, as_of: date,
                       session_gap_minutes: float = 30, abandoned_cart_hours: float = 24,
                       orders: ibis.Table | None = None) -> ibis.Table:
    """Engagement columns per customer.

    Args:
        events: the events, with a ``_customer`` column (the customer's unified id).
        fields: semantic field -> column of ``events`` (EventTime, EventName, maybe EventType).
        as_of: the date the scores are computed at.
        session_gap_minutes: a gap this long or longer between two events starts a new session.
        abandoned_cart_hours: how long after a cart event an order still counts as its purchase.
        orders: orders from an orders dataset, with ``_customer``, ``_start`` and ``_end``
            (timestamps: the order's time twice, or the start and end of its day), if any.

    Returns:
        One row per customer with events: ``_customer`` and :data:`COLUMNS`.
    """
    cutoff = ibis.literal(as_of + timedelta(days=1), dt.date).cast(dt.timestamp)
    since = ibis.literal(as_of - timedelta(days=WINDOW_DAYS), dt.date)
    as_of_lit = ibis.literal(as_of, dt.date)
    when = events[fields["EventTime"]].cast(dt.timestamp)
    name = events[fields["EventName"]].cast(dt.string).strip().lower()
    kind = events[fields["EventType"]].cast(dt.string).strip().lower() if "EventType" in fields else None
    e = events.mutate(_t=when, _name=name, _kind=kind if kind is not None else ibis.null(dt.string))
    e = e.filter(e._t.notnull() & (e._t < cutoff) & e[CID].notnull())
    day = e._t.cast(dt.date)
    email = e._name.contains("email")
    page = e._name.isin(PAGE_NAMES)
    activity = ~email.fill_null(False)
    if kind is not None:
        page = page | e._kind.isin(PAGE_TYPES)
        activity = activity & (e._kind.isin(ACTIVITY_TYPES) | e._kind.isnull())
    e = e.mutate(
        _in=(day > since) & (day <= as_of_lit),
        _page=page.fill_null(False),
        _open=(email & e._name.contains("open")).fill_null(False),
        _click=(email & e._name.contains("click")).fill_null(False),
        _activity=activity,
        _cart=e._name.isin(CART_NAMES).fill_null(False),
        _order=e._name.isin(ORDER_NAMES).fill_null(False),
    )
    out = e.group_by(CID).agg(
        score_last_seen=e._t.max(),
        score_page_views_30d=e.count(where=e._in & e._page).cast("int64"),
        score_email_opens_30d=e.count(where=e._in & e._open).cast("int64"),
        score_email_clicks_30d=e.count(where=e._in & e._click).cast("int64"),
    )
    for part in (_sessions(e, session_gap_minutes), _abandoned_carts(e, abandoned_cart_hours, cutoff, orders)):
        out = out.left_join(part, CID).drop(f"{CID}_right")
    out = out.mutate(score_sessions_30d=out.score_sessions_30d.fill_null(0),
                     score_abandoned_carts_30d=out.score_abandoned_carts_30d.fill_null(0))
    days = as_of_lit.delta(out.score_last_seen.cast(dt.date), unit="day")
    recency = ibis.greatest(RECENCY_POINTS - days, 0)
    score = (recency
             + SESSION_POINTS * ibis.least(out.score_sessions_30d, SESSION_CAP)
             + PAGE_POINTS * ibis.least(out.score_page_views_30d, PAGE_CAP)
             + CLICK_POINTS * ibis.least(out.score_email_clicks_30d, CLICK_CAP)
             + OPEN_POINTS * ibis.least(out.score_email_opens_30d, OPEN_CAP))
    out = out.mutate(score_engagement=score.cast("int64"))
    return out.select(CID, *COLUMNS)


def _sessions(e: ibis.Table, gap_minutes: float) -> ibis.Table:
    """Sessions in the window: a customer's activity events, a new session after each gap of
    ``gap_minutes`` or more (or at the first event)."""
    a = e.filter(e._in & e._activity)
    previous = a._t.lag().over(group_by=a[CID], order_by=a._t)
    a = a.mutate(_prev=previous)
    starts = a._prev.isnull() | (a._t >= a._prev + _minutes(gap_minutes))
    a = a.mutate(_start=starts)
    return a.group_by(CID).agg(score_sessions_30d=a.count(where=a._start).cast("int64"))


def _abandoned_carts(e: ibis.Table, hours: float, cutoff: ibis.Value, orders: ibis.Table | None) -> ibis.Table:
    """Carts in the window left without an order: the last cart event of a chain (no other cart event
    within ``hours`` after it), at least ``hours`` before the end of ``as_of``, with no order
    (an order event or an order of the orders dataset) from its time to ``hours`` after it."""
    wait = _minutes(hours * 60)
    carts = e.filter(e._cart)
    following = carts._t.lead().over(group_by=carts[CID], order_by=carts._t)
    carts = carts.mutate(_next=following)
    last = carts.filter(carts._in & (carts._next.isnull() | (carts._next > carts._t + wait))
                        & (carts._t + wait < cutoff)).select(CID, "_t")
    events = e.filter(e._order)
    bought = events.select(_who=events[CID], _start=events._t, _end=events._t)
    if orders is not None:
        bought = bought.union(orders.select(_who=orders[CID], _start=orders._start.cast(dt.timestamp),
                                            _end=orders._end.cast(dt.timestamp)), distinct=False)
    left = last.anti_join(bought, [last[CID] == bought._who, bought._end >= last._t,
                                   bought._start <= last._t + wait])
    return left.group_by(CID).agg(score_abandoned_carts_30d=left.count().cast("int64"))
