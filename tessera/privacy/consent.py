"""Consent per channel, with its history: what each source and event said, and when.

Channels and the semantic fields of their opt-in columns:

=========  ===============
``email``  ``EmailOptIn``
``sms``    ``SmsOptIn``
``phone``  ``PhoneOptIn``
``ads``    ``AdsOptIn``
=========  ===============

Each run (:func:`refresh`, the pipeline's ``consent`` step) reads, for every customer dataset:

- the opt-in columns of its source records (``<dataset>__records``): one observation per source
  record and channel, at the record's ``date_column`` (else its import time), from its source;
- collected ``track`` events named ``Consent Updated`` whose ``properties`` hold ``channel`` and
  ``granted`` (true/false), linked to the customer through the event source's relations.

An observation that differs from the last one recorded for the same record and channel is
appended to ``_tessera_consent_history`` (``dataset, tessera_id, record, source, channel,
granted, at, recorded_at``): the table only grows, so it is the history. The *current* consent
of a customer for a channel is their latest observation (by ``at``, then by when it was
recorded); syncs to a destination that ``requires_consent`` send only customers whose current
consent is granted (:func:`granted`). Everything is set-based in the engine.
"""

from __future__ import annotations

from datetime import datetime, timezone

import ibis
import ibis.expr.datatypes as dt
import pyarrow as pa

from tessera.config.models import DatasetConfig, WorkspaceConfig
from tessera.engine.base import EngineAdapter
from tessera.engine.types import FALSE_WORDS, TRUE_WORDS
from tessera.normalize.semantic import suggest_semantic
from tessera.privacy.identifiers import deduplicated, text
from tessera.segments.related import event_links
from tessera.sources.events import EVENTS_TABLE

HISTORY = "_tessera_consent_history"
CHANNELS = {"email": "EmailOptIn", "sms": "SmsOptIn", "phone": "PhoneOptIn", "ads": "AdsOptIn"}
CONSENT_EVENT = "Consent Updated"
TID = "tessera_id"
SCHEMA = pa.schema([("dataset", pa.string()), ("tessera_id", pa.string()), ("record", pa.string()),
                    ("source", pa.string()), ("channel", pa.string()), ("granted", pa.bool_()),
                    ("at", pa.timestamp("us")), ("recorded_at", pa.timestamp("us"))])
KEY = ["dataset", "record", "channel"]


def optin_columns(ds: DatasetConfig, columns: list[str]) -> dict[str, str]:
    """channel -> the dataset column holding its opt-in (declared semantic first, else suggested)."""
    declared = {c.name: c.semantic for c in ds.columns if c.semantic}
    out: dict[str, str] = {}
    for channel, semantic in CHANNELS.items():
        found = [c for c in columns if declared.get(c) == semantic] or \
                [c for c in columns if c not in declared and suggest_semantic(c) == semantic]
        if found:
            out[channel] = found[0]
    return out


def as_granted(value: ibis.Value) -> ibis.BooleanValue:
    """True, False, or NULL when the value says nothing (empty, unknown words)."""
    kind = value.type()
    if kind.is_boolean():
        return value
    if kind.is_numeric():
        return ibis.cases((value == 1, True), (value == 0, False), else_=ibis.null(dt.boolean))
    low = value.cast("string").strip().lower()
    return ibis.cases((low.isin(TRUE_WORDS), True), (low.isin(FALSE_WORDS), False), else_=ibis.null(dt.boolean))


def _from_records(adapter: EngineAdapter, ds: DatasetConfig) -> list[ibis.Table]:
    target = adapter.published_target(f"{ds.name}__records")
    if target is None:
        return []
    rec = adapter.table(target)
    when = rec._tessera_imported_at.cast("timestamp")
    if ds.date_column and ds.date_column in rec.columns:
        kind = rec[ds.date_column].type()
        if kind.is_timestamp() or kind.is_date():
            when = ibis.coalesce(rec[ds.date_column].cast("timestamp"), when)
    parts = []
    for channel, column in optin_columns(ds, list(rec.columns)).items():
        obs = rec.select(dataset=ibis.literal(ds.name), tessera_id=rec[TID].cast("string"),
                         record=rec._tessera_record.cast("string"), source=rec._tessera_source.cast("string"),
                         channel=ibis.literal(channel), granted=as_granted(rec[column]), at=when)
        parts.append(obs.filter(obs.granted.notnull()))
    return parts


def _from_events(adapter: EngineAdapter, config: WorkspaceConfig, ds: DatasetConfig) -> list[ibis.Table]:
    target = adapter.published_target(f"{ds.name}__records")
    if target is None or not adapter.exists(EVENTS_TABLE):
        return []
    rec = adapter.table(target)
    raw = adapter.table(EVENTS_TABLE)
    dialect = adapter.dialect
    parts = []
    for _events_ds, _link, pairs, connection in event_links(config, ds.name):
        ev = raw.filter((raw.connection == connection) & (raw.type == "track") & (raw.event == CONSENT_EVENT))
        ev = ev.select("message_id", "timestamp", *[c for c, _ in pairs],
                       channel=dialect.json_text(ev.properties, ["channel"]).strip().lower(),
                       granted=as_granted(dialect.json_text(ev.properties, ["granted"])))
        ev = ev.filter(ev.channel.isin(list(CHANNELS)) & ev.granted.notnull())
        for event_col, customer_col in pairs:
            if customer_col not in rec.columns:
                continue
            keys = rec.select(_k=text(rec[customer_col]), _tid=rec[TID].cast("string")).distinct()
            joined = ev.join(keys, text(ev[event_col]) == keys._k)
            parts.append(joined.select(
                dataset=ibis.literal(ds.name), tessera_id=joined._tid,
                record=ibis.literal("event:").concat(joined.message_id),
                source=ibis.literal(f"events:{connection}"), channel=joined.channel, granted=joined.granted,
                at=joined.timestamp.cast("timestamp")))
    return parts


def _latest(history: ibis.Table, by: list[str]) -> ibis.Table:
    w = ibis.window(group_by=[history[c] for c in by],
                    order_by=[ibis.desc(history.at), ibis.desc(history.recorded_at), ibis.desc(history.source)])
    ranked = history.mutate(_rank=ibis.row_number().over(w))
    return ranked.filter(ranked._rank == 0).drop("_rank")


def refresh(adapter: EngineAdapter, config: WorkspaceConfig) -> dict:
    """Append the consent observations that changed since the last run; the counts."""
    parts = []
    for ds in deduplicated(config):
        parts += _from_records(adapter, ds)
        parts += _from_events(adapter, config, ds)
    if not parts:
        return {"consent_changes": 0}
    obs = parts[0]
    for p in parts[1:]:
        obs = obs.union(p, distinct=False)
    # one observation per record and channel: the latest
    obs = obs.mutate(recorded_at=ibis.literal(datetime.now(timezone.utc).replace(tzinfo=None), dt.timestamp))
    obs = _latest(obs, KEY + [TID])
    if adapter.exists(HISTORY):
        last = _latest(adapter.table(HISTORY), KEY).select(*KEY, _g=ibis._.granted, _tid=ibis._.tessera_id)
        j = obs.left_join(last, KEY)
        obs = j.filter(j._g.isnull() | (j._g != j.granted) | (j._tid != j.tessera_id)) \
            .select(*SCHEMA.names)
    else:
        adapter.create_table(HISTORY, SCHEMA.empty_table())
    new = adapter.create_table("_tessera_consent_new", obs.select(*SCHEMA.names), temp=True)
    n = adapter.count(new)
    if n:
        adapter.append_query(HISTORY, new)
    adapter.drop_table("_tessera_consent_new")
    return {"consent_changes": n}


def _history_of(adapter: EngineAdapter, dataset: str) -> ibis.Table | None:
    """The history with each source record's observations under its current tessera_id."""
    if not adapter.exists(HISTORY):
        return None
    h = adapter.table(HISTORY)
    h = h.filter(h.dataset == dataset)
    target = adapter.published_target(f"{dataset}__records")
    if target is None:
        return h
    rec = adapter.table(target)
    now = rec.select(_r=rec._tessera_record.cast("string"), _now=rec[TID].cast("string"))
    j = h.left_join(now, h.record == now._r)
    return j.mutate(tessera_id=ibis.coalesce(j._now, j.tessera_id)).select(*SCHEMA.names)


def granted(adapter: EngineAdapter, dataset: str, channel: str) -> ibis.Table | None:
    """``tessera_id`` of the customers whose current consent for ``channel`` is granted; None when
    the history has nothing for the channel (the dataset's opt-in column then decides)."""
    h = _history_of(adapter, dataset)
    if h is None:
        return None
    h = h.filter(h.channel == channel)
    if not adapter.count(h.limit(1)):
        return None
    current = _latest(h, [TID])
    return current.filter(current.granted).select(_tessera_consent_id=current[TID])


def history_query(adapter: EngineAdapter, dataset: str, tessera_id) -> ibis.Table | None:
    """The consent changes of one customer, newest first (``tessera_id``: a value or a bound
    parameter, see :func:`tessera.engine.base.param`); None when there is no history yet."""
    if not adapter.exists(HISTORY):
        return None
    h = adapter.table(HISTORY)
    h = h.filter(h.dataset == dataset)
    target = adapter.published_target(f"{dataset}__records")
    if target is None:
        own = h.filter(h[TID] == tessera_id).select(*SCHEMA.names)
    else:
        # As _history_of, for one customer without joining every record: the history of the
        # records that are theirs now (found through the tessera_id index), and the rows recorded
        # under their id whose record is no other customer's now.
        rec = adapter.table(target)
        mine = rec.filter(rec[TID] == tessera_id).select(_r=rec._tessera_record.cast("string"))
        theirs = h.filter(h.record.isin(mine._r))
        left = h.filter((h[TID] == tessera_id) & ~h.record.isin(mine._r))
        moved = rec.filter(rec._tessera_record.cast("string").isin(left.record))
        moved = moved.select(_r=moved._tessera_record.cast("string"))
        kept = left.filter(~left.record.isin(moved._r))
        own = theirs.select(*SCHEMA.names).union(kept.select(*SCHEMA.names), distinct=False)
    return (own.order_by([ibis.desc("at"), ibis.desc("recorded_at"), "channel"])
            .select("channel", "granted", "source", "record", "at", "recorded_at"))


def history(adapter: EngineAdapter, dataset: str, tessera_id: str) -> dict:
    """The consent of one customer: current state per channel, and every change, newest first."""
    query = history_query(adapter, dataset, tessera_id)
    if query is None:
        return {"current": {}, "history": []}
    return history_of_rows(adapter.to_arrow(query).to_pylist())


def history_of_rows(rows: list[dict]) -> dict:
    """The answer of :func:`history` from the rows of :func:`history_query`."""
    plain = [{k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in r.items()} for r in rows]
    current: dict[str, dict] = {}
    for r in plain:
        current.setdefault(r["channel"], {"granted": r["granted"], "source": r["source"], "at": r["at"]})
    return {"current": current, "history": plain}
