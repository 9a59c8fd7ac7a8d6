"""The Spark adapter answers counts of stored tables and "is any row true" from the Parquet files'
footers, without a Spark job: the answers equal those of a query."""

from __future__ import annotations

import pyarrow as pa
import pytest


@pytest.mark.spark
def test_counts_and_flags_from_the_footers_match_queries(tmp_path, spark_session):
    from tessera.engine.spark import SparkAdapter

    adapter = SparkAdapter(tmp_path / "spark", session=spark_session)
    n = 1000
    data = pa.table({"idx": pa.array(range(n), pa.int64()),
                     "moved": pa.array([i == 777 for i in range(n)]),
                     "never": pa.array([False if i % 3 else None for i in range(n)], pa.bool_())})
    t = adapter.create_table("t", data)
    # a table of two files (appended): a count adds their footers
    adapter.create_table("t2", data.slice(0, 400))
    adapter.append("t2", data.slice(400))
    jobs = spark_session.sparkContext._jsc.sc().statusStore().jobsList(None).size
    before = jobs()
    assert adapter.count(t) == n
    assert adapter.count(adapter.table("t2")) == n
    assert adapter.any_true("t", "moved") is True
    assert adapter.any_true("t", "never") is False
    assert jobs() == before  # answered from the files
    assert adapter.count(t.filter(t.moved)) == 1
    assert adapter.count(t.filter(t.idx < 10).limit(3)) == 3
    assert adapter.count(t.filter(t.idx < 0).limit(1)) == 0
    # a published name counts its table's rows
    adapter.publish({"published_t": "t2"})
    assert adapter.count(adapter.table("published_t")) == n
    adapter.close()
