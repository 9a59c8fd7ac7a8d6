"""The 360° profile of one unified record: its attributes, source records and latest events.

Published events come from the events datasets related to the customer dataset (a dataset fed by
an event source whose relations point at it). Events collected since that publication are read
from the collected events table and matched on the customer's identifiers (the values of the
related columns in the customer's source records: user ids, anonymous ids, emails), so a
profile shows a new event as soon as it is loaded, before the next run links it for good.

A server answers profiles many times a second: the queries of a profile are compiled once per
state of the workspace (its configuration version and publications), into a :class:`ProfilePlan`
whose SQL takes the customer's id as a bound parameter. Compiling them costs far more than
running them.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone

import ibis

from tessera.engine.base import Prepared, param
from tessera.errors import EngineError, NotFoundError
from tessera.segments import MEMBERS as MEMBERS_TABLE
from tessera.segments.related import event_links

EVENTS_TABLE = "_tessera_events"
SHOWN = ("message_id", "type", "event", "name", "timestamp", "user_id", "anonymous_id", "email", "properties")
RECORDS_SHOWN = 200
MAX_ORDERS = 100_000  # orders of one customer read for the 360 page (the newest shown)


def _plain(value):
    if hasattr(value, "isoformat"):  # datetime, date, time
        return value.isoformat()
    if isinstance(value, (bytes, bytearray)):
        return value.hex()
    if value is not None and not isinstance(value, (str, int, float, bool, list, dict)):
        return str(value)
    return value


@dataclass
class EventsPlan:
    """The events of one events dataset related to the customer dataset."""

    dataset: str
    renamed: dict[str, str]  # dataset column -> event column
    time_column: str | None
    published: Prepared | None  # the customer's published events, newest first
    pending: Prepared | None  # events collected since that publication, matched on identifiers


@dataclass
class ProfilePlan:
    """The compiled queries of a profile of one dataset (see the module's documentation)."""

    dataset: str
    record: Prepared
    records: Prepared
    events: list[EventsPlan] = field(default_factory=list)
    memberships: Prepared | None = None
    consent: Prepared | None = None  # the customer's consent changes, newest first
    #: tables that were missing when the plan was made, and would change it once they exist
    waiting_for: tuple[str, ...] = ()
    #: when ``waiting_for`` was last looked for (the engine's catalog costs a read more than its queries)
    looked_at: float = field(default_factory=time.monotonic)


def plan_profile(ws, dataset: str, events: int) -> ProfilePlan:
    """Compile the queries of a profile of ``dataset`` (showing up to ``events`` events)."""
    config = ws.config
    adapter = ws.adapter
    tid = param("tid")
    ws.table(dataset), ws.table(f"{dataset}__records")  # NotFoundError while not published
    # the customer's rows are read through the tessera_id indexes (Workspace.index_for_reads)
    table = adapter.indexed_table(dataset)
    records = adapter.indexed_table(f"{dataset}__records")
    waiting: list[str] = []
    plan = ProfilePlan(dataset, adapter.prepare(table.filter(table.tessera_id == tid), first=1),
                       adapter.prepare(records.filter(records.tessera_id == tid), first=RECORDS_SHOWN))

    links = event_links(config, dataset)
    has_events = bool(links) and adapter.exists(EVENTS_TABLE)
    if links and not has_events:
        waiting.append(EVENTS_TABLE)
    for events_ds, link, pairs, connection in links:
        ds_cfg = next(d for d in config.datasets if d.name == events_ds)
        renamed = {dcol: scol for m in ds_cfg.mappings for dcol, scol in m.columns.items()}
        time_col = next((c["column"] for c in ws.describe(events_ds) if c["semantic"] == "EventTime"), None)
        published = None
        if adapter.published_target(events_ds) is not None:
            ws.table(events_ds)
            ev = adapter.indexed_table(events_ds)
            cols = [c for c in ev.columns if not c.startswith("_tessera")]
            order = [ibis.desc(time_col)] if time_col in ev.columns else []
            sel = ev.filter(ev[link] == tid).select(*cols)
            published = adapter.prepare((sel.order_by(order) if order else sel).limit(events))
        pending = None
        if has_events:
            # Events collected after the events dataset was last published, matched on the
            # identifiers of the customer's source records.
            pub = ws.store.latest_publication(events_ds)
            raw = adapter.table(EVENTS_TABLE)
            cond = None
            for event_col, customer_col in pairs:
                if customer_col not in records.columns or event_col not in raw.columns:
                    continue
                value = records[customer_col].cast("string")
                ids = records.filter((records.tessera_id == tid) & value.notnull() & (value != "")).select(_v=value)
                match = raw[event_col].isin(ids._v)
                cond = match if cond is None else cond | match
            if cond is not None:
                newer = raw.connection == connection
                if pub is not None:
                    since = datetime.fromisoformat(pub["published_at"]).astimezone(timezone.utc).replace(tzinfo=None)
                    newer = newer & (raw.received_at > ibis.literal(since))
                shown = [c for c in SHOWN if c in raw.columns]
                pending = adapter.prepare(raw.filter(newer & cond).select(*shown)
                                          .order_by(ibis.desc("timestamp")).limit(events))
        plan.events.append(EventsPlan(events_ds, renamed, time_col, published, pending))

    segments = sorted(s.name for s in config.segments if s.dataset == dataset)
    if segments:
        if adapter.exists(MEMBERS_TABLE):
            m = adapter.table(MEMBERS_TABLE)
            plan.memberships = adapter.prepare(
                m.filter((m.tessera_id == tid) & m.segment.isin(segments)).order_by("segment"))
        else:
            waiting.append(MEMBERS_TABLE)
    consent = ws.consent_query(dataset, tid)
    plan.consent = adapter.prepare(consent) if consent is not None else None
    plan.waiting_for = tuple(waiting)
    return plan


#: seconds between two looks for the tables a profile plan waits for (collected events, segment
#: members): a table made between two runs shows in profiles at most this late
WAIT_LOOK_SECONDS = 1.0


def profile(ws, tessera_id: str, dataset: str | None = None, *, events: int = 50) -> dict:
    """The profile of ``tessera_id`` in ``dataset`` (default: the first deduplicated dataset)."""
    dataset = customer_dataset(ws, dataset)
    key = ("profile", dataset, events)
    plan = ws.cached_read(key, lambda: plan_profile(ws, dataset, events))
    if plan.waiting_for and time.monotonic() - plan.looked_at >= WAIT_LOOK_SECONDS:
        plan.looked_at = time.monotonic()
        tables = set(ws.adapter.list_tables())
        if any(t in tables for t in plan.waiting_for):
            ws.forget_read(key)
            plan = ws.cached_read(key, lambda: plan_profile(ws, dataset, events))
    try:
        return _read(ws, plan, tessera_id, events)
    except EngineError:
        # A publication moved under the plan (its state is recorded just after): plan it again.
        ws.forget_read(key)
        plan = ws.cached_read(key, lambda: plan_profile(ws, dataset, events))
        return _read(ws, plan, tessera_id, events)


def profile_waits(ws, dataset: str | None = None, *, events: int = 50) -> bool:
    """Whether the profile of ``dataset`` (as :func:`profile` reads it in this state of the
    workspace) waits for tables that would change it once they exist (collected events, segment
    members): it looks for them at most every :data:`WAIT_LOOK_SECONDS`, so its answer may not show
    yet what they hold, and is not one to keep."""
    dataset = customer_dataset(ws, dataset)
    return bool(ws.cached_read(("profile", dataset, events), lambda: plan_profile(ws, dataset, events)).waiting_for)


def _rows(adapter, expr: ibis.Table) -> list[dict]:
    return [{k: _plain(v) for k, v in r.items()} for r in adapter.to_arrow(expr).to_pylist()]


def _fetched(adapter, prepared: Prepared, tessera_id: str) -> list[dict]:
    return [{k: _plain(v) for k, v in r.items()} for r in adapter.fetch(prepared, tid=tessera_id)]


def _read(ws, plan: ProfilePlan, tessera_id: str, events: int) -> dict:
    adapter = ws.adapter
    found = _fetched(adapter, plan.record, tessera_id)
    if not found:
        raise NotFoundError(f"no record {tessera_id} in dataset '{plan.dataset}' (ids change only on merges: "
                           "see tessera explain)")
    source_records = _fetched(adapter, plan.records, tessera_id)
    published_events, recent = [], []
    for ev in plan.events:
        if ev.published is not None:
            for r in _fetched(adapter, ev.published, tessera_id):
                shown = {ev.renamed.get(k, k): v for k, v in r.items()}
                if ev.time_column:
                    shown["timestamp"] = r.get(ev.time_column)
                published_events.append({"dataset": ev.dataset, **shown})
        if ev.pending is not None:
            recent += [{"dataset": ev.dataset, "pending": True, **r}
                       for r in _fetched(adapter, ev.pending, tessera_id)]

    seen = {e.get("message_id") for e in published_events}
    merged = [e for e in recent if e.get("message_id") not in seen] + published_events
    merged.sort(key=lambda e: str(e.get("timestamp") or ""), reverse=True)
    for e in merged:
        for key in ("properties", "traits", "context"):
            if isinstance(e.get(key), str):
                try:
                    e[key] = json.loads(e[key])
                except ValueError:
                    pass
    memberships = []
    if plan.memberships is not None:
        memberships = [{"segment": r["segment"], "entered_at": _plain(r["entered_at"]), "version": r["version"]}
                       for r in adapter.fetch(plan.memberships, tid=tessera_id)]
    return {"dataset": plan.dataset, "tessera_id": tessera_id, "attributes": found[0],
            "segments": memberships, "records": source_records, "events": merged[:events],
            "pending_events": sum(1 for e in merged if e.get("pending")),
            # the customer's consent: current state per channel and history
            "consent": ws.consent_of_rows(adapter.fetch(plan.consent, tid=tessera_id) if plan.consent else [])}


# --------------------------------------------------------------------------- search and the 360 view
ID_FIELDS = ("CustomerId", "LoyaltyCard", "Email", "Phone")
CONSENT_HINTS = ("optin", "opt_in", "consent", "unsubscribed", "opt_out", "optout")
RECORD = "_tessera_record"


def customer_dataset(ws, dataset: str | None = None) -> str:
    """The dataset of customers: ``dataset``, else the first deduplicated dataset.

    Raises:
        NotFoundError: no such dataset, or none is deduplicated.
    """
    name = dataset or next((d.name for d in ws.config.datasets if d.deduplicate), None)
    if name is None or name not in {d.name for d in ws.config.datasets}:
        raise NotFoundError(f"unknown or missing customer dataset '{name}': name a deduplicated dataset")
    return name


def _fields(ws, dataset: str) -> dict[str, str]:
    from tessera.segments.related import _semantics

    return _semantics(ws.config, dataset)


def _date_of(record: dict, updated_col: str | None) -> str | None:
    return _plain(record.get(updated_col)) if updated_col and record.get(updated_col) else record.get("_tessera_imported_at")


def attribute_sources(ws, dataset: str, attributes: dict, records: list[dict]) -> list[dict]:
    """Each column of a unified record with its value, and the source record it came from (the
    most recent source record holding that value) with that record's date."""
    fields = _fields(ws, dataset)
    updated = fields.get("UpdatedAt")
    ds = next(d for d in ws.config.datasets if d.name == dataset)
    mapped = [c for m in ds.mappings for c in m.columns]
    columns = list(dict.fromkeys([c.name for c in ds.columns] + mapped))
    by_date = sorted(records, key=lambda r: str(_date_of(r, updated) or ""), reverse=True)
    semantic_of = {v: k for k, v in fields.items()}
    out = []
    for col in columns:
        if col not in attributes:
            continue
        value = attributes[col]
        came = [r for r in by_date if value is not None and r.get(col) is not None and str(r.get(col)) == str(value)]
        first = came[0] if came else None
        out.append({"column": col, "semantic": semantic_of.get(col), "value": value,
                    "source": first.get("_tessera_source") if first else None,
                    "record": first.get(RECORD) if first else None,
                    "date": _date_of(first, updated) if first else None,
                    "sources": sorted({r.get("_tessera_source") for r in came if r.get("_tessera_source")})})
    return out


def identity_graph(ws, dataset: str, tessera_id: str) -> dict:
    """The source records merged into a unified record and why: ``{"nodes": [{"id", "source",
    "label"}], "edges": [{"from", "to", "key", "value"}], "unused": [...]}``."""
    exp = ws.explain(tessera_id, dataset)
    nodes = [{"id": r[RECORD], "source": r.get("_tessera_source"), "label": exp.who(r[RECORD])} for r in exp.records]
    edges = [{"from": link.via, "to": link.record, "key": link.key, "value": link.value,
              "probability": link.probability} for link in exp.links if link.via]
    return {"nodes": nodes, "edges": edges, "unused": [{k: _plain(v) for k, v in u.items()} for u in exp.unused]}


def _related_orders(ws, dataset: str) -> list[tuple[str, str, dict]]:
    """(dataset, link column, semantic fields) of each published dataset linked to the customers
    with an OrderDate (orders, tickets)."""
    from tessera.segments.related import links_to

    out = []
    for d in ws.config.datasets:
        if d.name == dataset or ws.adapter.published_target(d.name) is None:
            continue
        link = links_to(ws.config, d.name, dataset)
        fields = _fields(ws, d.name)
        if link and "OrderDate" in fields:
            out.append((d.name, link, fields))
    return out


def _window(t, col: str, since: bool, until: bool):
    """``t`` between the days bound as ``since`` and ``until`` (each only when asked)."""
    cond = None
    if since:
        cond = t[col] >= param("since").cast("date").cast(t[col].type())
    if until:
        c2 = t[col].cast("date") <= param("until").cast("date")
        cond = c2 if cond is None else cond & c2
    return t if cond is None else t.filter(cond)


def _orders_plan(ws, dataset: str, since: bool, until: bool, limit: int) -> list[tuple[str, Prepared]]:
    """The queries of a customer's orders in each related orders dataset (the customer's id bound
    as ``tid``), read through the link column's index (Workspace.index_for_reads)."""
    out = []
    for name, link, fields in _related_orders(ws, dataset):
        t = ws.adapter.indexed_table(name)
        date_col = fields["OrderDate"]
        mine = _window(t.filter(t[link] == param("tid")), date_col, since, until)
        shown = {"at": mine[date_col]}
        for key, f in (("order", "OrderId"), ("amount", "OrderAmount"), ("channel", "Channel"), ("store", "Store"),
                       ("discount", "DiscountAmount")):
            if f in fields and fields[f] in t.columns:
                shown[key] = mine[fields[f]]
        # All of the customer's orders, sorted here: DuckDB leaves the index for an ORDER BY.
        out.append((name, ws.adapter.prepare(mine.select(**shown).limit(MAX_ORDERS))))
    return out


def customer_orders(ws, dataset: str, tessera_id: str, *, since=None, until=None, limit: int = 200) -> list[dict]:
    """The orders of a customer from each related orders dataset, newest first."""
    key = ("customer_orders", dataset, since is not None, until is not None, limit)
    plan = ws.cached_read(key, lambda: _orders_plan(ws, dataset, since is not None, until is not None, limit))
    bound = {"tid": tessera_id, **({"since": since.isoformat()} if since is not None else {}),
             **({"until": until.isoformat()} if until is not None else {})}
    out = []
    for name, query in plan:
        rows = sorted(ws.adapter.fetch(query, **bound), key=lambda r: (r["at"] is not None, r["at"] or 0),
                      reverse=True)[:limit]
        out += [{"dataset": name, **{k: _plain(v) for k, v in r.items()}} for r in rows]
    out.sort(key=lambda r: str(r.get("at") or ""), reverse=True)
    return out[:limit]


def _charts_plan(ws, dataset: str) -> list[tuple[str, str, Prepared]]:
    """The queries of the 360 page's charts, ``(chart, dataset, query)``, the customer's id bound as ``tid``."""
    from tessera.segments.related import links_to

    out = []
    for name, link, fields in _related_orders(ws, dataset):
        t = ws.adapter.indexed_table(name)
        mine = t.filter(t[link] == param("tid"))
        month = mine[fields["OrderDate"]].cast("date").truncate("M")
        amount = mine[fields["OrderAmount"]] if "OrderAmount" in fields else ibis.literal(0)
        per = mine.mutate(_m=month, _a=amount).group_by("_m").agg(amount=lambda x: x._a.sum(), orders=lambda x: x.count())
        out.append(("spend", name, ws.adapter.prepare(per.order_by("_m"))))
        if "Channel" in fields:
            c = mine.group_by(channel=mine[fields["Channel"]].cast("string")).agg(orders=mine.count())
            out.append(("channels", name, ws.adapter.prepare(c.order_by(ibis.desc("orders")))))
        # Order lines of these orders, with the category of their own or of their product.
        for items in ws.config.datasets:
            if items.name in (name, dataset) or ws.adapter.published_target(items.name) is None:
                continue
            to_order = links_to(ws.config, items.name, name)
            if not to_order:
                continue
            it = ws.table(items.name)
            ifields = _fields(ws, items.name)
            lines = it.filter(it[to_order].isin(mine.tessera_id))
            category = lines[ifields["ProductCategory"]] if "ProductCategory" in ifields else None
            if category is None:
                for prod in ws.config.datasets:
                    to_prod = links_to(ws.config, items.name, prod.name)
                    pfields = _fields(ws, prod.name) if to_prod else {}
                    if to_prod and "ProductCategory" in pfields and ws.adapter.published_target(prod.name):
                        p = ws.table(prod.name).select(_pid=lambda x: x.tessera_id, _cat=pfields["ProductCategory"])
                        lines = lines.left_join(p, lines[to_prod] == p._pid)
                        category = lines._cat
                        break
            if category is None:
                continue
            g = lines.mutate(_c=category.cast("string")).group_by(category="_c").agg(lines=lambda x: x.count())
            out.append(("categories", name, ws.adapter.prepare(g.order_by(ibis.desc("lines")))))
    return out


def customer_charts(ws, dataset: str, tessera_id: str) -> dict:
    """What the 360 page charts: spend per month, orders per channel, order lines per category."""
    out: dict[str, list] = {"spend": [], "channels": [], "categories": []}
    for chart, name, query in ws.cached_read(("customer_charts", dataset), lambda: _charts_plan(ws, dataset)):
        rows = _fetched(ws.adapter, query, tessera_id)
        if chart == "spend":
            out["spend"] += [{"month": r["_m"], "amount": r["amount"], "orders": r["orders"], "dataset": name}
                             for r in rows]
        else:
            out[chart] += rows
    return out


def segment_changes(ws, tessera_id: str, *, limit: int = 50) -> list[dict]:
    """The segment entries and exits of one record, newest first."""
    key = ("segment_changes", limit)
    query = ws.cached_read(key, lambda: _changes_query(ws, limit))
    if query is None:  # no segment computed yet: looked for again at the next profile
        ws.forget_read(key)
        return []
    return _fetched(ws.adapter, query, tessera_id)


def _changes_query(ws, limit: int) -> Prepared | None:
    from tessera.segments.membership import LOG

    if not ws.adapter.exists(LOG):
        return None
    t = ws.adapter.table(LOG)
    when = ibis.coalesce(t.exited_at, t.entered_at)
    q = t.filter(t.tessera_id == param("tid")).mutate(_at=when).order_by(ibis.desc("_at")).limit(limit)
    return ws.adapter.prepare(q.drop("_at"))


def customer_view(ws, tessera_id: str, dataset: str | None = None, *, since=None, until=None,
                  events: int = 100, charts: bool = True) -> dict:
    """Everything the customer 360 page shows: the profile (:func:`profile`), each attribute with
    its source and date, identities and consent, key figures, the identity graph, the timeline
    (orders, events, segment entries and exits; newest first, between ``since`` and ``until``),
    chart data (unless ``charts`` is false: :func:`customer_charts` gives it apart) and the scores."""
    dataset = customer_dataset(ws, dataset)
    base = profile(ws, tessera_id, dataset, events=events)
    attrs = base["attributes"]
    fields = _fields(ws, dataset)
    ds = next(d for d in ws.config.datasets if d.name == dataset)
    id_cols = list(dict.fromkeys([k.column for k in ds.identity_keys] + [fields[f] for f in ID_FIELDS if f in fields]))
    identities = []
    for col in id_cols:
        values = sorted({str(r[col]) for r in base["records"] if r.get(col) not in (None, "")})
        for part in (attrs.get(col) or "").split(", ") if isinstance(attrs.get(col), str) else []:
            if part and part not in values:
                values.append(part)
        identities += [{"column": col, "value": v} for v in values]
    identities += [{"column": "record", "value": r[RECORD]} for r in base["records"] if r.get(RECORD)]
    consent = [{"column": c, "value": v} for c, v in attrs.items()
               if any(h in c.lower() for h in CONSENT_HINTS) and not c.startswith("_")]
    scores = [{"column": c, "value": v} for c, v in attrs.items() if c.startswith("score_")]
    orders = customer_orders(ws, dataset, tessera_id, since=since, until=until)
    timeline = [{"at": o.get("at"), "kind": "order", "dataset": o["dataset"], "item": o} for o in orders]
    for e in base["events"]:
        at = e.get("timestamp")
        if in_range(at, since, until):
            timeline.append({"at": at, "kind": "event", "dataset": e.get("dataset"), "item": e})
    for ch in segment_changes(ws, tessera_id):
        for kind in ("entered", "exited"):
            at = ch.get(f"{kind}_at")
            if at and in_range(at, since, until):
                timeline.append({"at": at, "kind": f"segment_{kind}", "dataset": None, "item": ch})
    timeline.sort(key=lambda x: str(x["at"] or ""), reverse=True)
    figures = {k: attrs.get(c) for k, c in (
        ("orders", "score_total_order_count"), ("revenue", "score_orders_total_amount"),
        ("last_order", "score_last_order_date"), ("rfm_segment", "score_rfm_segment"),
        ("churn_risk", "score_churn_risk"), ("clv", "score_predicted_clv")) if c in attrs}
    if "orders" not in figures and orders:
        figures["orders"] = len(orders)
        figures["revenue"] = sum(o.get("amount") or 0 for o in orders)
        figures["last_order"] = orders[0].get("at")
    return {**base, "attribute_sources": attribute_sources(ws, dataset, attrs, base["records"]),
            "identities": identities, "consent": consent, "scores": scores, "figures": figures,
            "graph": identity_graph(ws, dataset, tessera_id), "timeline": timeline,
            "charts": customer_charts(ws, dataset, tessera_id) if charts else None, "fields": fields}


def in_range(at, since, until) -> bool:
    """Whether a time (ISO text or datetime) falls between the days ``since`` and ``until`` (each optional)."""
    text = str(at or "")[:10]
    if since is not None and text and text < since.isoformat():
        return False
    if until is not None and text and text > until.isoformat():
        return False
    return True


def display_names(ws, dataset: str, ids: list[str]) -> dict[str, str]:
    """The name shown for each of a few records of ``dataset`` (full name, else first and last name,
    else company, else e-mail), by ``tessera_id``; records without any of them are left out."""
    ids = sorted({i for i in ids if i})
    if not ids or ws.adapter.published_target(dataset) is None:
        return {}
    t = ws.table(dataset)
    fields = {k: v for k, v in _fields(ws, dataset).items() if v in t.columns}
    shown = {k: t[fields[f]].cast("string") for k, f in (("full", "FullName"), ("first", "FirstName"),
             ("last", "LastName"), ("company", "Company"), ("email", "Email")) if f in fields}
    if not shown:
        return {}
    out = {}
    for r in _rows(ws.adapter, t.filter(t.tessera_id.isin(ids)).select(tessera_id=t.tessera_id, **shown)):
        name = (r.get("full") or " ".join(x for x in (r.get("first"), r.get("last")) if x)
                or r.get("company") or r.get("email"))
        if name:
            out[r["tessera_id"]] = name
    return out
