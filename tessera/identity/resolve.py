"""Identity resolution: from staged records to unified ids.

1. Identity key values are taken from the normalized columns; blocked values, invalid emails
   and values shared by more records than the dataset's threshold are set aside (and reported).
2. The engine numbers records and values densely; the record-value edges are clustered into
   connected components (:mod:`tessera.identity.graph`), by key priority when keys are limited.
3. Each component gets a stable ``tessera_id``: the id its records had in the last published
   lineage when there is one (the largest share wins when ids split or merge), otherwise a new
   id derived from its first record.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import ibis
import ibis.expr.datatypes as dt
import numpy as np
import pyarrow as pa

from tessera.config.models import DEFAULT_BLOCKED  # noqa: F401 - re-exported
from tessera.engine.base import EngineAdapter
from tessera.identity.graph import Edges, cluster
from tessera.normalize.rules import email_is_valid

TID = "tessera_id"



@dataclass
class IdentityKey:
    column: str
    semantic: str | None
    limit: int | None


@dataclass
class Resolution:
    lineage: ibis.Table  # _idx, tessera_id, _size (records of its unified record)
    shared: pa.Table  # key, value, records
    counts: dict = field(default_factory=dict)


def new_id(record: ibis.Value, generation: int) -> ibis.Value:
    """A new unified id: deterministic on every engine (md5 of the first record and generation)."""
    return ibis.literal("T").concat(record.concat(f"#{generation}").hexdigest("md5").substr(0, 15))


def key_values(rows: ibis.Table, keys: list[IdentityKey], blocked: list[str]) -> ibis.Table:
    """One row per (record, key, value) usable for matching."""
    blocked_low = sorted({b.strip().lower() for b in [*DEFAULT_BLOCKED, *blocked]})
    parts = []
    for level, key in enumerate(keys):
        # Key columns were trimmed when the dataset was staged (once, not in every test below).
        v = rows[key.column].cast("string")
        ok = v.notnull() & (v != "") & ~v.lower().isin(blocked_low)
        if key.semantic == "Email":
            ok = ok & email_is_valid(v)
        if key.semantic == "Phone":
            # a phone made of one repeated digit is a placeholder, not a customer's number
            ok = ok & ~v.re_search(r"^\+?(0+|1+|2+|3+|4+|5+|6+|7+|8+|9+)$")
        parts.append(rows.filter(ok).select(idx=rows._idx, level=ibis.literal(level, dt.int8), value=v))
    out = parts[0]
    for p in parts[1:]:
        out = out.union(p, distinct=False)
    return out


def resolve(adapter: EngineAdapter, staged: ibis.Table, keys: list[IdentityKey], *, blocked: list[str],
            threshold: int | None, previous: ibis.Table | None, generation: int, tag: str) -> Resolution:
    """Cluster the staged records of a dataset and give each cluster its unified id.

    Args:
        adapter: the engine.
        staged: one row per source record, with ``_tessera_record``, ``_idx`` (0..n-1) and the key columns.
        keys: identity keys in priority order.
        blocked: values never used to match (besides the defaults).
        threshold: a value carried by more records than this is shared and not used (None: no limit).
        previous: the last published lineage (``_tessera_record``, ``tessera_id``), if any.
        generation: how many times the dataset was published before (salts new ids).
        tag: prefix of the run's work tables.

    Returns:
        The lineage (``_idx``, ``tessera_id``), the shared values and the counts.
    """
    n_records = adapter.count(staged)
    kv = adapter.create_table(f"{tag}keys", key_values(staged, keys, blocked), temp=True)
    per_value = kv.group_by(["level", "value"]).agg(records=kv.count())
    if threshold is not None:
        shared_expr = per_value.filter(per_value.records > threshold)
    else:
        shared_expr = per_value.filter(ibis.literal(False))
    shared = adapter.to_arrow(shared_expr.order_by([ibis.desc("records"), "level", "value"]))
    if shared.num_rows:
        kv = kv.anti_join(shared_expr, ["level", "value"])
    level_names = pa.array([keys[i].column for i in shared.column("level").to_pylist()], pa.string())
    shared = pa.table({"key": level_names, "value": shared.column("value"),
                       "records": shared.column("records").cast(pa.int64())})

    # Values are numbered in the engine (in no particular order: only records' ids name clusters).
    values = adapter.create_table(
        f"{tag}values", adapter.with_row_index(kv.select("level", "value").distinct(), "vidx"), temp=True
    )
    arrow = adapter.to_arrow(kv.join(values, ["level", "value"]).select("idx", "vidx", "level"))
    record = arrow.column("idx").to_numpy().astype(np.int64)
    value = arrow.column("vidx").to_numpy().astype(np.int64)
    n_values = int(value.max()) + 1 if len(value) else 0
    limits = {i: k.limit for i, k in enumerate(keys) if k.limit}
    labels, refused = cluster(
        Edges(record, value, arrow.column("level").to_numpy().astype(np.int8), n_records, n_values), limits
    )
    del arrow, record, value

    comp = adapter.create_table(
        f"{tag}components",
        pa.table({"_idx": pa.array(np.arange(n_records, dtype=np.int64)), "_comp": pa.array(labels),
                  "_size": pa.array(np.bincount(labels)[labels].astype(np.int64))}),
        temp=True,
    )
    members = staged.select("_idx", "_tessera_record").join(comp, "_idx")
    # The first record id (in text order) names a new cluster: the same on every engine.
    reps = members.group_by("_comp").agg(_rep_record=members._tessera_record.min())
    if previous is not None:
        cand = members.join(previous.select("_tessera_record", old_id=previous[TID]), "_tessera_record")
        cand = cand.group_by(["_comp", "old_id"]).agg(n=ibis._.count())
        by_old = ibis.window(group_by="old_id", order_by=[ibis.desc("n"), "_comp"])
        won = cand.mutate(k=ibis.row_number().over(by_old)).filter(ibis._.k == 0)
        by_comp = ibis.window(group_by="_comp", order_by=[ibis.desc("n"), "old_id"])
        kept = won.mutate(k=ibis.row_number().over(by_comp)).filter(ibis._.k == 0).select("_comp", "old_id")
        reps = reps.left_join(kept, "_comp").drop("_comp_right")
        tid = reps.old_id.coalesce(new_id(reps._rep_record, generation))
    else:
        tid = new_id(reps._rep_record, generation)
    ids = adapter.create_table(f"{tag}ids", reps.select("_comp", **{TID: tid}), temp=True)
    lineage = comp.join(ids, "_comp").select("_idx", TID, "_size")
    n_unified = int(len(np.unique(labels)))
    counts = {
        "records": n_records,
        "unified": n_unified,
        "duplicates_merged": n_records - n_unified,
        "shared_values": shared.num_rows,
        "refused_by_limits": refused,
    }
    return Resolution(lineage=lineage, shared=shared, counts=counts)
