"""DuckDB's database scanners: the SQL that reads a PostgreSQL, MySQL/MariaDB or SQLite database
(or Arrow batches) on a DuckDB connection, for :mod:`tessera.sources.database`.

The connection comes from :meth:`tessera.engine.base.EngineAdapter.scanner` (the warehouse's own
on DuckDB, an embedded one elsewhere) and the rows go into the warehouse with
:meth:`~tessera.engine.base.EngineAdapter.load_select`. A database is ATTACHed READ_ONLY under a
name of its own; its password goes into a temporary DuckDB secret, which ``duckdb_secrets()``
redacts, not into the ATTACH string.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import duckdb
import pyarrow as pa

from tessera.engine.base import q

EXTENSIONS = {"postgresql": "postgres_scanner", "mysql": "mysql_scanner", "sqlite": "sqlite_scanner"}
_QUERY_FUNCTIONS = {"postgresql": "postgres_query", "mysql": "mysql_query", "sqlite": "sqlite_query"}


class ExtensionUnavailable(Exception):
    """A DuckDB scanner extension cannot be loaded here."""


def literal(text: str) -> str:
    """A DuckDB string literal."""
    return "'" + text.replace("'", "''") + "'"


def load_extension(dcon: duckdb.DuckDBPyConnection, name: str) -> None:
    """LOAD a scanner extension from its PyPI wheel (``duckdb-extension-<name>``): nothing is downloaded."""
    spec = importlib.util.find_spec(f"duckdb_extension_{name}")
    if spec is None or not spec.submodule_search_locations:
        raise ExtensionUnavailable(f"the package duckdb-extension-{name.replace('_', '-')} is not installed")
    version = dcon.execute("PRAGMA version").fetchone()[0]
    path = Path(list(spec.submodule_search_locations)[0]) / "extensions" / version / f"{name}.duckdb_extension"
    if not path.is_file():
        raise ExtensionUnavailable(f"{path.name} has no build for DuckDB {version}")
    try:
        dcon.execute(f"LOAD {literal(str(path))}")
    except duckdb.Error as exc:
        raise ExtensionUnavailable(str(exc)) from exc


def attach(dcon: duckdb.DuckDBPyConnection, kind: str, alias: str, secret: str, *, host: str | None = None,
           port: int | None = None, database: str | None = None, user: str | None = None,
           password: str | None = None, connect_timeout: int | None = None, sslmode: str | None = None,
           path: str | None = None) -> None:
    """ATTACH a ``postgresql``, ``mysql`` or ``sqlite`` database READ_ONLY as ``alias`` (its
    scanner extension loaded first; the password in the temporary secret ``secret``)."""
    load_extension(dcon, EXTENSIONS[kind])
    if kind in ("postgresql", "mysql"):
        dcon.execute(
            f"CREATE OR REPLACE TEMPORARY SECRET {secret} (TYPE {'postgres' if kind == 'postgresql' else 'mysql'}, "
            f"HOST {literal(host or '')}, PORT {int(port or 0)}, DATABASE {literal(database or '')}, "
            f"USER {literal(user or '')}, PASSWORD {literal(password or '')})")
    if kind == "postgresql":
        options = f"connect_timeout={int(connect_timeout or 10)}" + (f" sslmode={sslmode}" if sslmode else "")
        dcon.execute(f"ATTACH {literal(options)} AS {alias} (TYPE postgres, SECRET {secret}, READ_ONLY)")
    elif kind == "mysql":
        dcon.execute("SET mysql_session_time_zone = '+00:00'")  # TIMESTAMP columns in UTC
        dcon.execute("SET mysql_incomplete_dates_as_nulls = true")  # '0000-00-00' is no date
        dcon.execute(f"ATTACH '' AS {alias} (TYPE mysql, SECRET {secret}, READ_ONLY)")
    else:
        dcon.execute("SET sqlite_all_varchar = true")  # SQLite values need not match their declared type
        dcon.execute(f"ATTACH {literal(str(path))} AS {alias} (TYPE sqlite, READ_ONLY)")


def detach(dcon: duckdb.DuckDBPyConnection, kind: str, alias: str, secret: str, *, attached: bool) -> None:
    """Undo :func:`attach` (whatever part of it was done)."""
    for statement in (f"DETACH DATABASE IF EXISTS {alias}" if attached else None,
                      f"DROP TEMPORARY SECRET IF EXISTS {secret}" if kind != "sqlite" else None,
                      "RESET sqlite_all_varchar" if kind == "sqlite" else None,
                      "RESET mysql_session_time_zone" if kind == "mysql" else None,
                      "RESET mysql_incomplete_dates_as_nulls" if kind == "mysql" else None):
        if statement:
            try:
                dcon.execute(statement)
            except duckdb.Error:
                pass


def query_from(kind: str, alias: str, sql: str) -> str:
    """The FROM item that runs ``sql``, in the database's own dialect, in the attached database
    (``postgres_query``/``mysql_query``/``sqlite_query``: one statement, planned by the database)."""
    return f"{_QUERY_FUNCTIONS[kind]}({literal(alias)}, {literal(sql)})"


def register(dcon: duckdb.DuckDBPyConnection, view: str, data: pa.Table) -> None:
    """Make the Arrow table ``data`` readable as ``view`` (a FROM item) on ``dcon``."""
    dcon.register(view, data)


def unregister(dcon: duckdb.DuckDBPyConnection, view: str) -> None:
    try:
        dcon.unregister(view)
    except duckdb.Error:
        pass


def describe(dcon: duckdb.DuckDBPyConnection, from_item: str) -> list[tuple[str, str]]:
    """(column, DuckDB type) of a FROM item."""
    return [(r[0], r[1]) for r in dcon.execute(f"DESCRIBE SELECT * FROM {from_item}").fetchall()]


def _text_cast(name: str, duck_type: str) -> str:
    """DuckDB SQL of a column as text: timestamps with a time zone in UTC, without the offset;
    bytes as the UTF-8 text they hold (MySQL's JSON and TEXT with a binary collation arrive as
    bytes), else escaped (``\\xFF``)."""
    col = q(name)
    kind = duck_type.upper()
    if kind in ("TIMESTAMP WITH TIME ZONE", "TIMESTAMPTZ"):
        return f"CAST(timezone('UTC', {col}) AS VARCHAR) AS {q(name)}"
    if kind == "BLOB":
        return f"coalesce(try(decode({col})), CAST({col} AS VARCHAR)) AS {q(name)}"
    return f"CAST({col} AS VARCHAR) AS {q(name)}"


def text_select(from_item: str, described: list[tuple[str, str]], *, hash_column: str, batch: int, label: str,
                offset: int) -> str:
    """The DuckDB SELECT of one chunk: text columns, row hash, batch, label and row number."""
    casts = ", ".join(_text_cast(n, t) for n, t in described)
    names = ", ".join(q(n) for n, _ in described)
    return (f"SELECT *, CAST(hash({names}) >> 1 AS BIGINT) AS {q(hash_column)}, "
            f"CAST({int(batch)} AS BIGINT) AS _tessera_batch, {literal(label)} AS _tessera_file, "
            f"CAST(row_number() OVER () + {int(offset)} AS BIGINT) AS _tessera_line "
            f"FROM (SELECT {casts} FROM {from_item}) AS _tessera_r")
