"""The Spark adapter answers counts of stored tables and "is any row true" from the Parquet files'
footers, without a Spark job: the answers equal those of a query."""

from __future__ import annotations

import ibis
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
    adapter.create_table("n", pa.table({"none": pa.array([None] * n, pa.string()), "idx": data["idx"]}))
    assert adapter.known_all_null("n", "none") is True
    assert adapter.known_all_null("n", "idx") is False
    assert adapter.known_all_null("t", "never") is False  # NULL and false
    assert adapter.known_all_null("missing_table", "x") is None
    assert jobs() == before  # answered from the files
    assert adapter.count(adapter.table("n").filter(ibis._.none.notnull())) == 0
    assert adapter.count(t.filter(t.moved)) == 1
    assert adapter.count(t.filter(t.idx < 10).limit(3)) == 3
    assert adapter.count(t.filter(t.idx < 0).limit(1)) == 0
    # a published name counts its table's rows
    adapter.publish({"published_t": "t2"})
    assert adapter.count(adapter.table("published_t")) == n
    adapter.close()


@pytest.mark.spark
def test_small_run_settings_follow_the_raw_batches(tmp_path, spark_session, monkeypatch):
    from tessera.engine import spark as engine
    from tessera.engine.spark import SMALL_RUN_SETTINGS, SparkAdapter

    monkeypatch.setattr(engine, "SMALL_RUN_ROWS", 100)
    adapter = SparkAdapter(tmp_path / "spark", session=spark_session)
    own = dict(spark_session._tessera_own_settings)
    conf = spark_session.conf
    try:
        raw = pa.table({"x": pa.array(range(80), pa.int64())})
        adapter.create_table("_tessera_raw_a_1", raw)
        adapter.create_table("other_table", pa.table({"x": pa.array(range(500), pa.int64())}))  # not counted
        adapter.fit_memory()
        assert {k: conf.get(k) for k in SMALL_RUN_SETTINGS} == SMALL_RUN_SETTINGS
        adapter.create_table("_tessera_raw_a_2", raw)  # 160 rows: past the limit, the session's own
        adapter.fit_memory()
        assert {k: conf.get(k, None) for k in SMALL_RUN_SETTINGS} == own
        assert conf.get("spark.sql.autoBroadcastJoinThreshold") != "-1"
        # a later adapter of the same session reads the session's own values, not a run's
        adapter.drop_table("_tessera_raw_a_2")
        adapter.fit_memory()
        assert SparkAdapter(tmp_path / "spark2", session=spark_session).session._tessera_own_settings == own
    finally:
        for k, v in own.items():
            conf.unset(k) if v is None else conf.set(k, v)
        adapter.close()


@pytest.mark.spark
def test_arrow_rows_are_written_without_a_job_and_read_back_as_spark_wrote_them(tmp_path, spark_session):
    import datetime as dt

    from tessera.engine.spark import SparkAdapter, _spark_schema

    adapter = SparkAdapter(tmp_path / "spark", session=spark_session)
    data = pa.table({
        "name": pa.array(["a", None, "c"], pa.large_string()),
        "n": pa.array([1, 2, None], pa.int64()),
        "small": pa.array([1, None, 3], pa.int8()),
        "ratio": pa.array([0.5, None, 2.0]),
        "flag": pa.array([True, False, None]),
        "day": pa.array([dt.date(2024, 2, 29), None, dt.date(1999, 12, 31)]),
        "naive": pa.array([dt.datetime(2024, 1, 1, 12, 30, 1, 5), None, dt.datetime(2000, 6, 1)],
                          pa.timestamp("ns")),
        "aware": pa.array([dt.datetime(2024, 1, 1, 12, tzinfo=dt.timezone.utc), None, None],
                          pa.timestamp("us", tz="Europe/Paris")),
    })
    jobs = spark_session.sparkContext._jsc.sc().statusStore().jobsList(None).size
    before = jobs()
    adapter.create_table("arrow_t", data)
    adapter.append("arrow_t", data.slice(0, 1))
    adapter.create_table("arrow_t", data)  # replaced
    adapter.append("arrow_t", data.slice(0, 1))
    assert jobs() == before  # written by pyarrow, counted from the footers
    assert adapter.count(adapter.table("arrow_t")) == 4
    # the same rows and types as Spark's own reading of the same Arrow table
    expected = spark_session.createDataFrame(data, schema=_spark_schema(data.schema))
    got = spark_session.table("arrow_t")
    assert got.schema == expected.schema
    assert sorted(map(tuple, got.collect()), key=repr) == sorted(
        map(tuple, expected.unionByName(expected.limit(1)).collect()), key=repr)
    adapter.close()


@pytest.mark.spark
def test_a_small_runs_query_rows_are_collected_and_written_by_pyarrow(tmp_path, spark_session, monkeypatch):
    """On a small run a query's table is one job (the rows collected as Arrow) and written here:
    the same rows and Spark types as Spark's own write; a type pyarrow would not write as Spark
    does (a decimal) and a large run go through Spark's writer."""
    from tessera.engine import spark as engine
    from tessera.engine.spark import SMALL_RUN_SETTINGS, SparkAdapter

    monkeypatch.setattr(engine, "SMALL_RUN_ROWS", 100)
    adapter = SparkAdapter(tmp_path / "spark", session=spark_session)
    own = dict(spark_session._tessera_own_settings)
    sc = spark_session.sparkContext._jsc.sc()

    def jobs():  # (once the listener has seen the jobs that ran)
        sc.listenerBus().waitUntilEmpty()
        return sc.statusStore().jobsList(None).size()

    def spark_files(name):
        return [p.name for p in (tmp_path / "spark" / "tables" / name).iterdir() if p.name.endswith(".snappy.parquet")]

    try:
        adapter.create_table("_tessera_raw_s_1", pa.table({"x": pa.array(range(80), pa.int64())}))
        adapter.fit_memory()  # a small run
        raw = adapter.table("_tessera_raw_s_1")
        query = raw.mutate(
            text=(raw.x % 7).cast("string"), half=raw.x / 2, odd=raw.x % 2 == 1, n32=raw.x.cast("int32"),
            small=(raw.x % 5).cast("int8"), day=ibis.date(2024, 1, 1) + raw.x.cast("int32").as_interval("D"),
            at=ibis.timestamp("2024-01-01 10:00:00") + raw.x.cast("int32").as_interval("h"),
            none=ibis.null("string"),
        ).filter(raw.x > 4)
        before = jobs()
        t = adapter.create_table("collected", query)
        assert jobs() == before + 1  # the collect; no write job
        assert not spark_files("collected")
        assert adapter.count(t) == 75
        adapter.append_query("collected", query.filter(query.x < 10))
        assert jobs() == before + 2 and not spark_files("collected")
        assert adapter.known_all_null("collected", "none") is True
        got = spark_session.table("collected")
        # the same table written by Spark itself
        monkeypatch.setattr(SparkAdapter, "collects_small_writes", False)
        adapter.create_table("written", query)
        adapter.append_query("written", query.filter(query.x < 10))
        assert spark_files("written")
        expected = spark_session.table("written")
        assert got.schema == expected.schema
        assert sorted(map(tuple, got.collect())) == sorted(map(tuple, expected.collect()))
        monkeypatch.setattr(SparkAdapter, "collects_small_writes", True)
        adapter.create_table("decimal", raw.mutate(d=raw.x.cast("decimal(10, 2)")))
        assert spark_files("decimal")
        adapter.create_table("_tessera_raw_s_2", pa.table({"x": pa.array(range(80), pa.int64())}))
        adapter.fit_memory()  # 160 rows: a large run
        adapter.create_table("large", query)
        assert spark_files("large")
    finally:
        for k, v in own.items():
            spark_session.conf.unset(k) if v is None else spark_session.conf.set(k, v)
        adapter.close()


@pytest.mark.spark
def test_a_published_name_reads_its_tables_registered_plan_without_listing_the_folder(tmp_path, spark_session,
                                                                                       monkeypatch):
    from tessera.engine.spark import SparkAdapter

    adapter = SparkAdapter(tmp_path / "spark", session=spark_session)
    adapter.create_table("pub_t", pa.table({"x": pa.array(range(5), pa.int64())}))
    adapter.create_table("typed_t", pa.table({"x": pa.array(range(3), pa.int64()),
                                              "_reason": pa.array([None] * 3, pa.string())}))

    read = SparkAdapter._read

    def no_read(self, name):
        assert name not in ("pub_t", "typed_t"), f"{name}: its folder read again"
        return read(self, name)

    with monkeypatch.context() as m:
        m.setattr(SparkAdapter, "_read", no_read)
        adapter.publish({"pub_v": "pub_t"})
        adapter.narrow_table("typed_t", "narrowed_t", ["x"], unless="_reason")  # (its schema known; renamed)
    assert spark_session.table("pub_v").count() == 5
    # the table replaced: the published name reads the new rows; dropped: still its own plan
    adapter.create_table("pub_t", pa.table({"x": pa.array(range(7), pa.int64())}))
    assert spark_session.table("pub_v").count() == 7
    spark_session.catalog.dropTempView("pub_t")
    assert spark_session.table("pub_v").count() == 7
    # a new adapter (a new process's) registers the published name from the folder
    again = SparkAdapter(tmp_path / "spark", session=spark_session)
    assert again.count(again.table("pub_v")) == 7 and spark_session.table("pub_v").count() == 7
    assert spark_session.table("narrowed_t").columns == ["x"]
    again.close()
    adapter.close()


@pytest.mark.spark
def test_a_registered_table_is_read_from_its_known_schema_as_ibis_would_ask_it(tmp_path, spark_session, monkeypatch):
    import datetime as dt

    from tessera.engine.spark import SparkAdapter

    adapter = SparkAdapter(tmp_path / "spark", session=spark_session)
    adapter.create_table("known_t", pa.table({
        "s": pa.array(["a"]), "n": pa.array([1], pa.int64()), "b": pa.array([1], pa.int8()),
        "f": pa.array([0.5]), "ok": pa.array([True]), "d": pa.array([dt.date(2024, 1, 1)]),
        "at": pa.array([dt.datetime(2024, 1, 1)], pa.timestamp("us"))}))
    asked = adapter.con.table("known_t")
    with monkeypatch.context() as m:
        m.setattr(type(adapter.con), "get_schema", lambda *a, **k: pytest.fail("the session asked"))
        known = adapter.table("known_t")
    assert known.op() == asked.op() and known.schema() == asked.schema()
    assert adapter.to_arrow(known).num_rows == 1
    adapter.publish({"known_v": "known_t"})
    assert adapter.table("known_v").schema() == asked.schema()  # (a published name: asked)
    adapter.close()
