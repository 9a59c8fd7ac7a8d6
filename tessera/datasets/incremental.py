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
4. the affected set is resolved on its own (values shared beyond the threshold are counted over
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

TID = "tessera_id"
REC = "_tessera_record"


@dataclass
class Previous:
    """What the last run built for a dataset: its lineage (records), unified table before
    enrichment, and shared values."""

    records: str
    data: str
    shared: str | None


@dataclass
class Affected:
    records: ibis.Table  # _tessera_record of the affected set (materialized)
    old_ids: ibis.Table  # tessera_id of the previous unified records it covers (materialized)
    count: int  # records of the affected set
    total: int  # records now


def affected(adapter: EngineAdapter, current: ibis.Table, previous: ibis.Table, keys: list[IdentityKey],
             blocked: list[str], tag: str) -> Affected:
    """The affected set of ``current`` (this run's records) against ``previous`` (the last lineage)."""
    now = current.select(REC, "_tessera_batch")
    before = previous.select(REC, "_tessera_batch")
    # New or read from another batch (an update), and gone.
    changed = now.anti_join(before, [REC, "_tessera_batch"]).select(REC)
    gone = before.anti_join(now, REC).select(REC)
    touched = adapter.create_table(f"{tag}touched", changed.union(gone, distinct=False), temp=True)

    def values(rows: ibis.Table) -> ibis.Table:
        return key_values(rows.mutate(_idx=rows[REC]), keys, blocked)

    kv_now = values(current)
    touched_values = values(current.semi_join(touched, REC)).union(
        values(previous.semi_join(touched, REC)), distinct=False).select("level", "value").distinct()
    carriers = kv_now.semi_join(touched_values, ["level", "value"]).select(**{REC: "idx"})
    seeds = carriers.union(touched, distinct=False)
    old_ids = adapter.create_table(
        f"{tag}affected_ids", previous.semi_join(seeds, REC).select(TID).distinct(), temp=True)
    members = previous.semi_join(old_ids, TID).select(REC)
    records = adapter.create_table(f"{tag}affected", seeds.union(members, distinct=False).distinct(), temp=True)
    return Affected(records, old_ids, adapter.count(current.semi_join(records, REC)), adapter.count(current))


def all_key_values(current: ibis.Table, keys: list[IdentityKey], blocked: list[str]) -> ibis.Table:
    """The key values of every record (to count values shared beyond the threshold over all records)."""
    return key_values(current.mutate(_idx=current[REC]), keys, blocked)
