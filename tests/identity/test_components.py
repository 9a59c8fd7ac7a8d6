"""Identity components found by joins in the engine (as on Spark) match SciPy's labels."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from tessera.engine.duckdb import DuckDBAdapter
from tessera.identity.components import engine_components
from tessera.identity.graph import Edges, cluster


def _labels_both_ways(adapter, pairs, n_records):
    names = sorted({v for _, v in pairs})
    index = {v: i for i, v in enumerate(names)}
    rec = np.array([r for r, _ in pairs], dtype=np.int64)
    val = np.array([index[v] for _, v in pairs], dtype=np.int64)
    local, _ = cluster(Edges(rec, val, np.zeros(len(pairs), dtype=np.int8), n_records, len(names)))
    kv = adapter.create_table("kv", pa.table({"idx": pa.array(rec), "level": pa.array([0] * len(pairs), pa.int8()),
                                              "value": pa.array([v for _, v in pairs], pa.string())}))
    records = adapter.create_table("recs", pa.table({"_idx": pa.array(np.arange(n_records, dtype=np.int64))}))
    comp = adapter.to_arrow(engine_components(adapter, records, kv, "t_").order_by("_idx")).to_pydict()
    sizes = np.bincount(local)[local]
    return local.tolist(), comp["_comp"], sizes.tolist(), comp["_size"]


@pytest.fixture
def duckdb_adapter(tmp_path):
    from tessera.engine.connect import open_adapter

    (tmp_path / "warehouse").mkdir()
    adapter = open_adapter("duckdb", tmp_path / "warehouse")
    yield adapter
    adapter.close()


def test_engine_components_match_scipy(duckdb_adapter):
    # a long chain (0-1-2-...-39, linked in a shuffled order of values), a star, pairs, loners
    rng = np.random.default_rng(3)
    chain = [(i, f"c{i}") for i in range(40)] + [(i + 1, f"c{i}") for i in range(39)]
    star = [(100, f"s{i}") for i in range(5)] + [(101 + i, f"s{i}") for i in range(5)]
    pairs = [(200 + 2 * i, f"p{i}") for i in range(10)] + [(201 + 2 * i, f"p{i}") for i in range(10)]
    edges = chain + star + pairs
    edges = [edges[i] for i in rng.permutation(len(edges))]
    local, remote, local_sizes, remote_sizes = _labels_both_ways(duckdb_adapter, edges, 230)
    assert remote == local
    assert remote_sizes == local_sizes
    assert local[39] == 0 and local[105] == 100 and local[225] == 225


def test_a_run_with_components_in_the_engine_gives_the_same_ids(tmp_path, monkeypatch):
    from tessera.demo.identity_bench import generate_identity_bench
    from tessera.workspace import Workspace

    generate_identity_bench(tmp_path / "data", n_records=2000, seed=9)
    found = {}
    for way in ("scipy", "engine"):
        monkeypatch.setattr(DuckDBAdapter, "graph_in_engine", way == "engine")
        ws = Workspace.init(tmp_path / way)
        ws.apply(tmp_path / "data" / "workspace.yaml")
        run = ws.run()
        lineage = ws.adapter.to_arrow(ws.table("contacts__lineage").select("_tessera_record", "tessera_id"))
        found[way] = (run.datasets["contacts"], sorted(zip(*lineage.to_pydict().values())))
        ws.close()
    assert found["engine"] == found["scipy"]
    assert found["scipy"][0]["duplicates_merged"] > 300


@pytest.mark.spark
def test_spark_finds_the_components_in_the_engine(tmp_path, spark_session):
    from tessera.demo.identity_bench import generate_identity_bench
    from tessera.engine.spark import SparkAdapter
    from tessera.workspace import Workspace

    assert SparkAdapter.graph_in_engine
    generate_identity_bench(tmp_path / "data", n_records=600, seed=4)
    found = {}
    for engine in ("duckdb", "spark"):
        ws = Workspace.init(tmp_path / engine, warehouse=engine)
        ws.apply(tmp_path / "data" / "workspace.yaml")
        run = ws.run()
        lineage = ws.adapter.to_arrow(ws.table("contacts__lineage").select("_tessera_record", "tessera_id"))
        found[engine] = (run.datasets["contacts"], sorted(zip(*lineage.to_pydict().values())))
        ws.close()
    assert found["spark"] == found["duckdb"]
