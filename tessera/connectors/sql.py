"""Database connections: PostgreSQL (psycopg 3), MySQL/MariaDB (PyMySQL) and SQLite.

The functions take a connection whose secrets are revealed (``Workspace.connection(name)``).
"""

from __future__ import annotations

import sqlite3


def pg_connect(conn, *, autocommit: bool = False):
    """A psycopg connection to a ``postgresql`` connection."""
    import psycopg

    kwargs = {"host": conn.host, "port": conn.port, "dbname": conn.database, "user": conn.user,
              "connect_timeout": conn.connect_timeout, "autocommit": autocommit}
    if conn.password is not None:
        kwargs["password"] = conn.password
    if conn.sslmode:
        kwargs["sslmode"] = conn.sslmode
    return psycopg.connect(**kwargs)


def mysql_connect(conn, *, autocommit: bool = True):
    """A PyMySQL connection to a ``mysql``/``mariadb`` connection (LOAD DATA LOCAL allowed)."""
    import pymysql

    return pymysql.connect(host=conn.host, port=conn.port, user=conn.user, password=conn.password or "",
                           database=conn.database, connect_timeout=conn.connect_timeout, autocommit=autocommit,
                           local_infile=True, charset="utf8mb4")


def sqlite_connect(conn):
    return sqlite3.connect(conn.path)
