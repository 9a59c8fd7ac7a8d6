"""The related datasets of behaviour conditions (events, orders) and the events still pending.

A behaviour condition reads a dataset related to the segment's dataset: its link column (the
``tessera_id`` of the record it belongs to), its event name column (``did``/``not_done``) and its
date column (time windows). Between two runs, events collected by the server are in
``_tessera_events`` but not yet in the published events dataset: :func:`with_pending_events`
adds them, matched to records on the identifiers of the records' source rows (user ids,
anonymous ids, e-mails), the same way the 360° profile shows them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import ibis

from tessera.config.models import ConditionConfig, WorkspaceConfig
from tessera.errors import ConfigError

EVENTS_TABLE = "_tessera_events"


@dataclass
class RelatedInfo:
    dataset: str
    link: str  # its column holding the segment dataset's tessera_id
    event_column: str | None
    date_column: str | None


def _semantics(config: WorkspaceConfig, dataset: str) -> dict[str, str]:
    """Semantic field -> column of a dataset (declared, else suggested from the column's name)."""
    from tessera.normalize.semantic import suggest_semantic

    d = next(x for x in config.datasets if x.name == dataset)
    out: dict[str, str] = {}
    names = [c.name for c in d.columns] + [c for m in d.mappings for c in m.columns] + [c.name for c in d.computed]
    declared = {c.name: c.semantic for c in d.columns if c.semantic}
    declared.update({c.name: c.semantic for c in d.computed if c.semantic})
    for n in names:
        field = declared.get(n) or suggest_semantic(n)
        if field and field not in out:
            out[field] = n
    return out


def links_to(config: WorkspaceConfig, dataset: str, target: str) -> str | None:
    """The column of ``dataset`` holding the ``tessera_id`` of a ``target`` record, or None."""
    from tessera.datasets.build import link_name, relation_target

    sources = {s.name: s for s in config.sources}
    d = next((x for x in config.datasets if x.name == dataset), None)
    if d is None:
        return None
    for m in d.mappings:
        for rel in sources[m.source].relations if m.source in sources else []:
            try:
                if relation_target(config, rel)[2] == target:
                    return link_name(config, rel)
            except KeyError:
                continue
    return None


def is_events_dataset(config: WorkspaceConfig, dataset: str) -> bool:
    http = {c.name for c in config.connections if c.type == "http"}
    sources = {s.name: s for s in config.sources}
    d = next((x for x in config.datasets if x.name == dataset), None)
    return d is not None and any(sources.get(m.source) is not None and sources[m.source].connection in http
                                 for m in d.mappings)


def related_info(config: WorkspaceConfig, customer_dataset: str, cond: ConditionConfig, where: str) -> RelatedInfo:
    """The related dataset a behaviour condition reads: ``from``, or else the dataset related to
    ``customer_dataset`` with an EventName field (did, not_done) or an OrderDate field (aggregate)."""
    wanted = "OrderDate" if cond.kind == "aggregate" else "EventName"
    name = cond.from_
    if name is None:
        for d in config.datasets:
            if d.name != customer_dataset and links_to(config, d.name, customer_dataset) \
                    and wanted in _semantics(config, d.name):
                name = d.name
                break
        if name is None:
            what = "an orders dataset (a column with semantic: OrderDate)" if wanted == "OrderDate" else \
                "an events dataset (a column with semantic: EventName)"
            raise ConfigError(f"{where}: no dataset related to '{customer_dataset}' found; set from: <dataset> "
                              f"or declare {what} with a relation to '{customer_dataset}'")
    if name not in {d.name for d in config.datasets}:
        raise ConfigError(f"{where}.from: unknown dataset '{name}'")
    link = links_to(config, name, customer_dataset)
    if link is None:
        raise ConfigError(f"{where}.from: dataset '{name}' has no relation to '{customer_dataset}' (e.g. "
                          f"{name}.customer_email -> {customer_dataset}.email)")
    fields = _semantics(config, name)
    event = fields.get("EventName")
    date_col = cond.date_column or fields.get("EventTime") or fields.get("OrderDate")
    return RelatedInfo(name, link, event, date_col)


def behaviour_datasets(config: WorkspaceConfig, segment, seen: tuple[str, ...] = ()) -> set[str]:
    """The related datasets that a segment's behaviour conditions read (through the segments it uses too)."""
    by_name = {s.name: s for s in config.segments}
    out: set[str] = set()

    def walk(c: ConditionConfig, stack: tuple[str, ...]) -> None:
        kind = c.kind
        if kind in ("all", "any"):
            for x in getattr(c, kind):
                walk(x, stack)
        elif kind == "not":
            walk(c.not_, stack)
        elif kind == "segment" and c.segment in by_name and c.segment not in stack:
            for x in by_name[c.segment].conditions:
                walk(x, stack + (c.segment,))
        elif kind in ("did", "not_done", "aggregate"):
            try:
                out.add(related_info(config, segment.dataset, c, "").dataset)
            except ConfigError:
                pass

    for c in segment.conditions:
        walk(c, (segment.name,) + seen)
    return out


def event_links(config: WorkspaceConfig, dataset: str) -> list[tuple[str, str, list[tuple[str, str]], str]]:
    """(events dataset, its link column, [(event column, customer column)], connection) of each event
    source feeding a dataset related to ``dataset``."""
    from tessera.datasets.build import link_name, relation_target

    http = {c.name for c in config.connections if c.type == "http"}
    feeds = {m.source: d.name for d in config.datasets for m in d.mappings}
    out = []
    for src in config.sources:
        if src.connection not in http or src.name not in feeds:
            continue
        pairs, link = [], None
        for rel in src.relations:
            if relation_target(config, rel)[2] != dataset:
                continue
            link = link or link_name(config, rel)
            pairs.append((rel.column, rel.to.split(".")[1]))
        if pairs:
            out.append((feeds[src.name], link, pairs, src.connection))
    return out


def with_pending_events(adapter, config: WorkspaceConfig, events_dataset: str, customer_dataset: str,
                        published: ibis.Table, since: datetime | None) -> ibis.Table:
    """The published events dataset plus the events collected after ``since`` (its publication),
    linked to the records of ``customer_dataset`` through the identifiers of their source rows.

    Only the columns a pending event can give are kept: the link, and every dataset column mapped
    from an event column or a JSON path (cast to the published type)."""
    from tessera.config.events import is_json_path

    if not adapter.exists(EVENTS_TABLE):
        return published
    links = [x for x in event_links(config, customer_dataset) if x[0] == events_dataset]
    records_name = f"{customer_dataset}__records"
    if not links or adapter.published_target(records_name) is None:
        return published
    _ds, link, pairs, connection = links[0]
    ds_cfg = next(d for d in config.datasets if d.name == events_dataset)
    mapping = {dcol: scol for m in ds_cfg.mappings for dcol, scol in m.columns.items()}
    raw = adapter.table(EVENTS_TABLE)
    cond = raw.connection == connection
    if since is not None:
        cond = cond & (raw.received_at > ibis.literal(since))
    raw = raw.filter(cond)
    records = adapter.table(records_name)
    # event identifier -> tessera_id, on each pair (event column, customer column)
    matches = []
    for event_col, customer_col in pairs:
        if customer_col not in records.columns or event_col not in raw.columns:
            continue
        ids = records.filter(records[customer_col].notnull()).select(
            _tessera_v=records[customer_col].cast("string"), _tessera_c=records.tessera_id).distinct()
        j = raw.inner_join(ids, raw[event_col] == ids._tessera_v)
        matches.append(j.select("message_id", _tessera_c=j._tessera_c))
    if not matches:
        return published
    linked = matches[0]
    for m in matches[1:]:
        linked = linked.union(m, distinct=True)
    # one customer per event: the first when identifiers disagree
    linked = linked.group_by("message_id").agg(_tessera_c=linked._tessera_c.min())
    pending = raw.inner_join(linked, "message_id")
    cols = {}
    for dcol, scol in mapping.items():
        if dcol not in published.columns or dcol == link:
            continue
        if scol in pending.columns:
            value = pending[scol]
        elif is_json_path(scol):
            root, *path = scol.split(".")
            value = adapter.dialect.json_text(pending[root], path)
        else:
            continue
        cols[dcol] = value.cast(published[dcol].type())
    keep = [link, *cols]
    pending = pending.select(**{link: pending._tessera_c.cast(published[link].type())}, **cols)
    # events already published (a run linked them) are not counted twice
    if "message_id" in cols or mapping.get("message_id") == "message_id":
        pending = pending.anti_join(published, "message_id")
    return published.select(*keep).union(pending.select(*keep), distinct=False)
