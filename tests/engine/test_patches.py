"""Tables of the last publication changed in place when a run publishes (engines with
``patches_in_place``): rows deleted and inserted in the publication's transaction, read by the run
through a view until then."""

from __future__ import annotations

import ibis
import pyarrow as pa
import pytest

from tessera.engine.base import Patch


@pytest.fixture
def adapter(engine_adapter):
    if not engine_adapter.patches_in_place:
        pytest.skip("this engine copies what a run changes")
    return engine_adapter


def _rows(adapter, name: str) -> list[tuple]:
    return sorted((r["k"], r["v"]) for r in adapter.to_arrow(adapter.table(name)).to_pylist())


def test_a_patch_replaces_rows_when_the_run_publishes(adapter):
    adapter.create_table("t", pa.table({"k": [1, 2, 3, 4], "v": ["a", "b", "c", "d"]}))
    adapter.publish({"pub": "t"})
    adapter.create_table("gone", pa.table({"k": [2, 3]}))
    adapter.create_table("new", pa.table({"k": [3, 5], "v": ["C", "E"]}))
    t = adapter.table("t")
    view = adapter.create_view("run_view", t.anti_join(adapter.table("gone"), "k").union(adapter.table("new")))
    # the run reads the change through its view; the published table is as it was
    assert sorted(adapter.to_arrow(view).to_pylist(), key=lambda r: r["k"])[-1] == {"k": 5, "v": "E"}
    assert _rows(adapter, "pub") == [(1, "a"), (2, "b"), (3, "c"), (4, "d")]

    adapter.publish({"pub": "t"}, [Patch("t", "k", adapter.table("gone"), adapter.table("new"))])
    assert _rows(adapter, "pub") == [(1, "a"), (3, "C"), (4, "d"), (5, "E")]
    # the deleted rows may still take room (the pipeline copies a table that holds too many)
    assert 0 <= adapter.dead_share("t") <= 0.34
    assert adapter.published_target("pub") == "t"
    adapter.drop_table("run_view")
    assert not adapter.exists("run_view")


def test_a_failed_publication_leaves_the_table_unpatched(adapter):
    adapter.create_table("t", pa.table({"k": [1, 2], "v": ["a", "b"]}))
    adapter.publish({"pub": "t"})
    gone = ibis.memtable({"k": [1]})
    adapter.create_table("new", pa.table({"k": [1], "v": ["A"]}))
    with pytest.raises(Exception):
        adapter.publish({"pub": "t", "other": "no_such_table"},
                        [Patch("t", "k", adapter.create_table("gone", gone), adapter.table("new"))])
    assert _rows(adapter, "pub") == [(1, "a"), (2, "b")]
    assert adapter.published_target("other") is None
