"""Database sources against real servers: PostgreSQL and MariaDB (started by the test session) and
SQLite files. Full and incremental imports, query sources, type mapping, and the diagnosis of
connection failures during a run."""

from __future__ import annotations

import sqlite3
from datetime import date, datetime
from decimal import Decimal

import pytest
from db_helpers import batches, my_run, pg_run, published

from tessera.config.models import PostgresConnectionConfig, SourceConfig
from tessera.errors import ConnectionFailed, SourceError
from tessera.sources import database as db
from tessera.sources.importer import raw_table

COLUMNS = {"customer_id": "id", "email": "email", "name": "name", "score": "score", "vip": "vip",
           "birth": "birth", "visits": "visits", "updated_at": "updated_at"}

PG_TABLE = """
CREATE TABLE customers (
    id bigint PRIMARY KEY, email text, name text, score numeric(10,2), vip boolean, birth date,
    visits integer, ratio double precision, created_at timestamptz, updated_at timestamp NOT NULL
);
CREATE INDEX customers_updated_at ON customers (updated_at);
INSERT INTO customers VALUES
 (1, 'ana@example.com',  'Ana Müller',  10.50, true,  '1980-02-29', 3,    0.5,  '2024-03-01 08:00:00+01', '2025-01-01 10:00:00'),
 (2, 'bo@example.com',   'Bō Chén 陈',   0.00, false, '1975-12-31', NULL, NULL, '2024-03-02 09:30:00+00', '2025-01-01 11:00:00'),
 (3, 'cy@example.com',   NULL,         NULL,  NULL,  NULL,         7,    1e20, NULL,                     '2025-01-01 12:00:00'),
 (4, 'dee@example.com',  'Dee O''Neil', 99.99, true,  '2000-01-01', 0,    -2.25,'2024-03-04 23:59:59+00', '2025-01-01 13:30:00'),
 (5, 'eve@example.com',  'Ève',        -5.25, false, '1990-06-15', 12,   3,    '2024-03-05 00:00:00+00', '2025-01-01 14:00:00');
"""


def pg_source(**overrides) -> dict:
    return {"table": "customers", "record_keys": ["id"], "import_strategy": "full", **overrides}


def incremental(**overrides) -> dict:
    return pg_source(**{"import_strategy": "incremental", "cursor": "updated_at", "lookback": "1h", **overrides})


# --------------------------------------------------------------------------- PostgreSQL


def test_postgres_full_import_types_and_rerun(tmp_path, postgres_app_db, db_workspace):
    pg_run(postgres_app_db, PG_TABLE)
    ws = db_workspace(postgres_app_db, pg_source(), COLUMNS)
    result = ws.run()
    assert result.sources["customers"]["files_new"] == 1
    assert result.sources["customers"]["rows_read"] == 5
    schema = dict(ws.store.get_source_schema("customers"))
    assert schema == {"id": "integer", "email": "string", "name": "string", "score": "decimal", "vip": "boolean",
                      "birth": "date", "visits": "integer", "ratio": "float", "created_at": "timestamp",
                      "updated_at": "timestamp"}
    rows = published(ws)
    assert [r["customer_id"] for r in rows] == ["1", "2", "3", "4", "5"]  # record keys stay text
    ana, bo, cy, dee, eve = rows
    assert ana["name"] == "Ana Müller" and bo["name"] == "Bō Chén 陈" and dee["name"] == "Dee O'Neil"
    assert ana["score"] == Decimal("10.5") and eve["score"] == Decimal("-5.25") and cy["score"] is None
    assert ana["vip"] is True and bo["vip"] is False and cy["vip"] is None
    assert ana["birth"] == date(1980, 2, 29) and cy["birth"] is None
    assert ana["visits"] == 3 and bo["visits"] is None
    assert ana["updated_at"] == datetime(2025, 1, 1, 10, 0)
    # the raw batch keeps the text, with the timestamptz in UTC
    raw = ws.adapter.to_arrow(ws.adapter.table(raw_table("customers", batches(ws)[0]["batch_id"]))).to_pylist()
    first = next(r for r in raw if r["id"] == "1")
    assert first["created_at"] == "2024-03-01 07:00:00"
    assert first["_tessera_file"] == "postgresql:public.customers"
    assert sorted(r["_tessera_line"] for r in raw) == [1, 2, 3, 4, 5]

    # the same data again: nothing recorded, the published dataset is the same
    again = ws.run()
    assert again.sources["customers"]["files_new"] == 0
    assert again.sources["customers"]["files_skipped"] == 1
    assert len(batches(ws)) == 1
    assert published(ws) == rows
    assert not [t for t in ws.adapter.list_tables() if t.startswith("_tessera_raw_customers_")
                and t != raw_table("customers", batches(ws)[0]["batch_id"])]

    # a change: a full batch again, with every row
    pg_run(postgres_app_db, "UPDATE customers SET email = 'ana@new.example' WHERE id = 1",
           "DELETE FROM customers WHERE id = 5")
    ws.run()
    assert [b["rows"] for b in batches(ws)] == [5, 4]
    rows = published(ws)
    assert [r["customer_id"] for r in rows] == ["1", "2", "3", "4"]
    assert rows[0]["email"] == "ana@new.example"


def test_postgres_incremental_reads_new_and_changed_rows_only(tmp_path, postgres_app_db, db_workspace):
    pg_run(postgres_app_db, PG_TABLE)
    ws = db_workspace(postgres_app_db, incremental(), COLUMNS)
    ws.run()
    assert [b["rows"] for b in batches(ws)] == [5]
    state = ws.store.get_state("cursor", "customers")
    assert state["value"] == "2025-01-01 14:00:00" and state["type"] == "timestamp"

    # nothing changed: the look-back window re-reads rows 4 and 5, which add nothing
    again = ws.run()
    assert again.sources["customers"]["files_new"] == 0
    assert len(batches(ws)) == 1

    # one updated row, one new row
    pg_run(postgres_app_db,
           "UPDATE customers SET email = 'ana@new.example', updated_at = '2025-01-01 14:30:00' WHERE id = 1",
           "INSERT INTO customers (id, email, name, updated_at) VALUES (6, 'fay@example.com', 'Fay', '2025-01-01 14:45:00')")
    result = ws.run()
    assert result.sources["customers"]["files_new"] == 1
    last = batches(ws)[-1]
    assert last["rows"] == 2
    raw = ws.adapter.to_arrow(ws.adapter.table(raw_table("customers", last["batch_id"]))).to_pylist()
    assert sorted(r["id"] for r in raw) == ["1", "6"]
    assert {r["_tessera_batch"] for r in raw} == {last["batch_id"]}
    rows = published(ws)
    assert [r["customer_id"] for r in rows] == ["1", "2", "3", "4", "5", "6"]
    assert rows[0]["email"] == "ana@new.example" and rows[5]["name"] == "Fay"
    assert rows[1]["name"] == "Bō Chén 陈"  # rows of older batches stay
    assert ws.store.get_state("cursor", "customers")["value"] == "2025-01-01 14:45:00"

    # a row changed inside the look-back window without a new cursor value is caught too
    pg_run(postgres_app_db, "UPDATE customers SET visits = 99 WHERE id = 6")
    ws.run()
    assert batches(ws)[-1]["rows"] == 1
    assert next(r for r in published(ws) if r["customer_id"] == "6")["visits"] == 99


def test_postgres_incremental_condition_runs_in_the_database(postgres_app_db):
    """The cursor condition is part of the SELECT PostgreSQL runs, and uses the cursor's index."""
    pg_run(postgres_app_db, PG_TABLE,
           "INSERT INTO customers (id, updated_at) SELECT g, timestamp '2020-01-01' + g * interval '1 minute' "
           "FROM generate_series(100, 50000) g", "ANALYZE customers")
    conn = PostgresConnectionConfig(name="crm", **postgres_app_db)
    src = SourceConfig(name="customers", connection="crm", **incremental())
    bound = db.bound_value(src, {"value": "2025-01-01 14:00:00", "type": "timestamp", "native": "TIMESTAMP"})
    assert bound.value == "2025-01-01 13:00:00"
    sql = db.sqlconn.source_select(conn, src, db.cursor_condition(conn, bound))
    assert sql == 'SELECT * FROM "public"."customers" WHERE "updated_at" >= \'2025-01-01 13:00:00\''
    plan = "\n".join(r[0] for r in pg_run(postgres_app_db, f"EXPLAIN {sql}"))
    assert "customers_updated_at" in plan and "Seq Scan" not in plan


def test_postgres_query_source(tmp_path, postgres_app_db, db_workspace):
    pg_run(postgres_app_db, PG_TABLE,
           "CREATE TABLE orders (id int, customer_id bigint, total numeric(12,2))",
           "INSERT INTO orders VALUES (1, 1, 10), (2, 1, 5.5), (3, 4, 100)")
    query = ("SELECT c.id, c.email, sum(o.total) AS spent, count(o.id) AS orders "
             "FROM customers c LEFT JOIN orders o ON o.customer_id = c.id GROUP BY c.id, c.email")
    ws = db_workspace(postgres_app_db,
                                   {"query": query, "record_keys": ["id"], "import_strategy": "full"},
                                   {"customer_id": "id", "email": "email", "spent": "spent", "orders": "orders"})
    ws.run()
    assert batches(ws)[0]["path"] == "query"
    assert dict(ws.store.get_source_schema("customers"))["orders"] == "integer"
    rows = {r["customer_id"]: r for r in published(ws)}
    assert rows["1"]["spent"] == Decimal("15.5") and rows["1"]["orders"] == 2
    assert rows["2"]["spent"] is None and rows["2"]["orders"] == 0


def test_postgres_incremental_query_source_with_numeric_cursor(tmp_path, postgres_app_db, db_workspace):
    pg_run(postgres_app_db, "CREATE TABLE events (seq bigint, email text)",
           "INSERT INTO events SELECT g, 'u' || g || '@example.com' FROM generate_series(1, 10) g")
    source = {"query": "SELECT seq, email FROM events WHERE email IS NOT NULL", "record_keys": ["seq"],
              "import_strategy": "incremental", "cursor": "seq", "lookback": 3}
    ws = db_workspace(postgres_app_db, source, {"customer_id": "seq", "email": "email"})
    ws.import_sources(["customers"])
    pg_run(postgres_app_db, "INSERT INTO events VALUES (11, 'new@example.com')")
    counts = ws.import_sources(["customers"])
    assert counts["customers"]["files_new"] == 1 and counts["customers"]["rows_read"] == 1
    assert ws.store.get_state("cursor", "customers")["value"] == "11"
    ws.run(import_files=False)
    assert len(published(ws)) == 11


def test_import_sources_by_name(tmp_path, postgres_app_db, db_workspace):
    pg_run(postgres_app_db, PG_TABLE)
    ws = db_workspace(postgres_app_db, pg_source(), COLUMNS)
    counts = ws.import_sources(["customers"])
    assert counts == {"customers": {"files_new": 1, "files_skipped": 0, "rows_read": 5, "rejected_on_read": 0}}
    assert ws.import_sources(["customers"])["customers"]["files_skipped"] == 1
    ws.run(import_files=False)
    assert len(published(ws)) == 5


def test_postgres_source_on_every_engine(tmp_path, postgres_app_db, engine, db_workspace):
    """Full and incremental imports on the DuckDB, Spark and PostgreSQL warehouses."""
    pg_run(postgres_app_db, PG_TABLE)
    warehouse = None if engine == "duckdb" else engine
    ws = db_workspace(postgres_app_db, incremental(), COLUMNS, warehouse=warehouse)
    ws.run()
    pg_run(postgres_app_db, "UPDATE customers SET score = 1, updated_at = '2025-01-02 00:00:00' WHERE id = 2",
           "INSERT INTO customers (id, email, vip, updated_at) VALUES (6, 'fay@example.com', true, '2025-01-02 00:00:01')")
    ws.run()
    assert [b["rows"] for b in batches(ws)] == [5, 2]
    rows = published(ws)
    assert [r["customer_id"] for r in rows] == ["1", "2", "3", "4", "5", "6"]
    assert rows[1]["score"] == Decimal("1") and rows[5]["vip"] is True
    assert rows[0]["birth"] == date(1980, 2, 29) and rows[0]["name"] == "Ana Müller"
    assert ws.run().sources["customers"]["files_new"] == 0


# --------------------------------------------------------------------------- failures


def _fails(ws) -> ConnectionFailed:
    with pytest.raises(ConnectionFailed) as err:
        ws.run()
    return err.value


def test_postgres_wrong_password_is_auth_refused(tmp_path, postgres_app_db, db_workspace):
    settings = {**postgres_app_db, "password": "Wr0ng-s3cret"}
    err = _fails(db_workspace(settings, pg_source(), COLUMNS))
    assert err.reason == "auth_refused"
    assert "Source 'customers'" in str(err) and f"user '{settings['user']}'" in str(err)
    assert "Wr0ng-s3cret" not in str(err) and "app-secret" not in str(err)


def test_postgres_wrong_port_is_unreachable(tmp_path, postgres_app_db, db_workspace):
    from servers import free_port

    port = free_port()
    err = _fails(db_workspace({**postgres_app_db, "port": port}, pg_source(), COLUMNS))
    assert err.reason == "unreachable"
    assert f"cannot reach 127.0.0.1:{port}: connection refused" in str(err)


def test_postgres_missing_table_is_not_found(tmp_path, postgres_app_db, db_workspace):
    pg_run(postgres_app_db, PG_TABLE)
    err = _fails(db_workspace(postgres_app_db, pg_source(table="clients"), COLUMNS))
    assert err.reason == "not_found"
    assert "public.clients" in str(err) and "customers" in str(err)  # names the missing and the existing tables


def test_postgres_role_without_select_is_permission_denied(tmp_path, postgres_server, postgres_app_db, db_workspace):
    pg_run(postgres_app_db, PG_TABLE)
    postgres_server.create_role("reader_nogrant", "reader-pw")
    settings = {**postgres_app_db, "user": "reader_nogrant", "password": "reader-pw"}
    err = _fails(db_workspace(settings, pg_source(), COLUMNS))
    assert err.reason == "permission_denied"
    assert 'GRANT SELECT ON public.customers TO "reader_nogrant"' in str(err)


def test_failed_import_records_nothing_and_leaves_no_table(tmp_path, postgres_app_db, db_workspace):
    pg_run(postgres_app_db, PG_TABLE)
    ws = db_workspace(postgres_app_db, pg_source(record_keys=["customer_no"]), COLUMNS)
    with pytest.raises(SourceError, match="customer_no"):
        ws.import_sources(["customers"])
    assert batches(ws) == []
    assert not [t for t in ws.adapter.list_tables() if t.startswith("_tessera_raw_")]


def test_lookback_must_fit_the_cursor(tmp_path, postgres_app_db, db_workspace):
    pg_run(postgres_app_db, PG_TABLE)
    ws = db_workspace(postgres_app_db, incremental(lookback=10), COLUMNS)
    ws.import_sources(["customers"])  # the first import reads everything
    with pytest.raises(SourceError, match=r"lookback 10 is a number but cursor 'updated_at' is a timestamp"):
        ws.import_sources(["customers"])


# --------------------------------------------------------------------------- MariaDB

MY_TABLE = """
CREATE TABLE customers (
    id BIGINT PRIMARY KEY, email VARCHAR(100), name VARCHAR(100), score DECIMAL(10,2), vip TINYINT(1),
    birth DATE, visits INT, updated_at DATETIME NOT NULL, INDEX (updated_at)
) CHARACTER SET utf8mb4
"""
MY_ROWS = """
INSERT INTO customers VALUES
 (1, 'ana@example.com', 'Ana Müller', 10.50, 1, '1980-02-29', 3, '2025-01-01 10:00:00'),
 (2, 'bo@example.com', 'Bō Chén 陈', 0.00, 0, '1975-12-31', NULL, '2025-01-01 11:00:00'),
 (3, 'cy@example.com', NULL, NULL, NULL, NULL, 7, '2025-01-01 12:00:00'),
 (4, 'dee@example.com', 'Dee O''Neil', 99.99, 1, '2000-01-01', 0, '2025-01-01 13:30:00'),
 (5, 'eve@example.com', 'Ève', -5.25, 0, '1990-06-15', 12, '2025-01-01 14:00:00')
"""


def test_mariadb_full_and_incremental(tmp_path, mariadb_db, db_workspace):
    my_run(mariadb_db, MY_TABLE, MY_ROWS)
    ws = db_workspace(mariadb_db, incremental(), COLUMNS)
    ws.run()
    assert dict(ws.store.get_source_schema("customers")) == {
        "id": "integer", "email": "string", "name": "string", "score": "decimal", "vip": "boolean",
        "birth": "date", "visits": "integer", "updated_at": "timestamp"}
    assert batches(ws)[0]["path"] == f"mariadb:{mariadb_db['database']}.customers"
    rows = published(ws)
    assert rows[0]["name"] == "Ana Müller" and rows[1]["name"] == "Bō Chén 陈" and rows[3]["name"] == "Dee O'Neil"
    assert rows[0]["score"] == Decimal("10.5") and rows[0]["vip"] is True and rows[2]["vip"] is None
    assert rows[0]["birth"] == date(1980, 2, 29) and rows[0]["updated_at"] == datetime(2025, 1, 1, 10)

    assert ws.run().sources["customers"]["files_new"] == 0
    my_run(mariadb_db, "UPDATE customers SET email = 'ana@new.example', updated_at = '2025-01-01 14:30:00' WHERE id = 1",
           "INSERT INTO customers (id, email, updated_at) VALUES (6, 'fay@example.com', '2025-01-01 14:45:00')")
    ws.run()
    assert [b["rows"] for b in batches(ws)] == [5, 2]
    rows = published(ws)
    assert len(rows) == 6 and rows[0]["email"] == "ana@new.example"


def test_mariadb_query_source_full(tmp_path, mariadb_db, db_workspace):
    my_run(mariadb_db, MY_TABLE, MY_ROWS)
    source = {"query": "SELECT id, UPPER(email) AS email, score * 2 AS score FROM customers WHERE vip = 1",
              "record_keys": ["id"], "import_strategy": "full"}
    ws = db_workspace(mariadb_db, source,
                                   {"customer_id": "id", "email": "email", "score": "score"})
    ws.run()
    rows = published(ws)
    assert [(r["customer_id"], r["email"], r["score"]) for r in rows] == [
        ("1", "ANA@EXAMPLE.COM", Decimal("21")), ("4", "DEE@EXAMPLE.COM", Decimal("199.98"))]
    assert ws.run().sources["customers"]["files_skipped"] == 1


def test_mariadb_zero_dates_json_and_other_types(tmp_path, mariadb_db, db_workspace):
    my_run(mariadb_db, "SET SESSION sql_mode = ''",
           "CREATE TABLE customers (id INT PRIMARY KEY, seen DATETIME, born DATE, prefs JSON, tier ENUM('gold', 'silver'), "
           "opens TIME, since YEAR, active BIT(1), note TEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin)",
           "INSERT INTO customers VALUES (1, '0000-00-00 00:00:00', '2020-00-00', '{\"lang\": \"fr\"}', 'gold', "
           "'09:30:00', 2024, 1, 'Café ☕'), (2, '2024-05-01 10:00:00', '2024-05-01', NULL, NULL, NULL, NULL, 0, NULL)")
    columns = {"customer_id": "id", "seen": "seen", "born": "born", "prefs": "prefs", "tier": "tier",
               "opens": "opens", "since": "since", "active": "active", "note": "note"}
    ws = db_workspace(mariadb_db, pg_source(), columns)
    ws.run()
    first, second = published(ws)
    assert first["seen"] is None and first["born"] is None  # MySQL's zero dates are no date
    assert second["seen"] == datetime(2024, 5, 1, 10) and second["born"] == date(2024, 5, 1)
    assert first["prefs"] == '{"lang": "fr"}' and first["tier"] == "gold" and first["note"] == "Café ☕"
    assert first["opens"] == "09:30:00" and first["since"] == 2024
    assert first["active"] is True and second["active"] is False


def test_mariadb_failures(tmp_path, mariadb_server, mariadb_db, db_workspace):
    from servers import free_port

    my_run(mariadb_db, MY_TABLE, MY_ROWS)
    cases = [
        ({"password": "Wr0ng-s3cret"}, pg_source(), "auth_refused"),
        ({"port": free_port()}, pg_source(), "unreachable"),
        ({}, pg_source(table="clients"), "not_found"),
    ]
    mariadb_server.create_user("usage_only", "usage-pw", grants="USAGE ON *.*")
    cases.append(({"user": "usage_only", "password": "usage-pw"}, pg_source(), "permission_denied"))
    for i, (overrides, source, reason) in enumerate(cases):
        ws = db_workspace({**mariadb_db, **overrides}, source, COLUMNS, path=tmp_path / f"ws{i}")
        err = _fails(ws)
        assert err.reason == reason, str(err)
        assert "Wr0ng-s3cret" not in str(err) and mariadb_db["password"] not in str(err)
        if reason == "permission_denied":
            assert f"GRANT SELECT ON `{mariadb_db['database']}`.* TO 'usage_only'@'%'" in str(err)
        if reason == "not_found":
            assert "clients" in str(err)


# --------------------------------------------------------------------------- SQLite


def _sqlite_file(path) -> str:
    con = sqlite3.connect(path)
    con.executescript("""
        CREATE TABLE customers (id INTEGER PRIMARY KEY, email TEXT, name VARCHAR(50), score NUMERIC(10,2),
                                vip BOOLEAN, birth DATE, visits INT, updated_at DATETIME);
        CREATE INDEX ix_updated ON customers (updated_at);
        INSERT INTO customers VALUES
          (1, 'ana@example.com', 'Ana Müller', 10.5, 1, '1980-02-29', 3, '2025-01-01T10:00:00'),
          (2, 'bo@example.com', 'Bō Chén 陈', 0, 0, '1975-12-31', NULL, '2025-01-01T11:00:00'),
          (3, 'cy@example.com', NULL, 'n/a', NULL, NULL, 7, '2025-01-01T12:00:00');
    """)
    con.commit()
    con.close()
    return str(path)


def test_sqlite_full_and_incremental(tmp_path, db_workspace):
    path = _sqlite_file(tmp_path / "shop.db")
    ws = db_workspace({"type": "sqlite", "path": path}, incremental(), COLUMNS)
    ws.run()
    schema = dict(ws.store.get_source_schema("customers"))
    assert schema["vip"] == "boolean" and schema["score"] == "decimal" and schema["updated_at"] == "timestamp"
    rows = published(ws)
    assert [r["customer_id"] for r in rows] == ["1", "2"]  # row 3 is rejected: 'n/a' is not a decimal
    assert rows[0]["vip"] is True and rows[0]["score"] == Decimal("10.5") and rows[1]["name"] == "Bō Chén 陈"
    assert ws.table("tessera_rejects").to_pyarrow().to_pylist()[0]["reason"] == "value 'n/a' is not a valid decimal"
    assert ws.store.get_state("cursor", "customers")["separator"] == "T"

    con = sqlite3.connect(path)
    con.execute("UPDATE customers SET score = 1 WHERE id = 3")
    con.execute("INSERT INTO customers (id, email, updated_at) VALUES (4, 'dee@example.com', '2025-01-01T12:30:00')")
    con.commit()
    con.close()
    ws.run()
    assert [b["rows"] for b in batches(ws)] == [3, 2]
    assert [r["customer_id"] for r in published(ws)] == ["1", "2", "3", "4"]


def test_sqlite_missing_file_is_not_found(tmp_path, db_workspace):
    ws = db_workspace({"type": "sqlite", "path": str(tmp_path / "none.db")},
                                   pg_source(), COLUMNS)
    err = _fails(ws)
    assert err.reason == "not_found" and "none.db" in str(err)


# --------------------------------------------------------------------------- driver fallback


def test_driver_reader_gives_the_same_batches(tmp_path, postgres_app_db, mariadb_db, monkeypatch, db_workspace):
    """Without the scanner extension, the drivers read the same rows into the same text."""
    pg_run(postgres_app_db, PG_TABLE)
    my_run(mariadb_db, MY_TABLE, MY_ROWS)
    sqlite_path = _sqlite_file(tmp_path / "shop.db")
    for name, settings in (("pg", postgres_app_db), ("my", mariadb_db), ("lite", {"type": "sqlite", "path": sqlite_path})):
        raws = []
        for reader in ("scanner", "driver"):
            monkeypatch.setenv("TESSERA_DB_READER", reader)
            ws = db_workspace(settings, incremental(), COLUMNS, path=tmp_path / f"{name}_{reader}")
            ws.import_sources(["customers"])
            files = batches(ws)
            table = ws.adapter.table(raw_table("customers", files[0]["batch_id"]))
            raws.append((sorted(ws.adapter.to_arrow(table.drop("_tessera_line")).to_pylist(), key=lambda r: r["id"]),
                         files[0]["sha256"], ws.store.get_source_schema("customers")))
            assert ws.import_sources(["customers"])["customers"]["files_new"] == 0
        (scan_rows, scan_digest, scan_schema), (drv_rows, drv_digest, drv_schema) = raws
        assert len(scan_rows) == len(drv_rows) > 0, name
        if name != "pg":  # psycopg's cursor description gives no DuckDB types: the schema may differ there
            assert drv_schema == scan_schema, name
        for a, b in zip(scan_rows, drv_rows):
            assert {k: v for k, v in a.items() if k != "_tessera_batch"} == \
                   {k: v for k, v in b.items() if k != "_tessera_batch"}, name
