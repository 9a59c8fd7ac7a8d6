"""The test servers start and accept their password users (a wrong password is refused)."""

import psycopg
import pymysql
import pytest


def test_mariadb_user_and_wrong_password(mariadb_server, mariadb_db):
    with mariadb_server.connect(mariadb_db["database"]) as conn, conn.cursor() as cur:
        cur.execute("SELECT 1")
        assert cur.fetchone() == (1,)
    with pytest.raises(pymysql.err.OperationalError) as err:
        pymysql.connect(host="127.0.0.1", port=mariadb_server.port, user=mariadb_server.user, password="wrong")
    assert err.value.args[0] == 1045  # access denied


def test_postgres_password_role(postgres_app_db):
    dsn = {k: postgres_app_db[k] for k in ("host", "port", "user", "password")}
    with psycopg.connect(dbname=postgres_app_db["database"], **dsn) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(dbname=postgres_app_db["database"], **{**dsn, "password": "wrong"})
