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
    #: tables that were missing when the plan was made, and would change it once they exist
    waiting_for: tuple[str, ...] = ()


def customer_dataset(config, dataset: str | None) -> str:
    dataset = dataset or next((d.name for d in config.datasets if d.deduplicate), None)
    if dataset is None or dataset not in {d.name for d in config.datasets}:
        raise NotFoundError(f"unknown or missing customer dataset '{dataset}': name a deduplicated dataset")
    return dataset


def plan_profile(ws, dataset: str, events: int) -> ProfilePlan:
    """Compile the queries of a profile of ``dataset`` (showing up to ``events`` events)."""
    config = ws.config
    adapter = ws.adapter
    tid = param("tid")
    table = ws.table(dataset)
    records = ws.table(f"{dataset}__records")
    waiting: list[str] = []
    plan = ProfilePlan(dataset, adapter.prepare(table.filter(table.tessera_id == tid).limit(1)),
                       adapter.prepare(records.filter(records.tessera_id == tid).limit(RECORDS_SHOWN)))

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
            ev = ws.table(events_ds)
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
    plan.waiting_for = tuple(waiting)
    return plan


def profile(ws, tessera_id: str, dataset: str | None = None, *, events: int = 50) -> dict:
    """The profile of ``tessera_id`` in ``dataset`` (default: the first deduplicated dataset)."""
    dataset = customer_dataset(ws.config, dataset)
    key = ("profile", dataset, events)
    plan = ws.cached_read(key, lambda: plan_profile(ws, dataset, events))
    if plan.waiting_for and any(ws.adapter.exists(t) for t in plan.waiting_for):
        ws.forget_read(key)
        plan = ws.cached_read(key, lambda: plan_profile(ws, dataset, events))
    try:
        return _read(ws.adapter, plan, tessera_id, events)
    except EngineError:
        # A publication moved under the plan (its state is recorded just after): plan it again.
        ws.forget_read(key)
        plan = ws.cached_read(key, lambda: plan_profile(ws, dataset, events))
        return _read(ws.adapter, plan, tessera_id, events)


def _rows(adapter, prepared: Prepared, tessera_id: str) -> list[dict]:
    return [{k: _plain(v) for k, v in r.items()} for r in adapter.fetch(prepared, tid=tessera_id)]


def _read(adapter, plan: ProfilePlan, tessera_id: str, events: int) -> dict:
    found = _rows(adapter, plan.record, tessera_id)
    if not found:
        raise NotFoundError(f"no record {tessera_id} in dataset '{plan.dataset}' (ids change only on merges: "
                           "see tessera explain)")
    source_records = _rows(adapter, plan.records, tessera_id)
    published_events, recent = [], []
    for ev in plan.events:
        if ev.published is not None:
            for r in _rows(adapter, ev.published, tessera_id):
                shown = {ev.renamed.get(k, k): v for k, v in r.items()}
                if ev.time_column:
                    shown["timestamp"] = r.get(ev.time_column)
                published_events.append({"dataset": ev.dataset, **shown})
        if ev.pending is not None:
            recent += [{"dataset": ev.dataset, "pending": True, **r} for r in _rows(adapter, ev.pending, tessera_id)]

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
            "pending_events": sum(1 for e in merged if e.get("pending"))}
