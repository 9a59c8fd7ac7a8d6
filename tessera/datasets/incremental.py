"""Incremental identity resolution: after new or changed records, only the unified records they
touch are resolved and merged again.

The unified records of a dataset are the connected components of its identity graph. New or
changed records (and records gone) can only change the components that hold one of their key
values, now or before, and the components those records belonged to. Every other component
keeps its records, its ``tessera_id`` and its merged row, whatever a full rebuild would find:

1. *touched records*: the records that are new, changed (read from another batch) or gone;
2. *touched values*: their identity key values, now and in the last run;
3. the *affected set*: the records that carry a touched value now, the touched records, and
   every record of the unified records any of them belonged to;
4. values the guards refused in the last run may have records in several unified records, and a
   guard judges a value on all of its records: the set grows by the records of such values (and
   their unified records) until it holds them all;
5. the affected set is resolved on its own (values shared beyond the threshold are counted over
   all records), and its unified records are merged again; the other unified records, their
   lineage and the values their guards refused are taken as they were.

A component is closed: a value links only records that carry it, and all of them are in the
affected set when one is. The ids of new components come from their first record, the others
keep the id most of their records had: the same result as a full rebuild of the same data
(``tests/test_incremental.py`` compares them).
"""

from __future__ import annotations

from dataclasses import dataclass

import ibis

from tessera.engine.base import EngineAdapter
from tessera.identity.resolve import IdentityKey, key_values
from tessera.sources.staging import latest_of

TID = "tessera_id"
REC = "_tessera_record"
# metadata store state: what the last publication built per dataset, and under which configuration
BUILT_STATE = ("pipeline_inputs", "built")


def kept_unified(store) -> dict[str, str]:
    """Per deduplicated dataset, the unified table (before enrichment) the last run built and the
    next one starts from: published as the dataset itself, or kept beside the enriched table. What
    removes a customer's rows from the published tables removes them there too (an erase)."""
    built = store.get_state(*BUILT_STATE) or {}
    return {name: t["data"] for name, t in built.get("datasets", {}).items()}


@dataclass
class Previous:
    """What the last run built for a dataset: its lineage (records), unified table before
    enrichment, and shared values."""

    records: str
    data: str
    shared: str | None
    stages: dict[str, dict[int, str]] | None = None  # per source: batch id -> staged table it read


@dataclass
class Affected:
    records: ibis.Table  # _tessera_record of the affected set (materialized)
    old_ids: ibis.Table  # tessera_id of the previous unified records it covers (materialized)
    count: int  # records of the affected set
    total: int  # records now
    current: "Current"  # this run's records
    rows: ibis.Table  # this run's rows of the affected set, numbered in _idx (materialized)
    lineage: ibis.Table  # _tessera_record, tessera_id of the last lineage's records of the set (materialized)


@dataclass
class Changed:
    """The records new or changed when they are those of the batches the last run did not read
    (see :func:`changed_by_batches`)."""

    records: ibis.Table  # their _tessera_record (materialized)
    sources: dict[str, ibis.Table]  # per source with new batches: its rows in them (latest version of each)
    before: ibis.Table  # the last lineage's _tessera_record, tessera_id and key columns of those records
    known: int  # how many (records changed, not new)
    lineage: int  # records of the last lineage


@dataclass
class Current:
    """This run's records without a copy of them all: the rows of the last lineage (``previous``,
    with the mapped columns) for the records not ``touched``, and the new versions (``fresh``).
    Lookups read each part on its own, so that a lookup in the lineage is not preceded by a pass
    over all of it."""

    previous: ibis.Table
    touched: ibis.Table
    fresh: ibis.Table


def carriers(current: ibis.Table, values: ibis.Table, keys: list[IdentityKey],
             levels: list[int] | None = None, ids: bool = False) -> ibis.Table:
    """``_tessera_record``, ``level``, ``value`` of the records of ``current`` that carry one of ``values``
    (``level``, ``value``): equality joins on the key columns, no check of the values run again.
    ``levels``: the only key levels ``values`` holds, when known (the others are not read).
    ``ids``: their ``tessera_id`` alone (``current`` is a lineage)."""
    parts = []
    for i, k in enumerate(keys):
        if levels is not None and i not in levels:
            continue
        wanted = values.filter(values.level == i).select(_v="value").distinct()
        text = current[k.column].cast("string")
        hit = current.semi_join(wanted, text == wanted._v)
        parts.append(hit.select(TID) if ids else
                     hit.select(REC, level=ibis.literal(i, "int8"), value=hit[k.column].cast("string")))
    out = parts[0]
    for p in parts[1:]:
        out = out.union(p, distinct=False)
    return out


def changed_by_batches(adapter: EngineAdapter, previous: ibis.Table, before: dict[str, dict[int, str]],
                       now: dict[str, dict[int, str]], rows: int, tag: str,
                       keys: list[IdentityKey]) -> Changed | None:
    """The records read from batches the last run did not read, when that is all that changed: every
    batch it read (per source: batch id -> staged table) is read again, the new batches come after
    them, and the records now (``rows``) are those of ``previous`` plus the new ones (none gone). A
    record's version is the one of the latest batch that has it, so the others kept theirs, and the
    new batches hold the new versions whole (read alone, not through the source's view of every
    batch). None when that does not hold (the caller compares every record)."""
    parts, sources = [], {}
    for source, old in before.items():
        mine = now.get(source)
        if mine is None or any(mine.get(b) != name for b, name in old.items()):
            return None
        fresh = [name for b, name in sorted(mine.items()) if b not in old]
        if fresh and old and min(b for b in mine if b not in old) < max(old):
            return None
        parts += [adapter.table(name).select(REC) for name in fresh]
        if fresh:
            sources[source] = latest_of([adapter.table(name) for name in fresh])
    if not parts:
        return None
    union = parts[0]
    for p in parts[1:]:
        union = union.union(p, distinct=False)
    changed = adapter.create_table(f"{tag}changed", union.distinct(), temp=True)
    # (their last versions: read once here, for the count and for the values they carried)
    last = adapter.create_table(f"{tag}touched_before", previous.semi_join(changed, REC).select(
        REC, TID, *dict.fromkeys(k.column for k in keys)), temp=True)
    known, lineage = adapter.count(last), adapter.count(previous)
    if rows != lineage + adapter.count(changed) - known:
        return None  # records gone (or back): compare them all
    return Changed(changed, sources, last, known, lineage)


def levels_of(adapter: EngineAdapter, values: ibis.Table) -> list[int]:
    """The key levels ``values`` (``level``, ``value``, materialized, small) holds."""
    return sorted(adapter.to_arrow(values.select("level").distinct()).column("level").to_pylist())


def affected(adapter: EngineAdapter, mapped: ibis.Table, previous: ibis.Table, keys: list[IdentityKey],
             blocked: list[str], tag: str, refused: ibis.Table | None = None, rounds: int = 8,
             changed: Changed | None = None, fresh_from: ibis.Table | None = None) -> Affected | None:
    """The affected set of ``mapped`` (this run's records, as a query) against ``previous`` (the last
    lineage, whose columns are ``mapped``'s and ``tessera_id``).

    Only the records that are new or changed are read from ``mapped``: the others are the rows of
    ``previous`` (the same batch, the same configuration), so no copy of every record is made.

    ``refused`` (``level``, ``value``): the values the guards refused in the last run. Their records
    may lie in several unified records, and a guard judges a value on all its records: the set grows
    by the records of such values (and their unified records) until it holds them all, or None after
    ``rounds`` rounds (the caller builds the dataset whole).

    ``changed``: the records new or changed when known already, none gone (see
    :func:`changed_by_batches`); else every record of ``mapped`` is compared with ``previous``.
    ``fresh_from``: their mapped rows (from the new batches alone).

    The last lineage is read in proportion to the change but for a few passes: the carriers of the
    touched values, the unified records of those, and their rows (read once: the records of the
    set, its rows and its last ids all come from them)."""
    if changed is not None:
        touched, last, known, lineage = changed.records, changed.before, changed.known, changed.lineage
        fresh = adapter.create_table(f"{tag}fresh", fresh_from, temp=True)
    else:
        now = mapped.select(REC, "_tessera_batch")
        before = previous.select(REC, "_tessera_batch")
        # New or read from another batch (an update), and gone.
        new = adapter.create_table(f"{tag}changed", now.anti_join(before, [REC, "_tessera_batch"]).select(REC),
                                   temp=True)
        gone = before.anti_join(now, REC).select(REC)
        touched = adapter.create_table(f"{tag}touched", new.union(gone, distinct=False), temp=True)
        last = adapter.create_table(f"{tag}touched_before", previous.semi_join(touched, REC).select(
            REC, TID, *dict.fromkeys(k.column for k in keys)), temp=True)
        known, lineage = adapter.count(last), adapter.count(previous)
        fresh = adapter.create_table(f"{tag}fresh", mapped.semi_join(new, REC), temp=True)
    columns = mapped.columns
    current = Current(previous.select(*columns), touched, fresh)

    def values(rows: ibis.Table) -> ibis.Table:
        return key_values(rows.mutate(_idx=rows[REC]), keys, blocked).select("level", "value")

    # (materialized: each lookup of carriers reads them once per key; the key columns of both
    # versions checked in one expression, compiled once)
    key_columns = [REC, *dict.fromkeys(k.column for k in keys)]
    touched_values = adapter.create_table(f"{tag}touched_values", values(fresh.select(*key_columns).union(
        last.select(*key_columns), distinct=False)).distinct(), temp=True)
    # The unified records of the records that carry a touched value and of the touched records.
    # (A new version carrying one is touched itself: only the last lineage is looked up.)
    old_ids = adapter.create_table(f"{tag}affected_ids", carriers(previous, touched_values, keys, ids=True).union(
        last.select(TID), distinct=False).distinct(), temp=True)
    for i in range(rounds):
        # Every record of the set but the new ones is a record of these unified records, the new
        # ones are touched.
        old_rows = adapter.create_table(f"{tag}affected_last", previous.semi_join(old_ids, TID), temp=True)
        records = adapter.create_table(f"{tag}affected_{i}", old_rows.select(REC).union(
            touched, distinct=False).distinct(), temp=True)
        # (numbered 0..n-1 in ``_idx``, as the resolution reads them)
        rows = adapter.create_table(f"{tag}affected_rows", adapter.with_row_index(
            old_rows.select(*columns).anti_join(touched, REC).union(fresh, distinct=False), "_idx"), temp=True)
        if refused is None:
            break
        held = adapter.create_table(f"{tag}held", values(rows).semi_join(refused, ["level", "value"]), temp=True)
        levels = levels_of(adapter, held)
        if not levels:
            break
        # (the records outside the set are in the last lineage: the new versions are touched)
        more = carriers(previous, held, keys, levels, ids=True).anti_join(old_ids, TID)
        if adapter.count(more) == 0:
            break
        old_ids = adapter.create_table(f"{tag}affected_ids_{i + 1}", old_ids.union(more, distinct=False).distinct(),
                                       temp=True)
    else:
        return None
    total = lineage - known + adapter.count(fresh)
    return Affected(records, old_ids, adapter.count(rows), total, current, rows, old_rows.select(REC, TID))


def all_key_values(current: ibis.Table, keys: list[IdentityKey], blocked: list[str]) -> ibis.Table:
    """The key values (``idx`` = the record id, ``level``, ``value``) of every record of ``current``."""
    return key_values(current.mutate(_idx=current[REC]), keys, blocked)
