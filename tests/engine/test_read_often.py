"""DuckDB writes the published tables (EngineAdapter.read_often) with dictionaries for their text
columns of few values, where a filter computes its function once per distinct value; other tables
keep text plain, cheaper to write."""

from __future__ import annotations

import ibis

from tessera.engine.duckdb import DuckDBAdapter


def compression(adapter: DuckDBAdapter, table: str) -> dict[str, set[str]]:
    rows = adapter.sql(f"SELECT column_name, compression FROM pragma_storage_info('{table}') "
                       "WHERE segment_type = 'VARCHAR'").fetchall()
    out: dict[str, set[str]] = {}
    for column, method in rows:
        out.setdefault(column, set()).add(method)
    return out


def test_published_tables_keep_dictionaries_of_few_values(tmp_path, monkeypatch):
    monkeypatch.delenv("TESSERA_DUCKDB_TEXT_COMPRESSION", raising=False)
    adapter = DuckDBAdapter(str(tmp_path / "w.duckdb"))
    setting = "SELECT current_setting('disabled_compression_methods')"
    before = adapter.sql(setting).fetchone()[0]
    # more rows than a row group: written as they are inserted, with the setting of that moment
    rows = adapter.con.sql("SELECT 'name' || (i % 40) AS last_name, 'id-' || i AS tessera_id "
                           "FROM range(300000) AS t(i)")
    with adapter.read_often():
        adapter.create_table("published", rows)
    adapter.create_table("work", rows)
    adapter.sql("CHECKPOINT")
    assert adapter.sql(setting).fetchone()[0] == before
    published, work = compression(adapter, "published"), compression(adapter, "work")
    assert "Dictionary" in published["last_name"] and "FSST" not in published["tessera_id"]
    assert work["last_name"] == work["tessera_id"] == {"Uncompressed"}
    t = ibis.duckdb.from_connection(adapter.raw).table("published")
    assert t.filter(t.last_name == "name7").count().execute() == 7500
    adapter.close()
