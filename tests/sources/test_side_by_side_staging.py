"""On an engine that gains from it (Spark on a small run), the batches of different sources are staged
side by side, each source in a thread of its own, before the staging step reads them as kept: the
same staged rows, rejects and published tables as one source after the other, and a source that
fails is reported by the staging step as it is without them. A dataset is built as soon as the
lineage of the datasets it relates to is written; the first failure in dependency order is raised."""

from __future__ import annotations

import threading

import pytest

from tessera import pipeline
from tessera.engine.spark import SparkAdapter
from tessera.errors import RunError
from tessera.workspace import Workspace


def _config(data, *, filter_: str | None = None) -> dict:
    crm = {"name": "crm", "connection": "files", "pattern": "crm*.csv", "record_keys": ["id"],
           "normalize": {"email": ["email"], "country": ["country"]}}
    if filter_:
        crm["filter"] = filter_
    return {
        "connections": [{"name": "files", "type": "local", "path": str(data)}],
        "sources": [
            crm,
            {"name": "shop", "connection": "files", "pattern": "shop*.csv", "record_keys": ["sid"],
             "normalize": {"mail": ["email"]}},
            {"name": "orders", "connection": "files", "pattern": "orders*.csv", "record_keys": ["oid"],
             "relations": [{"column": "cust", "to": "shop.sid"}]},
        ],
        "datasets": [
            {"name": "contacts", "identity_keys": [{"column": "email"}], "mappings": [
                {"source": "crm", "columns": {"crm_id": "id", "email": "email", "country": "country"}},
                {"source": "shop", "columns": {"shop_id": "sid", "email": "mail"}}]},
            {"name": "orders", "mappings": [
                {"source": "orders", "columns": {"order_id": "oid", "amount": "amount", "cust": "cust"}}]},
        ],
    }


def _files(data) -> None:
    data.mkdir()
    (data / "crm.csv").write_text("id,email,country\n1,Ann@Example.com,France\n2,bob@example.com,de\n"
                                  "2,bob2@example.com,de\n,nobody@example.com,fr\n3,cy@example.com,Narnia\n")
    (data / "shop.csv").write_text("sid,mail\ns1,ann@example.com\ns2, dee@example.com\ns3,not-an-email\n"
                                   "s3,again@example.com\n")
    (data / "orders.csv").write_text("oid,amount,cust\no1,12.5,s1\no2,x,s2\no3,3,s2\n")


def _published(ws: Workspace) -> dict:
    out = {}
    for name in ("contacts", "orders"):
        rows = ws.adapter.to_arrow(ws.table(name)).to_pylist()
        out[name] = sorted(sorted((k, str(v)) for k, v in r.items() if not k.startswith(("tessera_", "_tessera_")))
                           for r in rows)
    out["rejects"] = sorted((r["source"], r["file"], r["line"], r["column_name"] or "")
                            for r in ws.adapter.to_arrow(ws.table(pipeline.REJECTS_VIEW)).to_pylist())
    return out


@pytest.mark.spark
def test_sources_staged_side_by_side_give_the_same_tables(tmp_path, spark_session, monkeypatch):
    data = tmp_path / "data"
    _files(data)
    threads: dict[str, set] = {}
    stage_batch = pipeline.Pipeline._stage_batch

    def recorded(self, src, *args):
        threads.setdefault(src.name, set()).add(threading.current_thread().name)
        return stage_batch(self, src, *args)

    monkeypatch.setattr(pipeline.Pipeline, "_stage_batch", recorded)
    results = {}
    for label, side in (("apart", False), ("side by side", True)):
        monkeypatch.setattr(SparkAdapter, "runs_side_by_side", side)
        threads.clear()
        ws = Workspace.init(tmp_path / label.replace(" ", "_"), warehouse="spark")
        try:
            ws.apply(_config(data))
            run = ws.run()
            assert ws.adapter.side_by_side() == (2 if side else 1)  # (a small run on local[2])
            assert run.status.startswith("succeeded")
            results[label] = (_published(ws), {n: c for n, c in run.sources.items()})
        finally:
            ws.close()
        if not side:
            assert all(names == {threading.current_thread().name} for names in threads.values())
        else:  # each source staged once, in a thread of the pool
            assert set(threads) == {"crm", "shop", "orders"}
            assert all(len(names) == 1 and next(iter(names)).startswith("tessera-stage")
                       for names in threads.values())
    assert results["side by side"] == results["apart"]
    tables, counts = results["apart"]
    assert (counts["crm"]["staged"], counts["crm"]["rejected"]) == (3, 2)  # a duplicate key and an empty one
    assert tables["rejects"] == [("crm", "crm.csv", 3, "id"), ("crm", "crm.csv", 5, "id"),
                                 ("shop", "shop.csv", 4, "sid")]


@pytest.mark.spark
def test_a_failing_source_is_reported_as_without_side_by_side(tmp_path, spark_session, monkeypatch):
    data = tmp_path / "data"
    _files(data)
    messages = []
    for side in (False, True):
        monkeypatch.setattr(SparkAdapter, "runs_side_by_side", side)
        ws = Workspace.init(tmp_path / f"ws{side}", warehouse="spark")
        try:
            ws.apply(_config(data, filter_="CAST(country AS INTEGER) > 0"))
            with pytest.raises(RunError) as err:
                ws.run()
            messages.append(str(err.value))
        finally:
            ws.close()
    assert messages[0] == messages[1]
    assert "Source 'crm', filter" in messages[0]


def _scheduled(build, tmp_path):
    """The datasets of :func:`_config` built by ``build`` through the run's scheduler."""
    from types import SimpleNamespace

    from tessera.config.models import WorkspaceConfig
    from tessera.datasets.build import dataset_order

    config = WorkspaceConfig.model_validate(_config(tmp_path))
    builder = SimpleNamespace(on_lineage=None)
    started = []
    fake = SimpleNamespace(config=config, progress=lambda step, name, done, total: started.append(name))
    beside = pipeline._Beside(2)
    try:
        return pipeline.Pipeline._build_side_by_side(fake, dataset_order(config), builder,
                                                      lambda ds: build(builder, ds), beside), started
    finally:
        beside.close()


def test_a_related_dataset_starts_once_the_lineage_it_reads_is_written(tmp_path):
    merged = threading.Event()

    def build(builder, ds):
        if ds.name == "contacts":
            builder.on_lineage("contacts")
            # (the unified rows merged after the lineage: the orders are built meanwhile)
            assert merged.wait(10), "the orders were not built while the contacts were merged"
            return "contacts built"
        merged.set()
        return f"{ds.name} built"

    built, started = _scheduled(build, tmp_path)
    assert built == {"contacts": "contacts built", "orders": "orders built"}
    assert started == ["contacts", "orders"]


def test_the_first_failure_in_dependency_order_is_raised(tmp_path):
    def build(builder, ds):
        if ds.name == "contacts":
            builder.on_lineage("contacts")
            raise RunError("contacts failed")
        raise RunError("orders failed")

    with pytest.raises(RunError, match="contacts failed"):
        _scheduled(build, tmp_path)

    def no_lineage(builder, ds):
        raise RunError(f"{ds.name} failed")

    with pytest.raises(RunError, match="contacts failed"):  # (the orders, waiting for it, never start)
        _scheduled(no_lineage, tmp_path)
