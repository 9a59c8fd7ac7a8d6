"""A source's typed rows become its kept staged rows without a copy on DuckDB
(EngineAdapter.narrow_table): the rejected rows deleted, the reasons' columns dropped, the table renamed."""

from __future__ import annotations

import pytest

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


@pytest.mark.spark
def test_spark_renames_typed_rows_without_rejects(tmp_path, spark_session):
    """On Spark, typed rows whose reasons are all NULL (from the Parquet statistics) become the
    staged rows by renaming their folder, read with the staged columns alone: no Spark job, the
    same rows as the copy, and the same columns in a later session's adapter."""
    from tessera.engine.spark import SparkAdapter

    adapter = SparkAdapter(tmp_path / "spark", session=spark_session)
    select = TYPED.replace("FROM range(200000) AS t(i)", "FROM range(2000) AS t(i)")
    clean = select.replace("CASE WHEN i % 10 = 3 THEN 'bad' END", "CAST(NULL AS STRING)")
    adapter.create_table("typed", adapter.con.sql(clean))
    adapter.create_table("typed2", adapter.con.sql(clean))
    adapter.create_table("staged", adapter.con.sql("SELECT 1 AS old"))  # replaced
    columns = ["_tessera_record", "line", "value"]
    jobs = spark_session.sparkContext._jsc.sc().statusStore().jobsList(None).size
    before = jobs()
    adapter.narrow_table("typed", "staged", columns, unless="_reason")
    assert jobs() == before
    assert not adapter.exists("typed") and list(adapter.table("staged").columns) == columns
    EngineAdapter.narrow_table(adapter, "typed2", "copied", columns, unless="_reason")
    rows = adapter.to_arrow(adapter.table("staged").order_by("line"))
    assert rows.equals(adapter.to_arrow(adapter.table("copied").order_by("line")))
    assert rows.num_rows == 2000 and adapter.count(adapter.table("staged")) == 2000
    # with rejected rows: a copy without them
    adapter.create_table("typed3", adapter.con.sql(select))
    adapter.narrow_table("typed3", "other", ["value", "line"], unless="_reason")
    assert list(adapter.table("other").columns) == ["value", "line"] and adapter.count(adapter.table("other")) == 1800
    adapter.close()
    again = SparkAdapter(tmp_path / "spark", session=spark_session)
    assert list(again.table("staged").columns) == columns
    assert again.to_arrow(again.table("staged").order_by("line")).equals(rows)
    again.close()
