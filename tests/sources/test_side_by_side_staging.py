"""On an engine that gains from it (Spark on a small run), the batches of different sources are staged
side by side, each source in a thread of its own, before the staging step reads them as kept: the
same staged rows, rejects and published tables as one source after the other, and a source that
fails is reported by the staging step as it is without them."""

from __future__ import annotations

import threading

import pytest

from tessera import pipeline
from tessera.engine.spark import SparkAdapter
from tessera.errors import RunError
from tessera.workspace import Workspace

pytestmark = pytest.mark.spark


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
    for label, workers in (("apart", 1), ("side by side", 2)):
        monkeypatch.setattr(SparkAdapter, "side_by_side", lambda self, n=workers: n)
        threads.clear()
        ws = Workspace.init(tmp_path / label.replace(" ", "_"), warehouse="spark")
        try:
            ws.apply(_config(data))
            run = ws.run()
            assert run.status.startswith("succeeded")
            results[label] = (_published(ws), {n: c for n, c in run.sources.items()})
        finally:
            ws.close()
        if workers == 1:
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


def test_a_failing_source_is_reported_as_without_side_by_side(tmp_path, spark_session, monkeypatch):
    data = tmp_path / "data"
    _files(data)
    messages = []
    for workers in (1, 2):
        monkeypatch.setattr(SparkAdapter, "side_by_side", lambda self, n=workers: n)
        ws = Workspace.init(tmp_path / f"ws{workers}", warehouse="spark")
        try:
            ws.apply(_config(data, filter_="CAST(country AS INTEGER) > 0"))
            with pytest.raises(RunError) as err:
                ws.run()
            messages.append(str(err.value))
        finally:
            ws.close()
    assert messages[0] == messages[1]
    assert "Source 'crm', filter" in messages[0]
