"""Helpers of the database source tests: SQL on the fixture databases, workspaces reading them."""

from __future__ import annotations

from tessera.workspace import Workspace


def pg_run(settings: dict, *statements: str, params=None) -> list:
    """Run statements on the PostgreSQL database of a connection's settings (as its user)."""
    import psycopg

    rows: list = []
    with psycopg.connect(host=settings["host"], port=settings["port"], dbname=settings["database"],
                         user=settings["user"], password=settings["password"], autocommit=True) as con:
        for statement in statements:
            cur = con.execute(statement, params)
            if cur.description:
                rows = cur.fetchall()
    return rows


def my_run(settings: dict, *statements: str) -> list:
    """Run statements on the MariaDB database of a connection's settings."""
    import pymysql

    rows: list = []
    con = pymysql.connect(host=settings["host"], port=settings["port"], user=settings["user"],
                          password=settings["password"], database=settings["database"], autocommit=True,
                          charset="utf8mb4")
    try:
        with con.cursor() as cur:
            for statement in statements:
                cur.execute(statement)
                if cur.description:
                    rows = list(cur.fetchall())
    finally:
        con.close()
    return rows


def workspace_config(connection: dict, source: dict, columns: dict, name: str = "customers") -> dict:
    """One database connection ``crm``, one source and a ``contacts`` dataset."""
    return {
        "connections": [{"name": "crm", **connection}],
        "sources": [{"name": name, "connection": "crm", **source}],
        "datasets": [{"name": "contacts", "mappings": [{"source": name, "columns": columns}]}],
    }


def published(ws: Workspace, order_by: str = "customer_id") -> list[dict]:
    """The published contacts, sorted."""
    rows = ws.table("contacts").to_pyarrow().to_pylist()
    return sorted(rows, key=lambda r: (r[order_by] is None, r[order_by]))


def batches(ws: Workspace, source: str = "customers") -> list[dict]:
    return ws.store.list_imported_files(source)
