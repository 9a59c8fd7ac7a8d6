"""DuckDB's default memory limit scaled to the data imported, and a Parquet file read straight
into its raw table."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq

from tessera.engine import duckdb as engine
from tessera.engine.duckdb import DuckDBAdapter


def limit_bytes(adapter: DuckDBAdapter) -> int:
    return adapter.sql("SELECT current_setting('memory_limit')").fetchone()[0]


def raw_batch(adapter: DuckDBAdapter, name: str, rows: int, columns: int) -> None:
    adapter.sql(f"CREATE TABLE {name} AS SELECT " + ", ".join(f"'x' AS c{i}" for i in range(columns))
                + f" FROM range({rows})")


def test_default_limit_follows_the_raw_batches(tmp_path, monkeypatch):
    monkeypatch.delenv("TESSERA_DUCKDB_MEMORY_LIMIT", raising=False)
    monkeypatch.setattr(engine, "BYTES_PER_VALUE", 2**20)  # a few rows stand for many
    adapter = DuckDBAdapter(str(tmp_path / "w.duckdb"))
    try:
        adapter.fit_memory()  # nothing imported: the least
        assert limit_bytes(adapter) == "488.2 MiB"
        raw_batch(adapter, "_tessera_raw_a_1", 200, 4)
        raw_batch(adapter, "other_table", 10_000, 10)  # not a raw batch: not counted
        adapter.fit_memory()
        assert limit_bytes(adapter) == "800.0 MiB"
        raw_batch(adapter, "_tessera_raw_a_2", 10_000, 4)
        adapter.fit_memory()  # never past the default
        assert limit_bytes(adapter) == "1.4 GiB"
        adapter.set_memory_limit("300MB")  # a job's own limit (pipeline.memory_limit) is kept
        adapter.fit_memory()
        assert limit_bytes(adapter) == "286.1 MiB"
        adapter.set_memory_limit(None)
        assert limit_bytes(adapter).endswith("GiB")  # the default back, scaled again by the next run
    finally:
        adapter.close()


def test_a_limit_from_the_environment_is_kept(tmp_path, monkeypatch):
    monkeypatch.setenv("TESSERA_DUCKDB_MEMORY_LIMIT", "700MB")
    adapter = DuckDBAdapter(str(tmp_path / "w.duckdb"))
    try:
        adapter.fit_memory()
        assert limit_bytes(adapter) == "667.5 MiB"
    finally:
        adapter.close()


def test_parquet_read_straight_into_the_raw_table(tmp_path):
    path = tmp_path / "a.parquet"
    pq.write_table(pa.table({"id": list(range(5000)), "name": [None if i == 7 else f"n{i}" for i in range(5000)]}),
                   path, row_group_size=700)
    adapter = DuckDBAdapter(str(tmp_path / "w.duckdb"))
    try:
        read = adapter.import_file(str(path), "parquet", table="_tessera_raw_s_3", options={}, decimal_comma=False,
                                   batch=3, file_name="a's.parquet")
        assert read.rows == 5000 and read.types == {"id": "integer", "name": "string"}
        rows = adapter.sql("SELECT id, name, _tessera_line, _tessera_batch, _tessera_file FROM _tessera_raw_s_3 "
                           "ORDER BY _tessera_line").fetchall()
        assert rows[0] == ("0", "n0", 1, 3, "a's.parquet") and rows[7] == ("7", None, 8, 3, "a's.parquet")
        assert [r[2] for r in rows] == list(range(1, 5001)) and all(int(r[0]) == r[2] - 1 for r in rows)
        assert not [t for t in adapter.list_tables() if "__parse" in t]
    finally:
        adapter.close()
