"""Manual overrides on hand-made graphs, and the newest-decision-wins rule of the metadata store."""

from __future__ import annotations

import numpy as np

from tessera.identity.graph import Edges, cluster
from tessera.identity.resolve import _extra_edges
from tessera.store import MetadataStore


def _labels(record, value, n_records, n_values, links=(), overrides=()):
    record, value = np.array(record, dtype=np.int64), np.array(value, dtype=np.int64)
    level = np.zeros(len(record), dtype=np.int8)
    links = np.array(links, dtype=np.int64).reshape(-1, 2)
    ov = [(kind, np.array(idx, dtype=np.int64)) for kind, idx in overrides]
    r, v, lv, n = _extra_edges(record, value, level, n_records, n_values, links, ov, 1)
    labels, _ = cluster(Edges(r, v, lv, n_records, n))
    return list(labels)


def test_split_separates_records_from_the_rest_and_keeps_their_own_links():
    # records 0,1,2 share value 0; record 3 shares value 1 with record 2
    rec, val = [0, 1, 2, 2, 3], [0, 0, 0, 1, 1]
    assert len(set(_labels(rec, val, 4, 2))) == 1
    labels = _labels(rec, val, 4, 2, overrides=[("split", [2, 3])])
    assert labels[0] == labels[1] and labels[2] == labels[3] and labels[0] != labels[2]


def test_links_merges_and_rejects():
    rec, val = [0, 1], [0, 1]  # two records, nothing shared
    assert len(set(_labels(rec, val, 3, 2, links=[(0, 1)]))) == 2  # 0-1 linked, 2 alone
    assert len(set(_labels(rec, val, 3, 2, links=[(0, 1)], overrides=[("reject", [0, 1])]))) == 3
    assert len(set(_labels(rec, val, 3, 2, overrides=[("merge", [0, 1, 2])]))) == 1
    # a link that crosses a split is dropped
    assert len(set(_labels(rec, val, 3, 2, links=[(0, 1)], overrides=[("split", [1])]))) == 3


def test_newest_decision_wins(tmp_path):
    store = MetadataStore(f"sqlite:///{tmp_path / 'm.sqlite'}")
    store.upgrade()
    store.add_identity_override("contacts", "split", ["crm:1"])
    store.add_identity_override("contacts", "reject", ["crm:2", "crm:3"], origin="review")
    store.add_identity_override("orders", "split", ["x:1"])
    store.add_identity_override("contacts", "merge", ["crm:1", "crm:9"])  # undoes the split of crm:1
    assert [(o["kind"], o["records"]) for o in store.list_identity_overrides("contacts")] == [
        ("reject", ["crm:2", "crm:3"]), ("merge", ["crm:1", "crm:9"])]
    store.add_identity_override("contacts", "merge", ["crm:3", "crm:2"], origin="review")  # accept after reject
    assert [o["kind"] for o in store.list_identity_overrides("contacts")] == ["merge", "merge"]
    store.add_identity_override("contacts", "split", ["crm:9"])  # crosses the first merge
    assert [(o["kind"], o["records"]) for o in store.list_identity_overrides("contacts")] == [
        ("merge", ["crm:2", "crm:3"]), ("split", ["crm:9"])]
    assert len(store.list_identity_overrides()) == 3
    store.close()
