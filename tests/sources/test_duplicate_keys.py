"""A record key on several lines of one file: ``on_duplicate_key`` keeps the last line (default),
the first, or none, and the rejects say which line was kept."""

from __future__ import annotations

import pytest

from tessera.workspace import Workspace

CSV = (
    "id;email;city\n"
    "1;ann@example.com;Lyon\n"
    "2;bob@example.com;Paris\n"
    "1;ann@example.com;Lille\n"
    "1;ann@example.com;Nice\n"
)


def run(tmp_path, csv=CSV, warehouse=None, **source) -> tuple[dict, list[dict]]:
    data = tmp_path / "data"
    data.mkdir(parents=True)
    (data / "contacts.csv").write_text(csv)
    ws = Workspace.init(tmp_path / "ws", warehouse=warehouse)
    try:
        ws.apply({
            "connections": [{"name": "files", "type": "local", "path": str(data)}],
            "sources": [{"name": "crm", "connection": "files", "pattern": "*.csv", "record_keys": ["id"], **source}],
            "datasets": [{"name": "contacts", "mappings": [
                {"source": "crm", "columns": {"crm_id": "id", "email": "email", "city": "city"}}]}],
        })
        ws.run()
        contacts = {r["crm_id"]: r["city"] for r in ws.adapter.to_arrow(ws.table("contacts")).to_pylist()}
        rejects = sorted(ws.adapter.to_arrow(ws.rejects("crm")).to_pylist(), key=lambda r: r["line"])
        return contacts, rejects
    finally:
        ws.close()


def test_the_last_line_is_the_newer_state_by_default(tmp_path):
    contacts, rejects = run(tmp_path)
    assert contacts == {"1": "Nice", "2": "Paris"}
    assert [r["line"] for r in rejects] == [2, 4]
    assert all(r["reason"] == "duplicate record key (id) in the same file: line 5 was kept "
               "(on_duplicate_key: last)" for r in rejects)
    assert rejects[0]["column_name"] == "id" and "Lyon" in rejects[0]["raw"]


def test_first(tmp_path):
    contacts, rejects = run(tmp_path, on_duplicate_key="first")
    assert contacts == {"1": "Lyon", "2": "Paris"}
    assert [r["line"] for r in rejects] == [4, 5]
    assert "line 2 was kept (on_duplicate_key: first)" in rejects[0]["reason"]


def test_reject_keeps_none(tmp_path):
    contacts, rejects = run(tmp_path, on_duplicate_key="reject")
    assert contacts == {"2": "Paris"}
    assert [r["line"] for r in rejects] == [2, 4, 5]
    assert "on 3 lines, none was kept (on_duplicate_key: reject); first at line 2" in rejects[0]["reason"]


def test_an_unknown_policy_is_a_configuration_error(tmp_path):
    with pytest.raises(Exception, match="on_duplicate_key"):
        run(tmp_path, on_duplicate_key="newest")


@pytest.mark.spark
@pytest.mark.parametrize("policy", ["last", "first", "reject"])
def test_spark_finds_the_same_duplicates_from_its_flag(tmp_path, spark_session, policy):
    """Spark flags the duplicate keys in the typed rows and reads the flag's statistics: the same
    staged rows and rejects as DuckDB's query, with duplicates and without."""
    no_duplicates = CSV.replace("1;ann@example.com;Lille\n", "").replace("1;ann@example.com;Nice\n", "")
    for name, csv in (("dups", CSV), ("none", no_duplicates)):
        spark = run(tmp_path / f"spark_{name}", csv, "spark", on_duplicate_key=policy)
        assert spark == run(tmp_path / f"duckdb_{name}", csv, "duckdb", on_duplicate_key=policy)
        assert bool(spark[1]) == (name == "dups")
