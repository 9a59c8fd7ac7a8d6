"""Connected components of the identity graph, with per-key limits.

The graph is bipartite: records on one side, identity key values on the other; an edge says
"this record carries this value". Records that reach each other through shared values are one
customer. The engine prepares the edges as dense integer ids; this module labels components
on those integer arrays with scipy's compiled graph routines (no Python loop over records).

Per-key limits ("at most one customer id per unified record") are enforced by key priority:
keys are added one priority level at a time, and a component that would break a limit when a
level's edges are added keeps the previous level's split for its records instead.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components


@dataclass
class Edges:
    """Identity edges as parallel arrays."""

    record: np.ndarray  # record index, 0..n_records-1 (records ordered by their id)
    value: np.ndarray  # value index, 0..n_values-1
    level: np.ndarray  # priority level of the key (0 = highest)
    n_records: int
    n_values: int


def _components(n_records: int, n_values: int, record: np.ndarray, value: np.ndarray) -> np.ndarray:
    """Label each record with the smallest record index of its component."""
    n = n_records + n_values
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    graph = coo_matrix(
        (np.ones(len(record), dtype=np.int8), (record.astype(np.int64, copy=False), value + np.int64(n_records))),
        shape=(n, n),
    ).tocsr()
    _, labels = connected_components(graph, directed=False)
    rec_labels = labels[:n_records]
    # The first record of each label (records are in id order) names the component.
    uniq, first = np.unique(rec_labels, return_index=True)
    rep = np.empty(labels.max() + 1, dtype=np.int64)
    rep[uniq] = first
    return rep[rec_labels]


def _violating(labels: np.ndarray, edges: Edges, mask: np.ndarray, limits: dict[int, int]) -> np.ndarray:
    """Boolean per record: its component holds more distinct values of a limited key than allowed."""
    bad_components = []
    for level, limit in limits.items():
        sel = mask & (edges.level == level)
        if not sel.any():
            continue
        comp = labels[edges.record[sel]]
        pairs = np.unique(np.stack([comp, edges.value[sel].astype(np.int64)], axis=1), axis=0)
        comps, counts = np.unique(pairs[:, 0], return_counts=True)
        bad_components.append(comps[counts > limit])
    if not bad_components:
        return np.zeros(len(labels), dtype=bool)
    bad = np.unique(np.concatenate(bad_components))
    return np.isin(labels, bad)


def _limited_edges(edges: Edges, limits: dict[int, int]) -> np.ndarray:
    """All edges of limited keys (they are counted, whatever level is being added)."""
    return np.isin(edges.level, np.array(list(limits), dtype=edges.level.dtype))


def cluster(edges: Edges, limits: dict[int, int] | None = None) -> tuple[np.ndarray, int]:
    """Cluster records; return (component label per record, number of records split by limits).

    Args:
        edges: the identity edges.
        limits: ``{level: max distinct values per unified record}`` for limited keys.

    Returns:
        The label of each record (the smallest record index of its unified record) and the
        number of records whose merge was refused because it would break a limit.
    """
    limits = limits or {}
    labels = _components(edges.n_records, edges.n_values, edges.record, edges.value)
    if not limits:
        return labels, 0
    all_edges = np.ones(len(edges.record), dtype=bool)
    bad = _violating(labels, edges, all_edges, limits)
    if not bad.any():
        return labels, 0

    # Re-cluster only the records of the offending components, level by level.
    sub = np.flatnonzero(bad)
    in_sub = bad[edges.record]
    accepted = np.zeros(len(edges.record), dtype=bool)
    refused_records = np.zeros(edges.n_records, dtype=bool)
    limited = _limited_edges(edges, limits)
    sub_labels = labels
    for level in np.unique(edges.level[in_sub]):
        trial = accepted | (in_sub & (edges.level == level))
        sub_labels = _components(edges.n_records, edges.n_values, edges.record[trial], edges.value[trial])
        # Limited values are counted even when their key's level is not added yet.
        broken = _violating(sub_labels, edges, in_sub & limited, limits)
        if broken.any():
            drop = in_sub & (edges.level == level) & broken[edges.record]
            refused_records |= broken & bad
            trial &= ~drop
            sub_labels = _components(edges.n_records, edges.n_values, edges.record[trial], edges.value[trial])
        accepted = trial
    labels = labels.copy()
    labels[sub] = sub_labels[sub]
    return labels, int(refused_records.sum())
