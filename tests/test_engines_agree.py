"""The same demo run on Spark gives the same unified ids and counts as on DuckDB."""

from __future__ import annotations

import pytest

from tessera.demo.generator import generate
from tessera.workspace import Workspace


@pytest.mark.spark
def test_spark_and_duckdb_give_the_same_unified_ids(tmp_path, spark_session):
    info = generate(tmp_path / "company", size=300, seed=5)
    results = {}
    for engine in ("duckdb", "spark"):
        ws = Workspace.init(tmp_path / engine, warehouse=engine)
        ws.apply(info.workspace_path)
        run = ws.run()
        lineage = ws.adapter.to_arrow(ws.table("contacts__lineage").select("_tessera_record", "tessera_id"))
        orders = ws.adapter.to_arrow(ws.table("orders").select("tessera_id", "tessera_contacts_id"))
        rejects = ws.adapter.to_arrow(ws.table("tessera_rejects").select("source", "file", "line", "reason"))
        results[engine] = {
            "counts": run.datasets,
            "lineage": sorted(zip(*lineage.to_pydict().values())),
            "orders": sorted(zip(*orders.to_pydict().values()), key=str),
            "rejects": sorted(zip(*rejects.to_pydict().values()), key=str),
        }
        ws.close()
    duck, spark = results["duckdb"], results["spark"]
    assert spark["counts"] == duck["counts"]
    assert spark["lineage"] == duck["lineage"]
    assert spark["orders"] == duck["orders"]
    assert spark["rejects"] == duck["rejects"]
