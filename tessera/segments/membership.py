"""Segment membership: recomputed in the warehouse, with an append-only log of entries and exits.

Three warehouse tables, all written set-based (``INSERT ... SELECT`` or one ``CREATE ... AS``):

``_tessera_segment_members``
    the current members: ``segment``, ``tessera_id``, ``entered_at``, ``version`` (the definition
    version they entered under). A refresh deletes its exits and inserts its entries (or rewrites
    the table in one statement when most of it changes).
``_tessera_segment_log``
    one row per entry or exit, never changed: ``segment``, ``tessera_id``, ``change`` (``entered`` or
    ``exited``), ``entered_at``, ``exited_at`` (NULL for an entry), ``version``, ``exit_condition``
    (for an exit: the first top-level condition that stopped holding, or why the record left).
``_tessera_segment_sizes``
    one row per segment and refresh: ``segment``, ``refreshed_at``, ``size``, ``entered``, ``exited``,
    ``version``: the size of a segment over time.

A refresh compares the records for which the definition holds now with the current members:
records found only now entered, records found only before exited. All the segments of a dataset
are compared in one pass (see :func:`refresh`). The definition version is a counter kept in the
metadata store, increased when the definition changes.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

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
MASK_BITS = 62  # the segments compared in one integer mask of a record (a signed 64-bit integer)

MEMBERS_SCHEMA = ibis.schema({"segment": dt.string, TID: dt.string, "entered_at": dt.timestamp,
                              "version": dt.int64})
LOG_SCHEMA = ibis.schema({"segment": dt.string, TID: dt.string, "change": dt.string, "entered_at": dt.timestamp,
                          "exited_at": dt.timestamp, "version": dt.int64, "exit_condition": dt.string})
SIZES_SCHEMA = pa.schema([("segment", pa.string()), ("refreshed_at", pa.timestamp("us")), ("size", pa.int64()),
                          ("entered", pa.int64()), ("exited", pa.int64()), ("version", pa.int64())])

# What the text columns hold (the engine picks their compression from it: see create_table_hinted).
HINTS = {"segment": "few", TID: "distinct", "change": "few", "exit_condition": "few"}

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
        adapter.create_table_hinted(MEMBERS, _empty(MEMBERS_SCHEMA), HINTS)
    if not adapter.exists(LOG):
        adapter.create_table_hinted(LOG, _empty(LOG_SCHEMA), HINTS)


def refresh(ctx: Context, store, names: list[str] | None = None, now: datetime | None = None) -> list[Refreshed]:
    """Recompute the membership of the segments (all, or ``names``) and log who entered and left.

    Set-based and single-pass: per dataset, one query evaluates every segment's conditions for
    each record (the behaviour conditions of a related dataset are one grouped aggregate), one
    join of each record's bit mask of segments now with its mask before (the current members)
    finds every entry and exit of every segment, then one append to the log; the members table changes by the entries and exits only
    (it is rewritten when most of it changes, e.g. at the first refresh).

    Args:
        ctx: the compilation context (published tables, the date windows end at).
        store: the metadata store (definition versions).
        names: the segments to refresh (default: all).
        now: the time of the entries and exits (default: now, UTC).
    """
    adapter, config = ctx.adapter, ctx.config
    todo = [s for s in config.segments if names is None or s.name in names]
    ensure_tables(adapter)
    if now is None:
        now = _after_last(adapter, datetime.now(UTC).replace(tzinfo=None, microsecond=0))
    else:
        now = now.astimezone(UTC).replace(tzinfo=None, microsecond=0)
    members = adapter.table(MEMBERS)
    configured = [s.name for s in config.segments]
    at = ibis.literal(now, dt.timestamp)
    work_log = f"{WORK}_log"
    adapter.drop_table(work_log)
    # the size of each segment now (one pass over the members: the sizes after the refresh
    # follow from its entries and exits, and segments no longer configured are found)
    before = {r["segment"]: int(r["n"]) for r in adapter.to_arrow(
        members.group_by("segment").agg(n=members.count())).to_pylist()}
    fresh = {s.name for s in todo if not before.get(s.name)}  # no members: only entries
    versions: dict[str, int] = {}
    skipped: dict[str, str] = {}
    failed: set[str] = set()
    by_dataset: dict[str, list[SegmentConfig]] = {}
    for seg in todo:
        by_dataset.setdefault(seg.dataset, []).append(seg)
    evals: list[str] = []  # the work tables of each evaluation, dropped at the end
    entries: list[ibis.Table] = []  # the entries of the segments without members yet (read from those)
    changes: dict[tuple[str, str], int] = {}  # (segment, entered or exited) -> how many
    try:
        for segments in by_dataset.values():
            compiled = _compile_all(ctx, segments, skipped)
            if not compiled:
                continue
            for c in compiled:
                versions[c.segment.name] = definition_version(store, c.segment)
            try:
                entries += _evaluate(adapter, compiled, members, at, versions, work_log, fresh, evals, changes, set(before))
                continue
            except Exception as exc:
                if isinstance(exc, TesseraError) and not isinstance(exc, EngineError):
                    raise
            # A condition the engine cannot compute on these rows (a CAST of a text...): each segment
            # on its own, so that the one that fails keeps its members and says which condition failed.
            for c in compiled:
                changes.pop((c.segment.name, "entered"), None)  # counted again on its own
            for c in compiled:
                try:
                    entries += _evaluate(adapter, compile_segments(ctx, [c.segment]), members, at, versions,
                                         work_log, fresh, evals, changes, set(before))
                except Exception as exc:
                    if isinstance(exc, TesseraError) and not isinstance(exc, EngineError):
                        raise
                    skipped[c.segment.name] = _failure(ctx, c.segment, exc)
                    failed.add(c.segment.name)
        logs = list(entries)
        if adapter.exists(work_log):
            log_t = adapter.table(work_log)
            changes.update({(r["segment"], r["change"]): int(r["n"]) for r in adapter.to_arrow(
                log_t.group_by(["segment", "change"]).agg(n=log_t.count())).to_pylist()})
            logs.insert(0, log_t)
        gone = [name for name in before if name not in configured]
        if any(changes.values()) or gone:
            # The log first, as it was computed from the members.
            for log_t in logs:
                adapter.append_query(LOG, log_t)
            entered = sum(n for (_s, change), n in changes.items() if change == "entered")
            _apply(adapter, members, logs, entered, sum(changes.values()) - entered, sum(before.values()), gone)
        # else: nobody entered or left, and the members table stays as it is
    finally:
        for name in (work_log, *evals):
            adapter.drop_table(name)
    out: list[Refreshed] = []
    if todo:
        sizes = {name: n + changes.get((name, "entered"), 0) - changes.get((name, "exited"), 0)
                 for name, n in before.items()}
        sizes.update({name: changes.get((name, "entered"), 0) for (name, _c) in changes if name not in before})
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


def _after_last(adapter, now: datetime) -> datetime:
    """``now``, or the second after the last refresh's time when that is not earlier: times are
    kept to the second, and each refresh has its own, after the last one's, in the sizes' history
    and the entries and exits (an exit after the entry it closes), two quick runs included."""
    if not adapter.exists(SIZES):  # the first refresh
        return now
    sizes = adapter.table(SIZES)
    last = adapter.to_arrow(sizes.aggregate(last=sizes.refreshed_at.max())).column("last")[0].as_py()
    if last is None:
        return now
    if last.tzinfo is not None:
        last = last.astimezone(UTC).replace(tzinfo=None)
    return max(now, last + timedelta(seconds=1))


def _apply(adapter, members: ibis.Table, logs: list[ibis.Table], entered: int, exited: int, total: int,
           gone: list[str]) -> None:
    """Change the members table (``total`` rows) by the entries and exits of ``logs`` and drop the
    members of the segments no longer configured (``gone``): in place when few rows change (the
    entry time and version of those who stay, and the table's index, are kept as they are), else
    rewritten in one statement (at the first refresh everyone enters: a rewrite costs less than
    an insert into an indexed table)."""
    entries = [_conform(t.filter(t.change == "entered"), MEMBERS_SCHEMA) for t in logs] if entered else []
    exits = [t.filter(t.change == "exited").select("segment", TID) for t in logs] if exited else []
    exits = exits[0].union(*exits[1:], distinct=False) if exits[1:] else (exits[0] if exits else None)
    if (entered + exited) * 4 > total:
        kept = members.filter(~members.segment.isin(gone)) if gone else members
        if exits is not None:
            kept = kept.anti_join(exits, ["segment", TID])
        kept = _conform(kept, MEMBERS_SCHEMA)
        adapter.create_table_hinted(MEMBERS, kept.union(*entries, distinct=False) if entries else kept, HINTS)
        return
    if exits is not None:
        adapter.delete_matching(MEMBERS, exits, ["segment", TID])
    if gone:
        adapter.delete_matching(MEMBERS, members.filter(members.segment.isin(gone)).select("segment").distinct(),
                                ["segment"])
    for part in entries:
        adapter.append_query(MEMBERS, part)


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


def _evaluate(adapter, compiled: list[Compiled], members: ibis.Table, at: ibis.Value, versions: dict[str, int],
              log_table: str, fresh: set[str], evals: list[str],
              changes: dict[tuple[str, str], int], held: set[str]) -> list[ibis.Table]:
    """One pass over the dataset for all its segments, then all their entries and exits at once.

    A work table holds each record's id and one flag per distinct top-level condition of the
    segments (a condition several segments share is one flag). Each record's segments now (a
    bit mask from the flags) are compared with its current memberships (a bit mask from the
    members table) in one full outer join on the record's id (see :func:`_changed`): found only
    now, it entered; found only before, it left, and the first condition whose flag does not
    hold says why. The entries and exits are appended to
    ``log_table`` (the log's columns), but those of the segments without members (``fresh``),
    which are only entries, are returned as a query of the work table (named in ``evals``): they
    go to the log and the members table without a copy in between."""
    t = compiled[0].table
    columns: dict[str, ibis.Value] = {"_tessera_id": t[TID].cast("string")}
    flag_of: dict = {}  # a condition's expression -> its flag column

    def flag(cond: ibis.Value) -> str:
        key = cond.op()
        if key not in flag_of:
            flag_of[key] = f"_tessera_f{len(flag_of)}"
            columns[flag_of[key]] = cond
        return flag_of[key]

    flags = [[flag(cond) for cond in c.conditions] for c in compiled]
    name = f"{WORK}_eval{len(evals)}"
    evals.append(name)
    evaluated = adapter.create_table(name, t.select(**columns), temp=True)
    return _diff(adapter, compiled, flags, evaluated, members, at, versions, log_table, fresh, evals, changes, held)


def _diff(adapter, compiled: list[Compiled], flags: list[list[str]], evaluated: ibis.Table, members: ibis.Table,
          at: ibis.Value, versions: dict[str, int], log_table: str, fresh: set[str], evals: list[str],
          changes: dict[tuple[str, str], int], held: set[str]) -> list[ibis.Table]:
    """Append the entries and exits of the segments ``compiled`` to ``log_table``. The segments
    without members (``fresh``: new, or empty until now) only have entries, no join for them:
    returned as a query (the log's columns), and counted into ``changes`` (one aggregate)."""

    def holds(k: int) -> ibis.BooleanValue:
        parts = [evaluated[f] for f in flags[k]]
        return _reduce(parts, "and" if compiled[k].segment.match == "all" else "or")

    def members_now(ks: list[int]) -> ibis.Table:
        """_tessera_seg, _tessera_id, _tessera_v (its version): the members now of segments ``ks``,
        in long form. One scan of the evaluation crossed with the segments' numbers, each pair
        kept when that segment's flags hold: the engine writes one stream of rows (a union of a
        filtered scan per segment cost about 60% more CPU to write, at 20 segments)."""
        if len(ks) == 1:
            k = ks[0]
            name = compiled[k].segment.name
            return evaluated.filter(holds(k)).select(_tessera_seg=ibis.literal(name, dt.string),
                                                     _tessera_id=evaluated._tessera_id,
                                                     _tessera_v=ibis.literal(versions[name], dt.int64))
        numbers = ibis.memtable({"_tessera_k": list(range(len(ks)))})
        both = evaluated.cross_join(numbers)
        k = both._tessera_k
        names = [compiled[j].segment.name for j in ks]
        kept = both.filter(ibis.cases(*[(k == i, holds(j)) for i, j in enumerate(ks)], else_=False))
        k = kept._tessera_k
        return kept.select(_tessera_seg=ibis.cases(*[(k == i, n) for i, n in enumerate(names)]).cast(dt.string),
                           _tessera_id=kept._tessera_id,
                           _tessera_v=ibis.cases(*[(k == i, versions[n]) for i, n in enumerate(names)]).cast(dt.int64))

    out = []
    new = [k for k, c in enumerate(compiled) if c.segment.name in fresh]
    if new:
        entered = members_now(new)
        out.append(_conform(entered.select(
            segment=entered._tessera_seg, **{TID: entered._tessera_id}, change=ibis.literal("entered", dt.string),
            entered_at=at, exited_at=ibis.null(dt.timestamp), version=entered._tessera_v,
            exit_condition=ibis.null(dt.string)), LOG_SCHEMA))
        counts = adapter.to_arrow(evaluated.aggregate(**{f"n{k}": evaluated.count(where=holds(k)) for k in new}))
        changes.update({(compiled[k].segment.name, "entered"): int(counts[f"n{k}"][0].as_py() or 0) for k in new})
    known = [k for k, c in enumerate(compiled) if c.segment.name not in fresh]
    if known:
        for i in range(0, len(known), MASK_BITS):
            ks = known[i:i + MASK_BITS]
            name = f"{WORK}_diff{len(evals)}"
            evals.append(name)
            diff = adapter.create_table(name, _changed(compiled, ks, flags, holds, evaluated, members, held), temp=True)
            if adapter.to_arrow(diff.aggregate(n=diff.count()))["n"][0].as_py():
                adapter.append_query(log_table, _changes(compiled, ks, flags, diff, members, at, versions), temp=True)
    return out


def _changed(compiled: list[Compiled], ks: list[int], flags: list[list[str]], holds, evaluated: ibis.Table,
             members: ibis.Table, held: set[str]) -> ibis.Table:
    """The records whose membership of segments ``ks`` (at most ``MASK_BITS``) changed: one row per
    record and changed segment (``_tessera_k``: its place in ``ks``, ``_tessera_s``: its name,
    ``_tessera_in``: whether it entered), with the record's flags (why it left).

    Each record's segments are one integer, bit ``i`` set when it is a member of segment
    ``ks[i]``: the mask now (from the flags of the evaluation) and the mask before (the current
    members grouped by record) are compared in one full outer join on the record's id alone, and
    only the records whose masks differ are expanded into one row per differing bit. The members
    table is read whole when it holds only these segments (``held``: the segments with members)."""
    names = [compiled[k].segment.name for k in ks]
    bits = [ibis.literal(1 << i, dt.int64) for i in range(len(ks))]
    zero = ibis.literal(0, dt.int64)
    old = members.filter(members.segment.isin(names)) if held - set(names) else members
    old = old.select(_tessera_r=old[TID], _tessera_b=ibis.cases(
        *[(old.segment == n, b) for n, b in zip(names, bits)], else_=zero).cast(dt.int64))
    before = old.group_by("_tessera_r").agg(_tessera_mb=old._tessera_b.sum().cast(dt.int64))
    mine = sorted({f for k in ks for f in flags[k]}, key=lambda f: int(f.removeprefix("_tessera_f")))
    now = evaluated.select("_tessera_id", *mine, _tessera_mn=_sum(
        [ibis.cases((holds(k), b), else_=zero) for k, b in zip(ks, bits)]))
    both = now.outer_join(before, now._tessera_id == before._tessera_r)
    changed = both.filter(both._tessera_mn.fill_null(0) != both._tessera_mb.fill_null(0))
    changed = changed.select(
        *mine, _tessera_i=ibis.coalesce(changed._tessera_id, changed._tessera_r),
        _tessera_p=changed._tessera_id.notnull(), _tessera_mn=changed._tessera_mn.fill_null(0),
        _tessera_mb=changed._tessera_mb.fill_null(0))
    numbers = ibis.memtable({"_tessera_k": list(range(len(ks))), "_tessera_bit": [1 << i for i in range(len(ks))]},
                            schema={"_tessera_k": "int64", "_tessera_bit": "int64"})
    per = changed.cross_join(numbers)
    per = per.filter((per._tessera_mn & per._tessera_bit) != (per._tessera_mb & per._tessera_bit))
    k = per._tessera_k
    return per.select(*mine, "_tessera_i", "_tessera_p", "_tessera_k",
                      _tessera_s=ibis.cases(*[(k == i, n) for i, n in enumerate(names)]).cast(dt.string),
                      _tessera_in=(per._tessera_mn & per._tessera_bit) != 0)


def _changes(compiled: list[Compiled], ks: list[int], flags: list[list[str]], per: ibis.Table, members: ibis.Table,
             at: ibis.Value, versions: dict[str, int]) -> ibis.Table:
    """The entries and exits (the log's columns) of segments ``ks`` from their changes ``per``
    (see :func:`_changed`): set now and not before, the record entered; set before and not now, it
    left, and the first condition whose flag does not hold says why. The entry time of those who
    left is read from the members table, for them only."""
    names = [compiled[k].segment.name for k in ks]
    left = members.filter(members.segment.isin(names)).select(_tessera_os="segment", _tessera_or=TID,
                                                               _tessera_at="entered_at")
    why = per.left_join(left, (per._tessera_s == left._tessera_os) & (per._tessera_i == left._tessera_or))
    k = why._tessera_k
    branches = [(why._tessera_in, ibis.null(dt.string)), (~why._tessera_p, LEFT_DATASET)]
    otherwise = []
    for i, j in enumerate(ks):
        c = compiled[j]
        if c.segment.match == "all":
            branches += [((k == i) & ~why[f], label) for f, label in zip(flags[j], c.labels)]
            otherwise.append((k == i, "the definition changed"))
        else:
            otherwise.append((k == i, "none of the conditions holds"))
    if len({versions[n] for n in names}) == 1:
        version = ibis.literal(versions[names[0]], dt.int64)
    else:
        version = ibis.cases(*[(k == i, versions[n]) for i, n in enumerate(names)], else_=0).cast(dt.int64)
    entering = why._tessera_in
    return _conform(why.select(
        segment=why._tessera_s, **{TID: why._tessera_i},
        change=entering.ifelse(ibis.literal("entered", dt.string), ibis.literal("exited", dt.string)),
        entered_at=entering.ifelse(at, why._tessera_at.cast(dt.timestamp)),
        exited_at=entering.ifelse(ibis.null(dt.timestamp), at),
        version=version,
        exit_condition=ibis.cases(*branches, *otherwise, else_="the definition changed")), LOG_SCHEMA)


def _sum(parts: list[ibis.Value]) -> ibis.Value:
    out = parts[0]
    for p in parts[1:]:
        out = out + p
    return out


def _reduce(parts: list[ibis.BooleanValue], how: str) -> ibis.BooleanValue:
    out = parts[0]
    for p in parts[1:]:
        out = (out & p) if how == "and" else (out | p)
    return out


def _failure(ctx: Context, seg: SegmentConfig, exc: BaseException) -> str:
    """Why the engine could not compute ``seg``, naming its failing SQL condition when one is."""
    return explain_failure(ctx, seg, exc) + "; it keeps its members"


def event_segments(config: WorkspaceConfig) -> list[str]:
    """The segments with a behaviour condition on an events dataset (fed by the collection API)."""
    from tessera.segments.related import behaviour_datasets, is_events_dataset

    return [s.name for s in config.segments
            if any(is_events_dataset(config, d) for d in behaviour_datasets(config, s))]
