"""Segment membership: recomputed in the warehouse, with an append-only log of entries and exits.

Three warehouse tables, all written set-based (``INSERT ... SELECT`` or one ``CREATE ... AS``):

``_tessera_segment_members``
    the current members: ``segment``, ``tessera_id``, ``entered_at``, ``version`` (the definition
    version they entered under). Replaced at each refresh.
``_tessera_segment_log``
    one row per entry or exit, never changed: ``segment``, ``tessera_id``, ``change`` (``entered`` or
    ``exited``), ``entered_at``, ``exited_at`` (NULL for an entry), ``version``, ``exit_condition``
    (for an exit: the first top-level condition that stopped holding, or why the record left).
``_tessera_segment_sizes``
    one row per segment and refresh: ``segment``, ``refreshed_at``, ``size``, ``entered``, ``exited``,
    ``version``: the size of a segment over time.

A refresh compares the records for which the definition holds now with the current members:
records found only now entered, records found only before exited. The definition version is a
counter kept in the metadata store, increased when the definition changes.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime

import ibis
import ibis.expr.datatypes as dt
import pyarrow as pa

from tessera.config.models import SegmentConfig, WorkspaceConfig
from tessera.errors import ConfigError, EngineError, TesseraError
from tessera.segments.compile import TID, Compiled, Context, compile_segment, compile_segments, explain_failure

MEMBERS = "_tessera_segment_members"
LOG = "_tessera_segment_log"
SIZES = "_tessera_segment_sizes"
WORK = "_tessera_segw_members"
VERSION_SCOPE = "segment_versions"

MEMBERS_SCHEMA = ibis.schema({"segment": dt.string, TID: dt.string, "entered_at": dt.timestamp,
                              "version": dt.int64})
LOG_SCHEMA = ibis.schema({"segment": dt.string, TID: dt.string, "change": dt.string, "entered_at": dt.timestamp,
                          "exited_at": dt.timestamp, "version": dt.int64, "exit_condition": dt.string})
SIZES_SCHEMA = pa.schema([("segment", pa.string()), ("refreshed_at", pa.timestamp("us")), ("size", pa.int64()),
                          ("entered", pa.int64()), ("exited", pa.int64()), ("version", pa.int64())])

LEFT_DATASET = "the record left the dataset (merged into another or removed)"


@dataclass
class Refreshed:
    segment: str
    size: int
    entered: int
    exited: int
    version: int
    skipped: str | None = None  # why the segment was not refreshed (it kept its members)
    failed: bool = False  # skipped because the engine could not compute it (a user's SQL condition)


def definition_hash(segment: SegmentConfig) -> str:
    spec = segment.model_dump(mode="json", exclude_defaults=True, by_alias=True)
    spec.pop("description", None)
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


def definition_version(store, segment: SegmentConfig, *, bump: bool = True) -> int:
    """The version of ``segment``'s definition: 1 at first, +1 each time it changes."""
    h = definition_hash(segment)
    state = store.get_state(VERSION_SCOPE, segment.name) or {}
    if state.get("hash") == h:
        return int(state["version"])
    version = int(state.get("version", 0)) + 1
    if bump:
        store.set_state(VERSION_SCOPE, segment.name, {"hash": h, "version": version})
    return version


def _empty(schema: ibis.Schema) -> pa.Table:
    return pa.Table.from_pylist([], schema=schema.to_pyarrow())


def _conform(t: ibis.Table, schema: ibis.Schema) -> ibis.Table:
    """``t`` with the columns of ``schema``, in its order and types (a union needs equal schemas)."""
    return t.select(**{n: t[n].cast(typ) for n, typ in schema.items()})


def ensure_tables(adapter) -> None:
    if not adapter.exists(MEMBERS):
        adapter.create_table(MEMBERS, _empty(MEMBERS_SCHEMA))
    if not adapter.exists(LOG):
        adapter.create_table(LOG, _empty(LOG_SCHEMA))


def refresh(ctx: Context, store, names: list[str] | None = None, now: datetime | None = None) -> list[Refreshed]:
    """Recompute the membership of the segments (all, or ``names``) and log who entered and left.

    Args:
        ctx: the compilation context (published tables, the date windows end at).
        store: the metadata store (definition versions).
        names: the segments to refresh (default: all).
        now: the time of the entries and exits (default: now, UTC).
    """
    adapter, config = ctx.adapter, ctx.config
    now = (now or datetime.now(UTC)).astimezone(UTC).replace(tzinfo=None, microsecond=0)
    todo = [s for s in config.segments if names is None or s.name in names]
    ensure_tables(adapter)
    members = adapter.table(MEMBERS)
    configured = [s.name for s in config.segments]
    at = ibis.literal(now, dt.timestamp)
    for name in (WORK, f"{WORK}_log"):
        adapter.drop_table(name)
    versions: dict[str, int] = {}
    skipped: dict[str, str] = {}
    failed: set[str] = set()
    by_dataset: dict[str, list[SegmentConfig]] = {}
    for seg in todo:
        by_dataset.setdefault(seg.dataset, []).append(seg)
    currents: list[tuple[str, list[str]]] = []  # per dataset: its members now (a work table), its segments
    for j, segments in enumerate(by_dataset.values()):
        compiled = _compile_all(ctx, segments, skipped)
        if not compiled:
            continue
        for c in compiled:
            versions[c.segment.name] = definition_version(store, c.segment)
        current = f"{WORK}_current{j}"
        try:
            _evaluate(adapter, compiled, members, at, versions, current)
            currents.append((current, [c.segment.name for c in compiled]))
            continue
        except Exception as exc:
            if isinstance(exc, TesseraError) and not isinstance(exc, EngineError):
                raise
        # A condition the engine cannot compute on these rows (a CAST of a text...): each segment
        # on its own, so that the one that fails keeps its members and says which condition failed.
        for k, c in enumerate(compiled):
            alone = f"{current}_{k}"
            try:
                _evaluate(adapter, compile_segments(ctx, [c.segment]), members, at, versions, alone)
            except Exception as exc:
                if isinstance(exc, TesseraError) and not isinstance(exc, EngineError):
                    raise
                skipped[c.segment.name] = _failure(ctx, c.segment, exc)
                failed.add(c.segment.name)
                continue
            currents.append((alone, [c.segment.name]))
    changes: dict[tuple[str, str], int] = {}
    if adapter.exists(f"{WORK}_log"):
        work_log = adapter.table(f"{WORK}_log")
        changes = {(r["segment"], r["change"]): int(r["n"]) for r in adapter.to_arrow(
            work_log.group_by(["segment", "change"]).agg(n=work_log.count())).to_pylist()}
    removed = adapter.count(members.filter(~members.segment.isin(configured or [""]))) > 0
    if any(changes.values()) or removed:
        # New members = the members now (keeping the entry time and version of those who stay)
        # and the untouched segments' members; the log first, as it was computed from the members.
        for current, names in currents:
            _keep_members(adapter, adapter.table(current), names, members, at, versions)
        untouched = members.filter(~members.segment.isin([s.name for s in todo if s.name not in skipped] or [""])
                                   & members.segment.isin(configured or [""]))
        adapter.append_query(WORK, _conform(untouched, MEMBERS_SCHEMA), temp=True)
        if changes:
            adapter.append_query(LOG, adapter.table(f"{WORK}_log"))
        adapter.create_table(MEMBERS, adapter.table(WORK))
    # else: nobody entered or left, and the members table stays as it is (no copy of it)
    for name in (WORK, f"{WORK}_log", *(c for c, _ in currents)):
        adapter.drop_table(name)
    out: list[Refreshed] = []
    if todo:
        m = adapter.table(MEMBERS)
        m = m.filter(m.segment.isin([s.name for s in todo]))
        sizes = {r["segment"]: int(r["n"]) for r in adapter.to_arrow(
            m.group_by("segment").agg(n=m.count())).to_pylist()}
        rows = []
        for seg in todo:
            if seg.name in skipped:
                version = int((store.get_state(VERSION_SCOPE, seg.name) or {}).get("version", 0))
                out.append(Refreshed(seg.name, sizes.get(seg.name, 0), 0, 0, version, skipped[seg.name],
                                     seg.name in failed))
                continue
            r = Refreshed(seg.name, sizes.get(seg.name, 0), changes.get((seg.name, "entered"), 0),
                          changes.get((seg.name, "exited"), 0), versions[seg.name])
            out.append(r)
            rows.append({"segment": r.segment, "refreshed_at": now, "size": r.size, "entered": r.entered,
                         "exited": r.exited, "version": r.version})
        if rows:
            adapter.append(SIZES, pa.Table.from_pylist(rows, schema=SIZES_SCHEMA))
    return out


def _compile_all(ctx: Context, segments: list[SegmentConfig], skipped: dict[str, str]) -> list[Compiled]:
    """The segments of one dataset compiled together; one that cannot be compiled (e.g. a
    predictive score column missing this run) is left out, keeps its members, and says why."""
    try:
        return compile_segments(ctx, segments)
    except ConfigError:
        pass
    good = []
    for seg in segments:
        try:
            compile_segment(ctx, seg)
            good.append(seg)
        except ConfigError as exc:
            skipped[seg.name] = "; ".join(exc.problems)
    return compile_segments(ctx, good)


def _version_of(segment: ibis.Value, names: list[str], versions: dict[str, int]) -> ibis.Value:
    return ibis.cases(*[(segment == n, versions[n]) for n in names], else_=0).cast(dt.int64)


def _keep_members(adapter, current: ibis.Table, names: list[str], members: ibis.Table, at: ibis.Value,
                  versions: dict[str, int]) -> None:
    """Append the members now of ``names`` to the new members, with the entry time and version of
    those who were members already."""
    old = members.filter(members.segment.isin(names))
    kept = current.left_join(old, (current._tessera_seg == old.segment) & (current._tessera_id == old[TID]))
    adapter.append_query(WORK, temp=True, expr=_conform(kept.select(
        segment=kept._tessera_seg, **{TID: kept._tessera_id}, entered_at=ibis.coalesce(kept.entered_at, at),
        version=ibis.coalesce(kept.version, _version_of(kept._tessera_seg, names, versions))), MEMBERS_SCHEMA))


def _evaluate(adapter, compiled: list[Compiled], members: ibis.Table, at: ibis.Value, versions: dict[str, int],
              current_table: str) -> None:
    """One pass over the dataset for all its segments, then their members now and their log.

    A work table holds each record's id, whether it is a member of each segment and each
    top-level condition of each (the reason of an exit); the members now (``current_table``,
    segment and id), the entries and the exits of every segment then come from it."""
    t = compiled[0].table
    flags: dict[str, ibis.Value] = {"_tessera_id": t[TID].cast("string")}
    for k, c in enumerate(compiled):
        flags[f"_tessera_in{k}"] = c.where
        if c.segment.match == "all":
            flags.update({f"_tessera_c{k}_{i}": cond for i, cond in enumerate(c.conditions)})
    evaluated = adapter.create_table(f"{WORK}_eval", t.select(**flags), temp=True)
    # segment, record: the members now, in long form
    parts = [evaluated.filter(evaluated[f"_tessera_in{k}"]).select(
        _tessera_seg=ibis.literal(c.segment.name, dt.string), _tessera_id=evaluated._tessera_id)
        for k, c in enumerate(compiled)]
    current = adapter.create_table(current_table, parts[0].union(*parts[1:], distinct=False) if parts[1:]
                                   else parts[0], temp=True)
    names = [c.segment.name for c in compiled]

    def version_of(segment: ibis.Value) -> ibis.Value:
        return _version_of(segment, names, versions)

    old = members.filter(members.segment.isin(names))
    same = (current._tessera_seg == old.segment) & (current._tessera_id == old[TID])
    entered = current.anti_join(old, same)
    entries = _conform(entered.select(
        segment=entered._tessera_seg, **{TID: entered._tessera_id}, change=ibis.literal("entered", dt.string),
        entered_at=at, exited_at=ibis.null(dt.timestamp),
        version=version_of(entered._tessera_seg), exit_condition=ibis.null(dt.string)), LOG_SCHEMA)
    exited = old.anti_join(current, (old.segment == current._tessera_seg) & (old[TID] == current._tessera_id))
    why = exited.left_join(evaluated, exited[TID] == evaluated._tessera_id)
    branches = [(why._tessera_id.isnull(), LEFT_DATASET)]
    otherwise = []
    for k, c in enumerate(compiled):
        mine = why.segment == c.segment.name
        if c.segment.match == "all":
            branches += [(mine & ~why[f"_tessera_c{k}_{i}"], label) for i, label in enumerate(c.labels)]
            otherwise.append((mine, "the definition changed"))
        else:
            otherwise.append((mine, "none of the conditions holds"))
    exits = _conform(why.select(
        segment=why.segment, **{TID: why[TID]}, change=ibis.literal("exited", dt.string),
        entered_at=why.entered_at, exited_at=at,
        version=version_of(why.segment),
        exit_condition=ibis.cases(*branches, *otherwise, else_="the definition changed")), LOG_SCHEMA)
    adapter.append_query(f"{WORK}_log", entries.union(exits, distinct=False), temp=True)
    adapter.drop_table(f"{WORK}_eval")


def _failure(ctx: Context, seg: SegmentConfig, exc: BaseException) -> str:
    """Why the engine could not compute ``seg``, naming its failing SQL condition when one is."""
    return explain_failure(ctx, seg, exc) + "; it keeps its members"


def event_segments(config: WorkspaceConfig) -> list[str]:
    """The segments with a behaviour condition on an events dataset (fed by the collection API)."""
    from tessera.segments.related import behaviour_datasets, is_events_dataset

    return [s.name for s in config.segments
            if any(is_events_dataset(config, d) for d in behaviour_datasets(config, s))]
