"""``check`` of PostgreSQL, MariaDB and SQLite connections against real servers and files, and the
diagnosis of each failure: unreachable, auth_refused, not_found, permission_denied, timeout, config."""

from __future__ import annotations

import socket
import sqlite3
import threading

import pytest
from pydantic import TypeAdapter

from tessera.config.models import ConnectionConfig, SourceConfig
from tessera.connectors import check_connection
from tessera.errors import ConnectionFailed

_CONN = TypeAdapter(ConnectionConfig)


def conn_of(settings: dict):
    return _CONN.validate_python({"name": "crm", **settings})


def table_source(table: str = "customers", **overrides) -> SourceConfig:
    return SourceConfig(**{"name": "customers", "connection": "crm", "table": table, "record_keys": ["id"],
                           "import_strategy": "full", **overrides})


def query_source(query: str, **overrides) -> SourceConfig:
    return SourceConfig(**{"name": "buyers", "connection": "crm", "query": query, "record_keys": ["id"],
                           "import_strategy": "full", **overrides})


def failure(settings: dict, sources=()) -> ConnectionFailed:
    with pytest.raises(ConnectionFailed) as err:
        check_connection(conn_of(settings), sources)
    return err.value


@pytest.fixture
def closed_port() -> int:
    from servers import free_port

    return free_port()


@pytest.fixture
def silent_port():
    """A port that accepts connections and never says a word (a server that hangs)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    accepted = []
    stop = threading.Event()

    def serve():
        sock.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(sock.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield sock.getsockname()[1]
    stop.set()
    thread.join(5)
    for c in accepted:
        c.close()
    sock.close()


# --------------------------------------------------------------------------- PostgreSQL


@pytest.fixture
def pg(postgres_app_db):
    import psycopg

    s = postgres_app_db
    with psycopg.connect(host=s["host"], port=s["port"], dbname=s["database"], user=s["user"],
                         password=s["password"], autocommit=True) as con:
        con.execute("CREATE TABLE customers (id bigint PRIMARY KEY, email text, updated_at timestamp)")
        con.execute("CREATE INDEX ON customers (updated_at)")
        con.execute("CREATE TABLE orders (id bigint, customer_id bigint, changed_at timestamp)")
    return postgres_app_db


def test_postgres_check_reports_what_it_verified(pg):
    lines = check_connection(conn_of(pg), [
        table_source(import_strategy="incremental", cursor="updated_at"),
        query_source("SELECT id, email FROM customers"),
        table_source("orders", name="orders", import_strategy="incremental", cursor="changed_at"),
    ])
    assert lines[0].startswith("connected to PostgreSQL 15") and f"database {pg['database']}" in lines[0]
    assert lines[1] == ("source customers: table public.customers is readable (3 columns); "
                        "cursor column updated_at found (indexed)")
    assert lines[2] == "source buyers: the query of source 'buyers' is readable (2 columns)"
    assert "no index" in lines[3] and 'CREATE INDEX ON "public"."orders" ("changed_at")' in lines[3]


def test_postgres_wrong_password(pg):
    err = failure({**pg, "password": "Wr0ng-pa55"})
    assert err.reason == "auth_refused"
    assert f"refused user '{pg['user']}'" in str(err)
    assert "Wr0ng-pa55" not in str(err) and pg["password"] not in str(err)


def test_postgres_closed_port(pg, closed_port):
    err = failure({**pg, "port": closed_port})
    assert err.reason == "unreachable"
    assert str(err) == (f"connection 'crm': cannot reach 127.0.0.1:{closed_port}: connection refused; "
                        "check host and port and that the server runs")


def test_postgres_unknown_host(pg):
    err = failure({**pg, "host": "no-such-host.invalid"})
    assert err.reason == "unreachable" and "no-such-host.invalid" in str(err)


def test_postgres_silent_server_times_out(pg, silent_port):
    err = failure({**pg, "port": silent_port, "connect_timeout": 1})
    assert err.reason == "timeout" and "connect_timeout" in str(err)


def test_postgres_missing_database_table_and_columns(pg):
    err = failure({**pg, "database": "no_such_db"})
    assert err.reason == "not_found" and "database 'no_such_db'" in str(err)
    err = failure(pg, [table_source("clients")])
    assert err.reason == "not_found"
    assert "public.clients does not exist" in str(err) and "customers, orders" in str(err)
    err = failure(pg, [table_source(import_strategy="incremental", cursor="modified")])
    assert err.reason == "not_found" and "'modified' (cursor)" in str(err) and "updated_at" in str(err)
    err = failure(pg, [table_source(record_keys=["customer_no"])])
    assert err.reason == "not_found" and "'customer_no' (record key)" in str(err)


def test_postgres_query_errors(pg):
    err = failure(pg, [query_source("SELEC id FROM customers")])
    assert err.reason == "config" and "fix the source's query" in str(err)
    err = failure(pg, [query_source("SELECT id FROM clients")])
    assert err.reason == "not_found" and "clients" in str(err)


def test_postgres_role_without_grant(pg, postgres_server):
    postgres_server.create_role("check_nogrant", "nogrant-pw")
    err = failure({**pg, "user": "check_nogrant", "password": "nogrant-pw"}, [table_source()])
    assert err.reason == "permission_denied"
    assert 'GRANT SELECT ON public.customers TO "check_nogrant"' in str(err)


# --------------------------------------------------------------------------- MariaDB


@pytest.fixture
def my(mariadb_db):
    import pymysql

    s = mariadb_db
    con = pymysql.connect(host=s["host"], port=s["port"], user=s["user"], password=s["password"],
                          database=s["database"], autocommit=True)
    with con.cursor() as cur:
        cur.execute("CREATE TABLE customers (id BIGINT PRIMARY KEY, email VARCHAR(50), updated_at DATETIME, "
                    "INDEX (updated_at))")
    con.close()
    return mariadb_db


def test_mariadb_check_reports_what_it_verified(my):
    lines = check_connection(conn_of(my), [table_source(import_strategy="incremental", cursor="updated_at"),
                                           query_source("SELECT id FROM customers")])
    assert lines[0].startswith("connected to MariaDB 10.") and f"database {my['database']}" in lines[0]
    assert lines[1] == (f"source customers: table {my['database']}.customers is readable (3 columns); "
                        "cursor column updated_at found (indexed)")
    assert lines[2] == "source buyers: the query of source 'buyers' is readable (1 columns)"


def test_mariadb_failures(my, mariadb_server, closed_port, silent_port):
    err = failure({**my, "password": "Wr0ng-pa55"})
    assert err.reason == "auth_refused" and "Wr0ng-pa55" not in str(err) and my["password"] not in str(err)
    err = failure({**my, "port": closed_port})
    assert err.reason == "unreachable" and f"cannot reach 127.0.0.1:{closed_port}: connection refused" in str(err)
    err = failure({**my, "port": silent_port, "connect_timeout": 1})
    assert err.reason == "timeout"
    err = failure({**my, "database": "no_such_db"})
    assert err.reason == "not_found" and "no_such_db" in str(err)
    err = failure(my, [table_source("clients")])
    assert err.reason == "not_found" and "clients does not exist" in str(err) and "customers" in str(err)
    err = failure(my, [query_source("SELEC 1")])
    assert err.reason == "config"
    mariadb_server.create_user("check_usage", "usage-pw", grants="USAGE ON *.*")
    err = failure({**my, "user": "check_usage", "password": "usage-pw"}, [table_source()])
    assert err.reason == "permission_denied"
    assert f"GRANT SELECT ON `{my['database']}`.* TO 'check_usage'@'%'" in str(err)


def test_mariadb_table_grant_missing(my, mariadb_server):
    """A user who may read another table of the database but not this one: the GRANT names the table."""
    with mariadb_server.root() as root, root.cursor() as cur:
        cur.execute(f"CREATE TABLE `{my['database']}`.other (id INT)")
        cur.execute("CREATE OR REPLACE USER 'check_other'@'%' IDENTIFIED BY 'other-pw'")
        cur.execute(f"GRANT SELECT ON `{my['database']}`.`other` TO 'check_other'@'%'")
    err = failure({**my, "user": "check_other", "password": "other-pw"}, [table_source()])
    assert err.reason == "permission_denied", str(err)
    assert f"GRANT SELECT ON `{my['database']}`.`customers` TO 'check_other'@'%'" in str(err)


# --------------------------------------------------------------------------- SQLite


def test_sqlite_check(tmp_path):
    path = tmp_path / "shop.db"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE customers (id INTEGER, email TEXT, updated_at DATETIME)")
    con.commit()
    con.close()
    settings = {"type": "sqlite", "path": str(path)}
    lines = check_connection(conn_of(settings), [table_source(import_strategy="incremental", cursor="updated_at")])
    assert lines[0].startswith("opened SQLite 3.") and str(path) in lines[0]
    assert lines[1].startswith("source customers: table customers is readable (3 columns)")
    err = failure(settings, [table_source("clients")])
    assert err.reason == "not_found" and "clients does not exist" in str(err) and "customers" in str(err)
    err = failure({"type": "sqlite", "path": str(tmp_path / "none.db")})
    assert err.reason == "not_found" and "none.db does not exist" in str(err)
    (tmp_path / "notes.txt").write_text("not a database, just text " * 100)
    err = failure({"type": "sqlite", "path": str(tmp_path / "notes.txt")})
    assert err.reason == "config" and "is not a SQLite database" in str(err)
