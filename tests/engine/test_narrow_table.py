"""A source's typed rows become its kept staged rows without a copy on DuckDB
(EngineAdapter.narrow_table): the rejected rows deleted, the reasons' columns dropped, the table renamed."""

from __future__ import annotations

from tessera.engine.base import EngineAdapter
from tessera.engine.duckdb import DuckDBAdapter

TYPED = ("SELECT 'r' || i AS _tessera_record, i AS line, 'v' || i AS value, "
         "CASE WHEN i % 10 = 3 THEN 'bad' END AS _reason, CASE WHEN i % 10 = 3 THEN 'value' END AS _column "
         "FROM range(200000) AS t(i)")


def stored(adapter: DuckDBAdapter, name: str) -> list[tuple]:
    return adapter.sql(f"SELECT * FROM {name} ORDER BY line").fetchall()


def test_typed_rows_narrowed_in_place(tmp_path):
    adapter = DuckDBAdapter(str(tmp_path / "w.duckdb"))
    adapter.sql(f"CREATE TABLE typed AS {TYPED}")
    adapter.sql("CREATE TABLE staged AS SELECT 1 AS old")  # replaced
    adapter.narrow_table("typed", "staged", ["_tessera_record", "line", "value"], unless="_reason")
    assert not adapter.exists("typed")
    assert [r[0] for r in adapter.sql("DESCRIBE staged").fetchall()] == ["_tessera_record", "line", "value"]
    rows = stored(adapter, "staged")
    assert len(rows) == 180000 and rows[:3] == [("r0", 0, "v0"), ("r1", 1, "v1"), ("r2", 2, "v2")]
    assert all(line % 10 != 3 for _, line, _ in rows)
    # the same rows as the copy every other engine makes
    adapter.sql(f"CREATE TABLE typed2 AS {TYPED}")
    EngineAdapter.narrow_table(adapter, "typed2", "copied", ["_tessera_record", "line", "value"], unless="_reason")
    assert stored(adapter, "copied") == rows and not adapter.exists("typed2")
    adapter.sql("CHECKPOINT")
    adapter.close()
    again = DuckDBAdapter(str(tmp_path / "w.duckdb"))
    assert stored(again, "staged") == rows
    again.close()


def test_a_temporary_or_reordered_table_is_copied(tmp_path):
    adapter = DuckDBAdapter(str(tmp_path / "w.duckdb"))
    adapter.sql(f"CREATE TEMP TABLE typed AS {TYPED}")
    adapter.narrow_table("typed", "staged", ["_tessera_record", "line"], unless="_reason")
    assert adapter.count(adapter.table("staged")) == 180000 and not adapter.exists("typed")
    adapter.sql(f"CREATE TABLE typed AS {TYPED}")
    adapter.narrow_table("typed", "other", ["value", "line"], unless="_reason")
    assert [r[0] for r in adapter.sql("DESCRIBE other").fetchall()] == ["value", "line"]
    assert adapter.count(adapter.table("other")) == 180000
    adapter.close()
