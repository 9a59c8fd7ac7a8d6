"""The 360° profile of one unified record: its attributes, source records and latest events.

Published events come from the events datasets related to the customer dataset (a dataset fed by
an event source whose relations point at it). Events collected since that publication are read
from the collected events table and matched on the customer's identifiers (the values of the
related columns in the customer's source records: user ids, anonymous ids, emails), so a
profile shows a new event as soon as it is loaded, before the next run links it for good.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone

import ibis

from tessera.errors import NotFoundError
from tessera.segments.related import event_links

EVENTS_TABLE = "_tessera_events"
SHOWN = ("message_id", "type", "event", "name", "timestamp", "user_id", "anonymous_id", "email", "properties")


def _plain(value):
    if hasattr(value, "isoformat"):  # datetime, date, time
        return value.isoformat()
    if isinstance(value, (bytes, bytearray)):
        return value.hex()
    if value is not None and not isinstance(value, (str, int, float, bool, list, dict)):
        return str(value)
    return value


def _rows(adapter, expr: ibis.Table) -> list[dict]:
    return [{k: _plain(v) for k, v in r.items()} for r in adapter.to_arrow(expr).to_pylist()]


def profile(ws, tessera_id: str, dataset: str | None = None, *, events: int = 50) -> dict:
    """The profile of ``tessera_id`` in ``dataset`` (default: the first deduplicated dataset)."""
    config = ws.config
    dataset = dataset or next((d.name for d in config.datasets if d.deduplicate), None)
    if dataset is None or dataset not in {d.name for d in config.datasets}:
        raise NotFoundError(f"unknown or missing customer dataset '{dataset}': name a deduplicated dataset")
    adapter = ws.adapter
    table = ws.table(dataset)
    found = _rows(adapter, table.filter(table.tessera_id == tessera_id).limit(1))
    if not found:
        raise NotFoundError(f"no record {tessera_id} in dataset '{dataset}' (ids change only on merges: "
                           "see tessera explain)")
    records = ws.table(f"{dataset}__records")
    own = records.filter(records.tessera_id == tessera_id)
    source_records = _rows(adapter, own.limit(200))

    published_events, recent = [], []
    for events_ds, link, pairs, connection in event_links(config, dataset):
        ds_cfg = next(d for d in config.datasets if d.name == events_ds)
        # Dataset column -> event column, to show published and pending events alike.
        renamed = {dcol: scol for m in ds_cfg.mappings for dcol, scol in m.columns.items()}
        time_col = next((c["column"] for c in ws.describe(events_ds) if c["semantic"] == "EventTime"), None)
        if adapter.published_target(events_ds) is not None:
            ev = ws.table(events_ds)
            cols = [c for c in ev.columns if not c.startswith("_tessera")]
            order = [ibis.desc(time_col)] if time_col in ev.columns else []
            sel = ev.filter(ev[link] == tessera_id).select(*cols)
            rows = _rows(adapter, (sel.order_by(order) if order else sel).limit(events))
            for r in rows:
                shown = {renamed.get(k, k): v for k, v in r.items()}
                if time_col:
                    shown["timestamp"] = r.get(time_col)
                published_events.append({"dataset": events_ds, **shown})
        if not adapter.exists(EVENTS_TABLE):
            continue
        # Events collected after the events dataset was last published, matched on identifiers.
        pub = ws.store.latest_publication(events_ds)
        raw = adapter.table(EVENTS_TABLE)
        cond = None
        for event_col, customer_col in pairs:
            if customer_col not in records.columns or event_col not in raw.columns:
                continue
            values = [v[customer_col] for v in source_records if v.get(customer_col) not in (None, "")]
            if values:
                match = raw[event_col].isin(sorted(set(map(str, values))))
                cond = match if cond is None else cond | match
        if cond is None:
            continue
        newer = raw.connection == connection
        if pub is not None:
            since = datetime.fromisoformat(pub["published_at"]).astimezone(timezone.utc).replace(tzinfo=None)
            newer = newer & (raw.received_at > ibis.literal(since))
        shown = [c for c in SHOWN if c in raw.columns]
        rows = _rows(adapter, raw.filter(newer & cond).select(*shown).order_by(ibis.desc("timestamp")).limit(events))
        recent += [{"dataset": events_ds, "pending": True, **r} for r in rows]

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
    return {"dataset": dataset, "tessera_id": tessera_id, "attributes": found[0],
            "segments": [m for m in ws.segment_memberships(tessera_id)
                         if any(s.name == m["segment"] and s.dataset == dataset for s in config.segments)],
            "records": source_records, "events": merged[:events],
            "consent": ws.consent_history(tessera_id, dataset),
            "pending_events": sum(1 for e in merged if e.get("pending"))}
