"""Fixtures of the normalization tests: one test body on every engine.

``engine_eval`` evaluates one expression over a column of values on DuckDB always, on Spark with
``--spark`` (the test run's shared session) and on PostgreSQL with ``--postgres`` (a fresh
database), and returns the results in input order; ``duckdb_eval`` does it on DuckDB only.
Both are ``evaluate(values, build)``, where ``build(column, dialect)`` returns the Ibis
expression (``dialect``: the engine's :class:`~tessera.engine.dialects.Dialect`).
"""

from __future__ import annotations

import itertools
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


@pytest.fixture
def postgres_eval(postgres_db_url):
    from tessera.engine.postgres import PostgresAdapter

    adapter = PostgresAdapter(postgres_db_url)
    counter = itertools.count()

    def evaluate(values: list, build: Build) -> list:
        t = adapter.create_table(f"cases_{next(counter)}", pa.table({"i": pa.array(range(len(values)), pa.int64()),
                                                                     "s": pa.array(values, pa.string())}))
        return adapter.to_arrow(t.select(t.i, x=build(t.s, adapter.dialect)).order_by("i")).column("x").to_pylist()

    yield evaluate
    adapter.close()


@pytest.fixture(params=["duckdb", pytest.param("spark", marks=pytest.mark.spark),
                        pytest.param("postgres", marks=pytest.mark.postgres)])
def engine_eval(request):
    """``evaluate(values, build)`` on each engine in turn (see the module's docstring)."""
    return request.getfixturevalue({"duckdb": "duckdb_eval", "spark": "spark_eval",
                                    "postgres": "postgres_eval"}[request.param])
