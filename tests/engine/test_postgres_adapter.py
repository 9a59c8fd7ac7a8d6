"""The PostgreSQL engine adapter: tables, bulk loads, atomic publication, export, and the compiled
expressions (regular expressions, safe casts, case changes) giving DuckDB's values.

Every test but the pure-Python ones gets a fresh database from the session's PostgreSQL server
(``postgres_db_url``), so they run with ``--postgres`` only.
"""

from __future__ import annotations

import datetime as dt
import decimal
import itertools
import json
import time

import duckdb
import ibis
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

import tessera.engine.postgres as pg
from tessera.demo.generator import generate
from tessera.engine.duckdb import DuckDBAdapter
from tessera.engine.functions import postgres_regex, regex_replacement
from tessera.engine.postgres import PostgresAdapter, parse_url
from tessera.errors import EngineError, WorkspaceError
from tessera.workspace import Workspace

from test_demo_run import pair_scores  # noqa: E402


@pytest.fixture
def adapter(postgres_db_url):
    a = PostgresAdapter(postgres_db_url)
    yield a
    a.close()


def view_rows(a: PostgresAdapter, name: str) -> list[tuple]:
    return a.sql(f'SELECT * FROM "{name}" ORDER BY 1').fetchall()


# --------------------------------------------------------------------------- connection


def test_parse_url():
    assert parse_url("postgresql+psycopg://bob:p%40ss@db.example:6543/crm?sslmode=require") == {
        "host": "db.example", "port": 6543, "user": "bob", "password": "p@ss", "database": "crm",
        "sslmode": "require",
    }
    assert parse_url("postgresql://localhost/wh") == {"host": "localhost", "database": "wh"}
    with pytest.raises(WorkspaceError, match="not a PostgreSQL URL"):
        parse_url("mysql://localhost/wh")


def test_workspace_opens_the_postgres_warehouse(tmp_path, postgres_db_url):
    ws = Workspace.init(tmp_path / "ws", warehouse=postgres_db_url)
    assert isinstance(ws.adapter, PostgresAdapter)
    assert ws.status()["engine"] == "postgres"
    ws.close()


def test_unreachable_server_is_a_clear_error(tmp_path):
    from servers import free_port

    ws = Workspace.init(tmp_path / "ws")
    ws.settings["warehouse"] = f"postgresql://nobody@127.0.0.1:{free_port()}/nowhere"
    ws._adapter = None
    with pytest.raises(WorkspaceError, match="Cannot connect to the PostgreSQL warehouse"):
        ws.adapter  # noqa: B018
    ws.close()


# --------------------------------------------------------------------------- tables


def test_tables_round_trip_every_type(adapter):
    data = pa.table({
        "s": pa.array(["a", "", None, "x\x00y", 'é"\n,', "\\."]),
        "i": pa.array([1, None, -5, 2**62, 0, 7], pa.int64()),
        "f": pa.array([1.5, float("nan"), float("inf"), 0.1 + 0.2, None, 5e-324]),
        "b": pa.array([True, False, None, True, False, True]),
        "d": pa.array([dt.date(2024, 1, 1), None, dt.date(1, 1, 1), dt.date(9999, 12, 31), dt.date(2000, 2, 29), None]),
        "ts": pa.array([dt.datetime(2024, 1, 1, 10, 0, 0, 123456), None, dt.datetime(1970, 1, 1)] * 2,
                       pa.timestamp("us")),
        "dec": pa.array([decimal.Decimal("1.2345"), None, decimal.Decimal("-3"), decimal.Decimal("0"),
                         decimal.Decimal("99999999999999.9999"), None], pa.decimal128(18, 4)),
        "n": pa.nulls(6),
    })
    t = adapter.create_table("round_trip", data)
    back = adapter.to_arrow(t)
    assert back.column("s").to_pylist() == ["a", "", None, "xy", 'é"\n,', "\\."]  # NUL cannot be stored
    for name in ("i", "b", "d", "ts", "dec"):
        assert back.column(name).to_pylist() == data.column(name).to_pylist(), name
    f = back.column("f").to_pylist()
    assert f[0] == 1.5 and f[1] != f[1] and f[2] == float("inf") and f[3] == 0.1 + 0.2
    assert f[4] is None and f[5] == 5e-324
    assert back.column("n").to_pylist() == [None] * 6


def test_create_list_append_drop(adapter):
    adapter.create_table("t1", pa.table({"a": [1, 2]}))
    adapter.create_table("_tessera_r1_work", adapter.table("t1").mutate(b=ibis.literal("x")), temp=True)
    assert {"t1", "_tessera_r1_work"} <= set(adapter.list_tables())
    persistence = dict(adapter.sql(
        "SELECT relname, relpersistence FROM pg_class WHERE relname IN ('t1', '_tessera_r1_work')"
    ).fetchall())
    assert persistence == {"t1": "p", "_tessera_r1_work": "u"}  # work tables are UNLOGGED
    adapter.append("t1", pa.table({"a": [3]}))
    adapter.append("t_new", pa.table({"a": [9], "s": ["z"]}))  # created when missing
    assert adapter.count(adapter.table("t1")) == 3
    assert adapter.to_arrow(adapter.table("t_new")).to_pylist() == [{"a": 9, "s": "z"}]
    adapter.create_table("t1", pa.table({"c": ["replaced"]}))  # overwrite: the new columns
    assert adapter.table("t1").columns == ("c",)
    adapter.drop_table("t1")
    adapter.drop_table("t1")  # dropping twice is harmless
    assert not adapter.exists("t1")
    assert not [t for t in adapter.list_tables() if t.startswith("_tessera_building")]


def test_append_is_one_copy_not_inserts(adapter, monkeypatch):
    adapter.create_table("log", pa.table({"n": pa.array([], pa.int64()), "s": pa.array([], pa.string())}))
    statements = []
    real_sql = adapter.sql
    monkeypatch.setattr(adapter, "sql", lambda s, p=None: (statements.append(s), real_sql(s, p))[1])
    monkeypatch.setattr(pg, "COPY_ROWS", 1000)
    n = 25_000
    adapter.append("log", pa.table({"n": pa.array(range(n), pa.int64()), "s": pa.array([f"v{i}" for i in range(n)])}))
    assert not [s for s in statements if s.lstrip().upper().startswith("INSERT")]
    assert adapter.sql('SELECT count(*), sum(n), count(DISTINCT s) FROM "log"').fetchone() == (n, n * (n - 1) // 2, n)


def test_long_names_are_refused(adapter):
    with pytest.raises(EngineError, match="63"):
        adapter.create_table("_tessera_r1_" + "x" * 60, pa.table({"a": [1]}))


def test_text_sorts_by_bytes_like_duckdb(adapter):
    values = ["crm:10", "crm:9", "crm_contacts:1", "Crm:1", "éa", "eb", "a b", "a-b", "ab"]
    t = adapter.create_table("words", pa.table({"w": values}))
    assert adapter.to_arrow(t.order_by("w")).column("w").to_pylist() == sorted(values, key=lambda s: s.encode())
    assert adapter.execute(t.w.min()) == min(values, key=lambda s: s.encode())


# --------------------------------------------------------------------------- files


CSV = (
    "id;name;amount;day\n"
    "1;Élodie;10.5;2024-01-10\n"
    "2;\"Bon;Net\";;2024-02-30\n"
    "3;too;many;fields;here\n"
    "4;;abc;\n"
    "5;Zoé;-3;2023-12-31\n"
)


def test_import_file_bulk_loads_a_csv_with_rejects(tmp_path, adapter, monkeypatch):
    path = tmp_path / "crm.csv"
    path.write_text(CSV, encoding="utf-8")
    copies = []
    real_copy = adapter._copy
    monkeypatch.setattr(adapter, "_copy", lambda name, data: (copies.append(data.num_rows), real_copy(name, data))[1])
    options = {"header": True, "quote": '"', "delimiter": ";"}
    info = adapter.import_file(str(path), "csv", table="_tessera_raw_crm_1", options=options, decimal_comma=False,
                               batch=1, file_name="crm.csv")
    assert copies == [4]  # one COPY stream, no row-by-row insert
    assert (info.rows, info.rejected) == (4, 1)
    assert info.rejects.column("line").to_pylist() == [4]

    # the same rows, lines and types as the DuckDB warehouse gets from the same file
    duck = DuckDBAdapter(str(tmp_path / "w.duckdb"))
    dinfo = duck.import_file(str(path), "csv", table="_tessera_raw_crm_1", options=options, decimal_comma=False,
                             batch=1, file_name="crm.csv")
    assert (info.columns, info.types) == (dinfo.columns, dinfo.types)
    order = ["_tessera_line"]
    assert adapter.to_arrow(adapter.table("_tessera_raw_crm_1").order_by(order)).to_pylist() == \
        duck.to_arrow(duck.table("_tessera_raw_crm_1").order_by(order)).to_pylist()
    duck.close()


def test_big_file_streams_in_chunks(tmp_path, adapter, monkeypatch):
    n = 120_000
    path = tmp_path / "big.csv"
    with open(path, "w") as fh:
        fh.write("id,email,amount\n")
        for i in range(n):
            fh.write(f"{i},user{i}@example.com,{i % 997}.5\n")
    sizes = []
    real_write = pacsv.write_csv
    monkeypatch.setattr(pacsv, "write_csv", lambda t, *a, **k: (sizes.append(t.num_rows), real_write(t, *a, **k))[1])
    t0 = time.perf_counter()
    info = adapter.import_file(str(path), "csv", table="big", options={"header": True, "quote": '"'},
                               decimal_comma=False, batch=3, file_name="big.csv")
    seconds = time.perf_counter() - t0
    assert info.rows == n and info.rejected == 0
    assert sizes == [pg.COPY_ROWS, pg.COPY_ROWS, n - 2 * pg.COPY_ROWS]
    assert adapter.sql('SELECT count(*), count(DISTINCT email), max(_tessera_batch) FROM "big"').fetchone() == (n, n, 3)
    assert seconds < 30


# --------------------------------------------------------------------------- publication


def test_publish_points_views_and_the_catalog(adapter):
    adapter.create_table("t1", pa.table({"x": [1]}))
    adapter.create_table("t2", pa.table({"y": ["new"], "z": [2]}))
    adapter.publish({"a": "t1", "b": "t1"})
    assert adapter.published_target("a") == "t1"
    assert sorted(adapter.list_views()) == ["a", "b"]
    # the new run's table has other columns: the view is replaced all the same
    adapter.publish({"a": "t2"})
    assert view_rows(adapter, "a") == [("new", 2)]
    assert view_rows(adapter, "b") == [(1,)]
    assert adapter.published_target("a") == "t2" and adapter.published_target("missing") is None
    assert adapter.to_arrow(adapter.table("a")).to_pylist() == [{"y": "new", "z": 2}]


def test_failed_publish_leaves_the_previous_views(adapter):
    adapter.create_table("old", pa.table({"x": [1]}))
    adapter.create_table("new", pa.table({"x": [2]}))
    adapter.publish({"a": "old", "b": "old"})
    with pytest.raises(EngineError):
        adapter.publish({"a": "new", "b": "no_such_table"})
    assert view_rows(adapter, "a") == [(1,)] and view_rows(adapter, "b") == [(1,)]
    assert adapter.published_target("a") == "old"
    # and the connection is usable afterwards
    adapter.publish({"a": "new"})
    assert view_rows(adapter, "a") == [(2,)]


def test_readers_see_the_old_or_the_new_publication(adapter, postgres_db_url):
    import threading

    import psycopg

    adapter.create_table("v1", pa.table({"x": [1]}))
    adapter.create_table("v2", pa.table({"x": [2]}))
    adapter.publish({"a": "v1", "b": "v1"})
    seen = []
    kwargs = parse_url(postgres_db_url)
    kwargs["dbname"] = kwargs.pop("database")
    stop = threading.Event()

    def read():
        with psycopg.connect(**kwargs, autocommit=True) as con:
            while not stop.is_set():
                with con.transaction():
                    row = con.execute('SELECT (SELECT x FROM "a"), (SELECT x FROM "b")').fetchone()
                seen.append(row)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for i in range(20):
            adapter.publish({"a": f"v{2 - i % 2}", "b": f"v{2 - i % 2}"})
    finally:
        stop.set()
        reader.join()
    assert seen and all(a == b for a, b in seen)


# --------------------------------------------------------------------------- export


def test_export_csv_and_parquet(tmp_path, adapter):
    data = pa.table({
        "id": ["b", "a", "c"], "n": pa.array([2, None, 3], pa.int64()), "s": ["x,y", "", None],
        "d": pa.array([dt.date(2024, 1, 2), None, dt.date(2020, 5, 6)]),
        "ts": pa.array([dt.datetime(2024, 1, 1, 10, 0, 0, 5), None, dt.datetime(2024, 1, 1)]),
        "b": [True, None, False], "q": ['say "hi"', "two\nlines", " lead"],
        "dec": pa.array([decimal.Decimal("12"), None, decimal.Decimal("-0.5")], pa.decimal128(18, 4)),
    })
    t = adapter.create_table("exp", data)
    adapter.export(t.order_by("id"), str(tmp_path / "out.csv"), "csv")
    text = (tmp_path / "out.csv").read_text()
    assert text.splitlines()[:2] == ["id,n,s,d,ts,b,q,dec", 'a,,"",,,,"two']
    # the same bytes as the DuckDB warehouse writes
    duck = DuckDBAdapter(str(tmp_path / "w.duckdb"))
    duck.export(duck.create_table("exp", data).order_by("id"), str(tmp_path / "duck.csv"), "csv")
    assert text == (tmp_path / "duck.csv").read_text()
    duck.close()

    adapter.export(t.filter(t.n.notnull()), str(tmp_path / "out.parquet"), "parquet")
    back = pq.read_table(tmp_path / "out.parquet")
    assert sorted(back.column("id").to_pylist()) == ["b", "c"]
    assert back.schema.field("d").type == pa.date32()
    assert back.column("dec").to_pylist() == [decimal.Decimal("12.0000"), decimal.Decimal("-0.5000")]


# --------------------------------------------------------------------------- compiled expressions


def test_regex_translation():
    assert postgres_regex(r"^\d{2}\z") == r"^[0-9]{2}\Z"
    assert postgres_regex(r"[\s\x{00A0}\x0B]+") == r"[\t\n\f\r \u00A0\u000B]+"
    assert postgres_regex(r"a.b[.]\.") == r"a[^\n]b[.]\."
    assert postgres_regex(r"(?s)a.b") == r"a.b"
    assert postgres_regex(r"(?i)^x\b\S\W") == r"(?i)^x\y[^\t\n\f\r ][^0-9A-Za-z_]"
    assert postgres_regex(r"(?P<year>\d{4})-(?P<m>\d\d)") == r"([0-9]{4})-([0-9][0-9])"
    assert postgres_regex(r"[]a][^]b][[:alpha:]\d]") == r"[\]a][^\]b][[:alpha:]0-9]"
    assert regex_replacement(r"<\0|\1>", "postgres") == r"<\&|\1>"


@pytest.fixture
def evaluate(adapter):
    """``evaluate(values, build)``: ``build(column, adapter.dialect)`` over a text column, in input order."""
    counter = itertools.count()

    def run(values: list, build) -> list:
        name = f"cases_{next(counter)}"
        t = adapter.create_table(name, pa.table({"i": pa.array(range(len(values)), pa.int64()),
                                                 "s": pa.array(values, pa.string())}))
        return adapter.to_arrow(t.select(t.i, x=build(t.s, adapter.dialect)).order_by("i")).column("x").to_pylist()

    return run


# The normalization rules, e-mail checks and phone numbers run on PostgreSQL in the shared
# bodies of tests/normalize (the ``engine_eval`` fixture).


def test_regex_functions(evaluate):
    values = ["Ab1 x\ny", "", None, "zz"]
    assert evaluate(values, lambda c, b: c.re_search(r"^a.\d")) == [False, False, None, False]
    assert evaluate(values, lambda c, b: c.re_search(r"(?i)^a.\d")) == [True, False, None, False]
    assert evaluate(values, lambda c, b: c.re_search(r"x.y")) == [False, False, None, False]  # . stops at \n
    assert evaluate(values, lambda c, b: c.re_replace(r"[a-z]", "_")) == ["A_1 _\n_", "", None, "__"]
    assert evaluate(values, lambda c, b: c.re_extract(r"([A-Z])(\w)", 2)) == ["b", "", None, ""]
    assert evaluate(values, lambda c, b: c.re_extract(r"\d", 0)) == ["1", "", None, ""]
    replacement = regex_replacement(r"[\1\0]", "postgres")
    assert evaluate(["abc"], lambda c, b: c.re_replace(r"(?P<x>b)", replacement)) == ["a[bb]c"]
    assert evaluate(["a"], lambda c, b: c.hexdigest("md5")) == ["0cc175b9c0f1b6a831c399e269772661"]
    assert evaluate(["ÉLODIE ß"], lambda c, b: c.lower()) == ["élodie ß"]
    assert evaluate(["élodie ß"], lambda c, b: c.upper()) == ["ÉLODIE ẞ"]


TEXTS = ["12", " 12 ", "+5", "-0", "1.5", "2.5", "-1.5", "1e2", "1E+2", "1.5e1", "007", "", "abc", "1,5", ".5",
         "5.", "9223372036854775807", "9223372036854775808", "-9223372036854775808", "1e400", "1e-400", "inf",
         "-Infinity", "nan", "12345678901234.5", "123456789012345", "1.23456", "1.00005", "--1", "1 2", None]
DATES = ["2024-01-10", "2024-1-5", "2024/01/10", "2024.01.10", "2024-02-30", "2024-02-29", "2023-02-29",
         "2000-02-29", "1900-02-29", "2024-04-31", "2024-06-30", "2024-13-01", "2024-01/10", "20240110",
         "10/01/2024", "Jan 10 2024", "2024-01-10 10:00:00", "2024-01-10T10:00", "2024-01-10 10:00:00.123456",
         "2024-01-10 10:00:00.1234567", "2024-01-10 10:00:00Z", "2024-01-10 10:00:00+02:30",
         "2024-01-10 10:00:00 UTC", "2024-01-10 24:00:00", "2024-01-10 23:59:60", "2024-01-10 25:00:00",
         "2024-01-10 1:02:03", "1900-01-01", "0001-01-01", "", "x", None]


@pytest.mark.parametrize(
    "target,duck_type,texts",
    [("int64", "BIGINT", TEXTS), ("int32", "INTEGER", TEXTS), ("float64", "DOUBLE", TEXTS),
     ("decimal(18, 4)", "DECIMAL(18,4)", TEXTS), ("date", "DATE", DATES), ("timestamp", "TIMESTAMP", DATES)],
)
def test_try_cast_gives_duckdbs_values_and_never_raises(evaluate, target, duck_type, texts):
    got = evaluate(texts, lambda c, b: c.try_cast(target))
    con = duckdb.connect()
    expected = [con.execute(f"SELECT TRY_CAST(? AS {duck_type})", [t]).fetchone()[0] for t in texts]
    pairs = [(t, g, e) for t, g, e in zip(texts, got, expected)]
    # nan != nan; -0.0 == 0.0
    assert [(t, g) for t, g, e in pairs if not (g == e or (g != g and e != e))] == []
    # the same through an expression (evaluated once, in a sub-select)
    assert evaluate(texts, lambda c, b: (c + "").try_cast(target))[:3] == got[:3]


# --------------------------------------------------------------------------- a whole run


def test_demo_run_matches_the_truth_and_duckdb(tmp_path, postgres_db_url):
    info = generate(tmp_path / "company", size=400, seed=11)
    results = {}
    for engine in ("duckdb", postgres_db_url):
        ws = Workspace.init(tmp_path / f"ws{len(results)}", warehouse=engine)
        ws.apply(info.workspace_path)
        run = ws.run()
        if engine != "duckdb":
            precision, recall = pair_scores(ws, info)
            assert precision == 1.0 and recall >= 0.995
        tables = {}
        names = [*ws.datasets(), "contacts__records", "contacts__shared_values", "orders__records", "tessera_rejects"]
        for name in names:
            rows = ws.adapter.to_arrow(ws.table(name)).to_pylist()
            drop = {"_tessera_imported_at", "tessera_first_seen", "tessera_last_seen"}
            tables[name] = sorted(json.dumps({k: v for k, v in r.items() if k not in drop}, default=str, sort_keys=True)
                                  for r in rows)
        results[engine] = (run.datasets, tables)
        ws.close()
    (duck_counts, duck_tables), (pg_counts, pg_tables) = results.values()
    assert pg_counts == duck_counts
    for name in duck_tables:
        assert pg_tables[name] == duck_tables[name], name


def test_case_collation_is_found(adapter):
    assert adapter.con.compiler.case_collation is not None
    assert adapter.con.compiler.case_collation in pg._CASE_COLLATIONS
