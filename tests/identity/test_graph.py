import numpy as np

from tessera.identity.graph import Edges, cluster


def make_edges(pairs, n_records, levels=None):
    """pairs: list of (record, value_name); values named by strings for readability."""
    names = sorted({v for _, v in pairs})
    index = {v: i for i, v in enumerate(names)}
    rec = np.array([r for r, _ in pairs], dtype=np.int64)
    val = np.array([index[v] for _, v in pairs], dtype=np.int64)
    lev = np.array(levels if levels is not None else [0] * len(pairs), dtype=np.int8)
    return Edges(rec, val, lev, n_records, len(names))


def test_transitive_chain_is_one_customer():
    # A shares an email with B, B a phone with C; D is alone.
    edges = make_edges([(0, "e:a"), (1, "e:a"), (1, "p:1"), (2, "p:1"), (3, "e:d")], 4)
    labels, refused = cluster(edges)
    assert labels.tolist() == [0, 0, 0, 3]
    assert refused == 0


def test_record_without_keys_stays_alone():
    edges = make_edges([(1, "e:x"), (2, "e:x")], 4)
    labels, _ = cluster(edges)
    assert labels.tolist() == [0, 1, 1, 3]


def test_limit_splits_by_key_priority():
    # keys: customer_id (level 0, limit 1), email (level 1). Records 0 and 1 have different
    # customer ids but share an email: the email must not merge them.
    pairs = [(0, "c:1"), (1, "c:2"), (0, "e:x"), (1, "e:x"), (2, "e:y"), (3, "e:y"), (3, "c:3")]
    levels = [0, 0, 1, 1, 1, 1, 0]
    labels, refused = cluster(make_edges(pairs, 4, levels), {0: 1})
    assert labels[0] != labels[1]
    assert labels[2] == labels[3]  # no conflict there: merged
    assert refused == 2


def test_limit_keeps_higher_priority_merges():
    # email (level 0) links 0-1, both customer id 7 (level 1, limit 1); phone (level 2) links 1-2
    # where 2 has customer id 8: 2 must stay apart, 0-1 stay merged.
    pairs = [(0, "e:a"), (1, "e:a"), (0, "c:7"), (1, "c:7"), (1, "p:9"), (2, "p:9"), (2, "c:8")]
    levels = [0, 0, 1, 1, 2, 2, 1]
    labels, refused = cluster(make_edges(pairs, 3, levels), {1: 1})
    assert labels[0] == labels[1]
    assert labels[2] != labels[1]
    assert refused > 0


def test_no_edges():
    labels, refused = cluster(Edges(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int8), 3, 0))
    assert labels.tolist() == [0, 1, 2]
    assert refused == 0
