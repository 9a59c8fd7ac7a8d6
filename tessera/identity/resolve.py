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
from tessera.engine.dialects import Dialect
from tessera.identity.components import engine_components
from tessera.identity.graph import Edges, cluster
from tessera.normalize.rules import email_is_valid

TID = "tessera_id"



# Keys whose values people share (a household landline, an address, a family computer): guarded by default.
SHAREABLE = ("Phone", "Address", "AnonymousId")


@dataclass
class IdentityKey:
    column: str
    semantic: str | None
    limit: int | None
    guarded: bool = False  # a value whose records disagree is not used to merge them
    agreement: list[str] | None = None  # the columns that must agree (None: the default evidence)


@dataclass
class Override:
    """A manual rule of the identity graph: ``merge`` these records, ``split`` them from the others,
    or ``reject`` the match of a pair."""

    kind: str
    records: list[str]


@dataclass
class Resolution:
    lineage: ibis.Table  # _idx, tessera_id, _size (records of its unified record)
    shared: pa.Table  # key, value, records, reason: values not used to merge
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


def _norm(v: ibis.Value, dialect: Dialect) -> ibis.Value:
    return dialect.strip_accents(v.cast("string").strip().lower()).nullif("")


@dataclass
class GuardRule:
    agree: list[str]  # the columns that name a person's part of a shared value
    conflict: list[list[str]]  # an OR of ANDs of columns that differ
    reason: str
    swap: tuple[str, str] | None = None  # (first, last) name columns: swapped names are not a conflict


def guard_rule(key: IdentityKey, evidence: dict[str, str]) -> GuardRule | None:
    """The guard of a guarded key, or None when the dataset has nothing to compare."""
    if key.agreement:
        cols = [c for c in key.agreement if c != key.column]
        return GuardRule(cols, [[c] for c in cols], "records disagree on " + ", ".join(cols))
    first = evidence.get("FirstName")
    if not first:
        return None
    others = [evidence[s] for s in ("Email", "BirthDate") if evidence.get(s) and evidence[s] != key.column]
    rule = [[first, o] for o in others] or [[first]]
    what = " or ".join(["e-mails" if o == evidence.get("Email") else "birth dates" for o in others])
    last = evidence.get("LastName")
    return GuardRule([first], rule, "different first names" + (f" and different {what}" if what else ""),
                     (first, last) if last else None)


def _differ(left: ibis.Table, right: ibis.Table, name: dict[str, str], rule: GuardRule, col: str) -> ibis.Value:
    """Both records have ``col`` and it differs (swapped first and last names do not differ)."""
    a, b = left[name[col]], right[name[col]]
    out = a.notnull() & b.notnull() & (a != b)
    if rule.swap and col == rule.swap[0]:
        first, last = name[rule.swap[0]], name[rule.swap[1]]
        out = out & ((left[first] != right[last]) | (left[last] != right[first])).fill_null(True)
    return out


def guard(adapter: EngineAdapter, staged: ibis.Table, kv: ibis.Table, keys: list[IdentityKey],
          evidence: dict[str, str], tag: str) -> tuple[ibis.Table, pa.Table]:
    """Guard rails on shared values: a value of a guarded key whose records conflict (pairwise, in
    the engine) is split by the person's agreement columns (a household landline becomes one value
    per first name; a record without them keeps the value to itself).

    Returns the new key values and the refused values (level, value, records, reason)."""
    rules = {i: guard_rule(k, evidence) for i, k in enumerate(keys) if k.guarded}
    rules = {i: r for i, r in rules.items() if r}
    empty = pa.table({"level": pa.array([], pa.int8()), "value": pa.array([], pa.string()),
                      "records": pa.array([], pa.int64()), "reason": pa.array([], pa.string())})
    if not rules:
        return kv, empty
    cols = sorted({c for g in rules.values() for c in g.agree + [x for a in g.conflict for x in a]
                   + list(g.swap or ())})
    name = {c: f"_e{i}" for i, c in enumerate(cols)}
    # Only records that share a guarded value with another record can conflict: the evidence is
    # read for them alone (a fifth of a million contacts), not for every record.
    guarded = kv.filter(kv.level.isin(list(rules)))
    shared = guarded.group_by(["level", "value"]).agg(_n=guarded.count())
    carriers = adapter.create_table(f"{tag}carriers", guarded.semi_join(shared.filter(shared._n > 1),
                                                                        ["level", "value"]), temp=True)
    ev = adapter.create_table(f"{tag}evidence", staged.semi_join(carriers, staged._idx == carriers.idx).select(
        _eidx=staged._idx, **{name[c]: _norm(staged[c], adapter.dialect) for c in cols}), temp=True)
    parts = []
    for level, rule in rules.items():
        g = carriers.filter(carriers.level == level).join(ev, carriers.idx == ev._eidx)
        left, right = g.view(), g.view()
        j = left.join(right, [left.value == right.value, left.idx < right.idx])

        conflict = None
        reason = rule.reason
        for conj in rule.conflict:
            term = _differ(left, right, name, rule, conj[0])
            for c in conj[1:]:
                term = term & _differ(left, right, name, rule, c)
            conflict = term if conflict is None else conflict | term
        parts.append(j.filter(conflict).select(level=left.level, value=left.value, reason=ibis.literal(reason))
                     .distinct())
    refused_expr = parts[0]
    for part in parts[1:]:
        refused_expr = refused_expr.union(part, distinct=False)
    refused_t = adapter.create_table(f"{tag}refused", refused_expr, temp=True)
    if adapter.count(refused_t) == 0:
        return kv, empty
    with_counts = kv.join(refused_t, ["level", "value"]).group_by(["level", "value", "reason"]).agg(
        records=ibis._.count())
    refused = adapter.to_arrow(with_counts.select("level", "value", "records", "reason")
                               .order_by([ibis.desc("records"), "level", "value"]))
    # A refused value is one value per person part: the agreement columns joined, or the record alone.
    marked = kv.left_join(refused_t.select("level", "value", _ref=ibis.literal(1)), ["level", "value"])
    # (the records of a refused value all have their evidence; the others keep their values)
    marked = marked.left_join(ev, marked.idx == ev._eidx)
    part_of = None
    for level, rule in rules.items():
        agree = rule.agree
        text = marked[name[agree[0]]]
        for c in agree[1:]:
            text = text.concat("|", marked[name[c]])
        alone = ibis.literal("#").concat(marked.idx.cast("string"))
        part_of = ibis.cases((marked.level == level, text.coalesce(alone)), else_=part_of) \
            if part_of is not None else ibis.cases((marked.level == level, text.coalesce(alone)), else_=alone)
    value = ibis.cases((marked._ref.notnull(), marked.value.concat("|", part_of)), else_=marked.value)
    new_kv = adapter.create_table(f"{tag}keys_guarded", marked.select("idx", "level", value=value), temp=True)
    return new_kv, refused


def _override_indices(adapter: EngineAdapter, staged: ibis.Table,
                      overrides: list[Override]) -> list[tuple[str, np.ndarray]]:
    """The overrides with their records' indexes (records no longer present are left out)."""
    ids = sorted({r for o in overrides for r in o.records})
    if not ids:
        return []
    found = adapter.to_arrow(staged.filter(staged._tessera_record.isin(ids)).select("_tessera_record", "_idx"))
    index = dict(zip(found.column("_tessera_record").to_pylist(), found.column("_idx").to_pylist()))
    out = []
    for o in overrides:
        idx = np.array(sorted({index[r] for r in o.records if r in index}), dtype=np.int64)
        if len(idx):
            out.append((o.kind, idx))
    return out


def _extra_edges(record: np.ndarray, value: np.ndarray, level: np.ndarray, n_records: int, n_values: int,
                 links: np.ndarray, overrides: list[tuple[str, np.ndarray]], link_level: int):
    """The edges with the match links and the manual overrides: a split group's records get their own
    copies of their values (and keep links only among themselves), a merge or a link is one more value
    shared by its records, a rejected pair is not linked."""
    group = np.full(n_records, -1, dtype=np.int64)
    merges, rejected = [], []
    for g, (kind, idx) in enumerate(overrides):
        if kind == "split":
            group[idx] = g
        elif kind == "merge" and len(idx) > 1:
            merges.append(idx)
        elif kind == "reject" and len(idx) == 2:
            rejected.append(int(idx.min()) * n_records + int(idx.max()))
    if len(links):
        keep = group[links[:, 0]] == group[links[:, 1]]
        if rejected:
            code = np.minimum(links[:, 0], links[:, 1]) * n_records + np.maximum(links[:, 0], links[:, 1])
            keep &= ~np.isin(code, np.array(rejected, dtype=np.int64))
        links = links[keep]
    moved = group[record] >= 0
    if moved.any():
        key = group[record[moved]] * max(n_values, 1) + value[moved]
        uniq, inverse = np.unique(key, return_inverse=True)
        value = value.copy()
        value[moved] = n_values + inverse
        n_values += len(uniq)
    new_r, new_v = [record], [value]
    new_l = [level]
    if len(links):
        ids = n_values + np.arange(len(links), dtype=np.int64)
        new_r += [links[:, 0], links[:, 1]]
        new_v += [ids, ids]
        new_l += [np.full(2 * len(links), link_level, dtype=np.int8)]
        n_values += len(links)
    for idx in merges:
        new_r.append(idx)
        new_v.append(np.full(len(idx), n_values, dtype=np.int64))
        new_l.append(np.full(len(idx), link_level, dtype=np.int8))
        n_values += 1
    return np.concatenate(new_r), np.concatenate(new_v), np.concatenate(new_l), n_values


def _drop_work(adapter: EngineAdapter, tag: str) -> None:
    """Drop the key values and the guards' work tables (read no more once the edges are known)."""
    for work in ("keys", "keys_guarded", "carriers", "evidence", "refused", "values"):
        adapter.drop_table(f"{tag}{work}")  # (a table not made is no error)


def _local_components(adapter: EngineAdapter, kv: ibis.Table, keys: list[IdentityKey], n_records: int,
                      links: pa.Table | None, manual: list[tuple[str, np.ndarray]], limits: dict[int, int],
                      tag: str, values: ibis.Table | None) -> tuple[ibis.Table, int, int, np.ndarray]:
    """(components table ``_idx, _comp, _size``, unified records, records split by limits, match
    links) labelled on this machine with SciPy (:mod:`tessera.identity.graph`). ``values``: the
    values numbered (``level``, ``value``, ``vidx``) when already made, else every value of ``kv``."""
    if values is None:
        # Values are numbered in the engine (in no particular order: only records' ids name clusters).
        values = adapter.create_table(
            f"{tag}values", adapter.with_row_index(kv.select("level", "value").distinct(), "vidx"), temp=True
        )
    arrow = adapter.to_arrow(kv.join(values, ["level", "value"]).select("idx", "vidx", "level"))
    # The key values and the guards' work tables are read no more: their memory goes back before
    # the edges are clustered (the peak of a run's memory).
    _drop_work(adapter, tag)
    # (no copy of the columns already of these types: at a million records the edges are the
    # largest arrays of the run)
    record = arrow.column("idx").to_numpy().astype(np.int64, copy=False)
    value = arrow.column("vidx").to_numpy().astype(np.int64, copy=False)
    n_values = int(value.max()) + 1 if len(value) else 0
    level = arrow.column("level").to_numpy().astype(np.int8, copy=False)
    del arrow
    link_pairs = np.zeros((0, 2), dtype=np.int64)
    if links is not None and links.num_rows:
        link_pairs = np.stack([links.column("idx_l").to_numpy().astype(np.int64),
                               links.column("idx_r").to_numpy().astype(np.int64)], axis=1)
    if len(link_pairs) or manual:
        record, value, level, n_values = _extra_edges(record, value, level, n_records, n_values, link_pairs,
                                                      manual, len(keys))
    labels, refused_by_limits = cluster(Edges(record, value, level, n_records, n_values), limits)
    del record, value, level
    pa.default_memory_pool().release_unused()  # the edges' buffers, kept by Arrow's allocator otherwise
    sizes = np.bincount(labels)
    comp = adapter.create_table(
        f"{tag}components",
        pa.table({"_idx": pa.array(np.arange(n_records, dtype=np.int64)), "_comp": pa.array(labels),
                  "_size": pa.array(sizes[labels].astype(np.int64))}),
        temp=True,
    )
    # (the labels counted from their sizes: np.unique hashed a million labels in 1.7 s)
    return comp, int(np.count_nonzero(sizes)), refused_by_limits, link_pairs


def resolve(adapter: EngineAdapter, staged: ibis.Table, keys: list[IdentityKey], *, blocked: list[str],
            threshold: int | None, previous: ibis.Table | None, generation: int, tag: str,
            evidence: dict[str, str] | None = None, links: pa.Table | None = None,
            overrides: list[Override] | None = None, counted: ibis.Table | None = None) -> Resolution:
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
        evidence: semantic field -> column (FirstName, Email, BirthDate) for the guard rails.
        links: record pairs (``idx_l``, ``idx_r``) that probabilistic matching merges.
        overrides: manual merges, splits and rejected pairs, by record id.
        counted: the key values (``level``, ``value``) of all the dataset's records, when ``staged``
            is a part of them (an incremental run): values are counted against ``threshold`` there.

    Returns:
        The lineage (``_idx``, ``tessera_id``), the shared values and the counts.
    """
    n_records = adapter.count(staged)
    kv = adapter.create_table(f"{tag}keys", key_values(staged, keys, blocked), temp=True)
    every = counted if counted is not None else kv
    per_value = every.group_by(["level", "value"]).agg(records=every.count())
    limits = {i: k.limit for i, k in enumerate(keys) if k.limit}
    manual = _override_indices(adapter, staged, overrides or [])
    has_links = links is not None and links.num_rows > 0
    in_engine = adapter.graph_in_engine and not limits and not has_links and not manual
    values = None
    if not in_engine and not limits and counted is None:
        # A value of one record links it to no other: at ten million contacts 18 of the 21 million
        # key values. The values of several records are counted and numbered in one grouping
        # (the one that finds the values shared beyond the threshold), and only they make edges:
        # the edges collected and the graph are those of the values records share. (A key's limit
        # counts the values of a cluster, those of one record too: all of them are numbered then;
        # an incremental run counts the values of every record but numbers those of its few.)
        values = adapter.create_table(
            f"{tag}values", adapter.with_row_index(per_value.filter(per_value.records > 1), "vidx"), temp=True)
        per_value = values
    if threshold is not None:
        shared_expr = per_value.filter(per_value.records > threshold)
    else:
        shared_expr = per_value.filter(ibis.literal(False))
    shared = adapter.to_arrow(shared_expr.order_by([ibis.desc("records"), "level", "value"]))
    if shared.num_rows:
        kv = kv.anti_join(shared_expr, ["level", "value"])
    kv, refused = guard(adapter, staged, kv, keys, evidence or {}, tag)
    reason = f"shared by more than {threshold} records" if threshold is not None else ""
    levels = shared.column("level").to_pylist() + refused.column("level").to_pylist()
    shared = pa.table({
        "key": pa.array([keys[i].column for i in levels], pa.string()),
        "value": pa.concat_arrays([shared.column("value").combine_chunks().cast(pa.string()),
                                   refused.column("value").combine_chunks().cast(pa.string())]),
        "records": pa.concat_arrays([shared.column("records").combine_chunks().cast(pa.int64()),
                                     refused.column("records").combine_chunks().cast(pa.int64())]),
        "reason": pa.array([reason] * shared.num_rows + refused.column("reason").to_pylist(), pa.string()),
    })

    if in_engine:
        # Components by joins in the engine: no edge is collected to the driver.
        comp = engine_components(adapter, staged.select("_idx"), kv, tag)
        n_unified = adapter.count(comp.select("_comp").distinct())
        refused_by_limits, link_pairs = 0, np.zeros((0, 2), dtype=np.int64)
    else:
        comp, n_unified, refused_by_limits, link_pairs = _local_components(
            adapter, kv, keys, n_records, links, manual, limits, tag, values)
    _drop_work(adapter, tag)
    members = staged.select("_idx", "_tessera_record").join(comp, "_idx")
    # The first record id (in text order) names a new cluster: the same on every engine. A record
    # alone (most of them) is its own first: only the clusters of several records are grouped.
    several = members.filter(members._size > 1)
    reps = several.group_by("_comp").agg(_rep_record=several._tessera_record.min()).union(
        members.filter(members._size == 1).select("_comp", _rep_record=members._tessera_record), distinct=False)
    if previous is not None:
        cand = members.join(previous.select("_tessera_record", old_id=previous[TID]), "_tessera_record")
        cand = cand.group_by(["_comp", "old_id"]).agg(n=ibis._.count()).join(reps, "_comp")
        # An id split evenly goes to the part with the first record: not to a row number, which
        # differs between engines and between a full and an incremental run.
        by_old = ibis.window(group_by="old_id", order_by=[ibis.desc("n"), "_rep_record"])
        won = cand.mutate(k=ibis.row_number().over(by_old)).filter(ibis._.k == 0)
        by_comp = ibis.window(group_by="_comp", order_by=[ibis.desc("n"), "old_id"])
        kept = won.mutate(k=ibis.row_number().over(by_comp)).filter(ibis._.k == 0).select("_comp", "old_id")
        reps = reps.left_join(kept, "_comp").drop("_comp_right")
        tid = reps.old_id.coalesce(new_id(reps._rep_record, generation))
    else:
        tid = new_id(reps._rep_record, generation)
    ids = adapter.create_table(f"{tag}ids", reps.select("_comp", **{TID: tid}), temp=True)
    lineage = comp.join(ids, "_comp").select("_idx", TID, "_size")
    counts = {
        "records": n_records,
        "unified": n_unified,
        "duplicates_merged": n_records - n_unified,
        "shared_values": shared.num_rows - refused.num_rows,
        "refused_by_limits": refused_by_limits,
    }
    if refused.num_rows or any(k.guarded for k in keys):
        counts["refused_by_guards"] = refused.num_rows
    if links is not None:
        counts["matched_pairs"] = len(link_pairs)
    if overrides:
        counts["overrides"] = len(manual)
    return Resolution(lineage=lineage, shared=shared, counts=counts)
