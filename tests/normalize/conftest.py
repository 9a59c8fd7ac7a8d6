"""Fixtures of the normalization tests: an in-memory DuckDB and, with TESSERA_TEST_SPARK=1 (or
``--spark``), a local Spark session.

``duckdb_eval`` and ``spark_eval`` evaluate one expression over a column of values and return
the results in input order: ``evaluate(values, build)`` where ``build(column, dialect)``
returns the Ibis expression (``dialect``: the engine's :class:`~tessera.engine.dialects.Dialect`). The Spark session is the test run's shared one (tests/conftest.py).
"""

from __future__ import annotations

from collections.abc import Callable

import ibis
import pyarrow as pa
import pytest

from tessera.engine.dialects import Dialect, dialect_for


@pytest.fixture(scope="session")
def duckdb_con():
    return ibis.duckdb.connect()


@pytest.fixture(scope="session")
def spark_con(spark_session):
    return ibis.pyspark.connect(spark_session)


Build = Callable[[ibis.expr.types.StringValue, Dialect], ibis.Value]


def _results(con, table, build: Build, dialect: Dialect) -> list:
    expr = build(table.s, dialect)
    return con.to_pyarrow(table.select(table.i, x=expr).order_by("i")).column("x").to_pylist()


@pytest.fixture(scope="session")
def duckdb_eval(duckdb_con):
    def evaluate(values: list, build: Build) -> list:
        table = ibis.memtable(pa.table({"i": pa.array(range(len(values)), pa.int64()), "s": pa.array(values, pa.string())}))
        return _results(duckdb_con, table, build, dialect_for("duckdb"))

    return evaluate


@pytest.fixture(scope="session")
def spark_eval(spark_session, spark_con):
    counter = iter(range(1_000_000))

    def evaluate(values: list, build: Build) -> list:
        # built by Spark itself: a pandas round trip would turn None into the text 'NaN'
        name = f"tessera_cases_{next(counter)}"
        frame = spark_session.createDataFrame(list(enumerate(values)), "i long, s string")
        frame.createOrReplaceTempView(name)
        return _results(spark_con, spark_con.table(name), build, dialect_for("pyspark"))

    return evaluate
