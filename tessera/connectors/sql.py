"""Database connections: PostgreSQL (psycopg 3), MySQL/MariaDB (PyMySQL) and SQLite.

The functions take a connection whose secrets are revealed (``Workspace.connection(name)``).

Besides the drivers' connect functions, this module knows each database's SQL for reading a
source (:func:`source_select`: its table or query, with an optional condition written in the
database's own dialect) and :func:`check`, which opens the connection for real and says what it
verified, or raises :class:`~tessera.errors.ConnectionFailed` with a diagnosis:

* ``unreachable``: nothing listens at host:port, or the host name does not resolve;
* ``auth_refused``: the server refused the user or the password (the password is never shown);
* ``not_found``: the database, the SQLite file, the table or a column does not exist;
* ``permission_denied``: the user may not read the database or the table (the GRANT is named);
* ``timeout``: the server did not answer within the connection's ``connect_timeout``;
* ``config``: the source's query is not valid SQL for the database.

Imports (:mod:`tessera.sources.database`) run the same check when a read fails, so an import
error carries the same diagnosis as ``tessera connections test``.
"""

from __future__ import annotations

import os
import re
import sqlite3
from pathlib import Path

from tessera.errors import ConnectionFailed


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


def mysql_connect(conn, *, autocommit: bool = True, bounded_handshake: bool = False):
    """A PyMySQL connection to a ``mysql``/``mariadb`` connection (LOAD DATA LOCAL allowed).

    PyMySQL's ``connect_timeout`` bounds the TCP connection only: a server that accepts it and
    never answers hangs the handshake. ``bounded_handshake`` bounds it too (the statements that
    follow are not bounded)."""
    import pymysql

    con = pymysql.connect(host=conn.host, port=conn.port, user=conn.user, password=conn.password or "",
                          database=conn.database, connect_timeout=conn.connect_timeout, autocommit=autocommit,
                          local_infile=True, charset="utf8mb4",
                          read_timeout=conn.connect_timeout if bounded_handshake else None)
    if bounded_handshake and hasattr(con, "_read_timeout"):
        con._read_timeout = None  # PyMySQL applies it before each read
    return con


def sqlite_connect(conn):
    return sqlite3.connect(conn.path)


# --------------------------------------------------------------------------- SQL of a source

def dialect(conn) -> str:
    """``postgresql``, ``mysql`` (MySQL and MariaDB) or ``sqlite``."""
    return "mysql" if conn.type in ("mysql", "mariadb") else conn.type


def quote(conn, name: str) -> str:
    """An identifier quoted for the connection's database."""
    if dialect(conn) == "mysql":
        return "`" + name.replace("`", "``") + "`"
    return '"' + name.replace('"', '""') + '"'


def table_parts(conn, table: str) -> tuple[str | None, str]:
    """(schema or None, table) of a source's ``table`` setting (``schema.table`` or ``table``).

    PostgreSQL tables without a schema are in the connection's ``schema`` (default ``public``);
    MySQL tables in the connection's database."""
    schema, _, name = table.rpartition(".")
    if not schema and dialect(conn) == "postgresql":
        schema = conn.schema_
    return (schema or None), name


def table_sql(conn, table: str) -> str:
    """The quoted, qualified name of ``table`` (``"public"."customers"``)."""
    schema, name = table_parts(conn, table)
    return (quote(conn, schema) + "." if schema else "") + quote(conn, name)


def table_label(conn, table: str) -> str:
    """How a table is named in messages and in the raw layer's ``_tessera_file`` column."""
    schema, name = table_parts(conn, table)
    if schema is None and dialect(conn) == "mysql":
        schema = conn.database
    return f"{schema}.{name}" if schema else name


def source_select(conn, src, where: str | None = None) -> str:
    """The SELECT that reads ``src`` (its table, or its query) in the database's dialect.

    ``where`` is a condition in the same dialect (the incremental cursor's); it is pushed into
    the statement the database runs, so the database uses its index on the cursor column.
    """
    if src.table:
        sql = f"SELECT * FROM {table_sql(conn, src.table)}"
    else:
        query = src.query.strip().rstrip(";").strip()
        sql = f"SELECT * FROM ({query}) AS _tessera_q"
    if where:
        sql += f" WHERE {where}"
    return sql


# --------------------------------------------------------------------------- diagnosis

def _where(conn) -> str:
    return f"{conn.host}:{conn.port}"


def scrub(conn, text: str) -> str:
    """``text`` without the connection's password (driver messages may quote a connection string)."""
    password = getattr(conn, "password", None)
    if isinstance(password, str) and len(password) >= 3:
        text = text.replace(password, "***")
    return re.sub(r"(?i)(password\s*=\s*)('[^']*'|\S+)", r"\1***", text)


def _unreachable(conn, why: str) -> ConnectionFailed:
    return ConnectionFailed(
        f"connection '{conn.name}': cannot reach {_where(conn)}: {why}; check host and port and that the "
        "server runs", reason="unreachable")


def _timeout(conn) -> ConnectionFailed:
    return ConnectionFailed(
        f"connection '{conn.name}': {_where(conn)} did not answer within {conn.connect_timeout} s "
        "(connect_timeout); check host, port and firewalls, or raise connect_timeout", reason="timeout")


def _auth_refused(conn, server: str) -> ConnectionFailed:
    return ConnectionFailed(
        f"connection '{conn.name}': {server} at {_where(conn)} refused user '{conn.user}' "
        "(wrong user or password); fix the connection's user and password", reason="auth_refused")


def pg_failure(conn, exc: Exception, *, what: str | None = None) -> ConnectionFailed:
    """The diagnosis of a psycopg error raised while connecting, or while reading ``what``."""
    import psycopg

    text = scrub(conn, str(exc)).strip()
    low = text.lower()
    state = getattr(exc, "sqlstate", None)
    if state in ("28P01", "28000") or "password authentication failed" in low or "no password supplied" in low:
        if "no pg_hba.conf entry" in low:
            return ConnectionFailed(
                f"connection '{conn.name}': PostgreSQL at {_where(conn)} does not accept user '{conn.user}' "
                f"from this machine (pg_hba.conf): {text}", reason="permission_denied")
        return _auth_refused(conn, "PostgreSQL")
    if state == "3D000" or re.search(r'database ".*" does not exist', low):
        return ConnectionFailed(
            f"connection '{conn.name}': database '{conn.database}' does not exist on {_where(conn)}; "
            "fix the connection's database", reason="not_found")
    if state == "42501" or "permission denied" in low:
        if what is None:  # CONNECT privilege
            grant = f'GRANT CONNECT ON DATABASE "{conn.database}" TO "{conn.user}"'
        else:
            grant = _pg_grant(conn, what, text)
        return ConnectionFailed(
            f"connection '{conn.name}': user '{conn.user}' may not read {what or 'the database'} "
            f"({text.splitlines()[0]}); an administrator can run: {grant}", reason="permission_denied")
    if state in ("42P01", "3F000") or "does not exist" in low:
        return ConnectionFailed(f"connection '{conn.name}': {what or 'the database'}: {text.splitlines()[0]}",
                                reason="not_found")
    if "timeout expired" in low or "timed out" in low:
        return _timeout(conn)
    if "connection refused" in low:
        return _unreachable(conn, "connection refused")
    if "could not translate host name" in low or "name or service not known" in low \
            or "nodename nor servname" in low or "temporary failure in name resolution" in low:
        return _unreachable(conn, f"unknown host '{conn.host}'")
    if "no route to host" in low or "network is unreachable" in low:
        return _unreachable(conn, "no route to host")
    if "ssl" in low and isinstance(exc, psycopg.OperationalError):
        return ConnectionFailed(f"connection '{conn.name}': TLS failed with {_where(conn)}: {text}; "
                                "check sslmode", reason="tls")
    if state and state.startswith("42"):  # syntax and other errors of the query
        return ConnectionFailed(f"connection '{conn.name}': {what or 'the query'} is refused by PostgreSQL: "
                                f"{text.splitlines()[0]}; fix the source's query", reason="config")
    return ConnectionFailed(f"connection '{conn.name}': PostgreSQL at {_where(conn)}: {text}")


def _pg_grant(conn, what: str, text: str) -> str:
    m = re.search(r"permission denied for schema (\S+)", text)
    if m:
        return f'GRANT USAGE ON SCHEMA {m.group(1)} TO "{conn.user}"'
    if what.startswith("table "):
        name = what.removeprefix("table ")
    else:
        m = re.search(r"permission denied for (?:table|relation|view) (\S+)", text)
        name = m.group(1) if m else "<table>"
    return f'GRANT SELECT ON {name} TO "{conn.user}"'


# MySQL/MariaDB client and server error numbers
_MY_CANT_CONNECT = (2002, 2003, 2005, 2006)
_MY_LOST = (2013,)
_MY_ACCESS_DENIED = 1045
_MY_DB_ACCESS_DENIED = 1044
_MY_UNKNOWN_DB = 1049
_MY_NO_TABLE = 1146
_MY_TABLE_DENIED = (1142, 1143)
_MY_BAD_COLUMN = 1054
_MY_SYNTAX = (1064, 1149)


def mysql_failure(conn, exc: Exception, *, what: str | None = None) -> ConnectionFailed:
    """The diagnosis of a PyMySQL error raised while connecting, or while reading ``what``."""
    code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else None
    text = scrub(conn, str(exc.args[1]) if len(exc.args) > 1 else str(exc))
    low = text.lower()
    server = "MariaDB" if conn.type == "mariadb" else "MySQL"
    if code in _MY_CANT_CONNECT or code in _MY_LOST:
        if "timed out" in low or code in _MY_LOST:
            return _timeout(conn)
        if "name or service not known" in low or "nodename nor servname" in low or "getaddrinfo" in low \
                or "name resolution" in low:
            return _unreachable(conn, f"unknown host '{conn.host}'")
        if "refused" in low:
            return _unreachable(conn, "connection refused")
        return _unreachable(conn, text)
    if code == _MY_ACCESS_DENIED:
        return _auth_refused(conn, server)
    if code == _MY_UNKNOWN_DB:
        return ConnectionFailed(
            f"connection '{conn.name}': database '{conn.database}' does not exist on {_where(conn)}; "
            "fix the connection's database", reason="not_found")
    if code == _MY_DB_ACCESS_DENIED:
        return ConnectionFailed(
            f"connection '{conn.name}': user '{conn.user}' may not use database '{conn.database}' ({text}); "
            f"an administrator can run: GRANT SELECT ON `{conn.database}`.* TO '{conn.user}'@'%'",
            reason="permission_denied")
    if code in _MY_TABLE_DENIED:
        target = what or f"`{conn.database}`.*"
        return ConnectionFailed(
            f"connection '{conn.name}': user '{conn.user}' may not read {target} ({text}); an administrator "
            f"can run: GRANT SELECT ON {_mysql_grant_target(conn, what)} TO '{conn.user}'@'%'",
            reason="permission_denied")
    if code == _MY_NO_TABLE:
        return ConnectionFailed(f"connection '{conn.name}': {what or 'a table'}: {text}", reason="not_found")
    if code == _MY_BAD_COLUMN:
        return ConnectionFailed(f"connection '{conn.name}': {what or 'the query'}: {text}", reason="not_found")
    if code in _MY_SYNTAX:
        return ConnectionFailed(f"connection '{conn.name}': {what or 'the query'} is refused by {server}: "
                                f"{text}; fix the source's query", reason="config")
    return ConnectionFailed(f"connection '{conn.name}': {server} at {_where(conn)}: {text}")


def _mysql_grant_target(conn, what: str | None) -> str:
    if what and what.startswith("table "):
        schema, _, name = what.removeprefix("table ").rpartition(".")
        return f"`{schema or conn.database}`.`{name}`"
    return f"`{conn.database}`.*"


def sqlite_failure(conn, exc: Exception, *, what: str | None = None) -> ConnectionFailed:
    """The diagnosis of a sqlite3 error raised while opening the file, or while reading ``what``."""
    text = str(exc)
    low = text.lower()
    if "no such table" in low or "no such column" in low:
        return ConnectionFailed(f"connection '{conn.name}': {what or 'the query'}: {text} in {conn.path}",
                                reason="not_found")
    if "not a database" in low or "malformed" in low:
        return ConnectionFailed(f"connection '{conn.name}': {conn.path} is not a SQLite database ({text}); "
                                "fix the connection's path", reason="config")
    if "unable to open" in low or "readonly" in low or "permission" in low:
        return ConnectionFailed(f"connection '{conn.name}': cannot open {conn.path} ({text}); check that the "
                                "file is readable by this user", reason="permission_denied")
    if "syntax error" in low:
        return ConnectionFailed(f"connection '{conn.name}': {what or 'the query'} is refused by SQLite: {text}; "
                                "fix the source's query", reason="config")
    return ConnectionFailed(f"connection '{conn.name}': SQLite {conn.path}: {text}")


# --------------------------------------------------------------------------- check

def check(conn, sources=()) -> list[str]:
    """Open ``conn`` for real and check each of ``sources`` (table readable or query runs, cursor
    and record keys present). Returns one line per verified fact; raises ConnectionFailed."""
    kind = dialect(conn)
    if kind == "postgresql":
        return _check_postgres(conn, list(sources))
    if kind == "mysql":
        return _check_mysql(conn, list(sources))
    if kind == "sqlite":
        return _check_sqlite(conn, list(sources))
    raise ConnectionFailed(f"connection '{conn.name}': {conn.type} is not a SQL database", reason="config")


def _what(conn, src) -> str:
    return f"table {table_label(conn, src.table)}" if src.table else f"the query of source '{src.name}'"


def _check_columns(conn, src, columns: list[str], what: str) -> list[str]:
    """Problems with the columns a source needs (cursor, record keys); raises ConnectionFailed."""
    missing = [c for c in [*src.record_keys, *([src.cursor] if src.cursor else [])] if c not in columns]
    if missing:
        roles = ", ".join(f"'{c}'" + (" (cursor)" if c == src.cursor else " (record key)") for c in missing)
        raise ConnectionFailed(
            f"connection '{conn.name}': source '{src.name}': {roles} not in {what} "
            f"(columns: {', '.join(columns)}); fix the source's cursor or record_keys", reason="not_found")
    return columns


def _source_line(src, what: str, columns: list[str], extra: str = "") -> str:
    line = f"source {src.name}: {what} is readable ({len(columns)} columns)"
    if src.cursor:
        line += f"; cursor column {src.cursor} found{extra}"
    return line


def _check_postgres(conn, sources) -> list[str]:
    import psycopg

    try:
        pg = pg_connect(conn, autocommit=True)
    except psycopg.Error as exc:
        raise pg_failure(conn, exc) from None
    lines = []
    with pg:
        version, database, user = pg.execute(
            "SELECT current_setting('server_version'), current_database(), current_user").fetchone()
        lines.append(f"connected to PostgreSQL {version} at {_where(conn)}, database {database}, as {user}")
        for src in sources:
            what = _what(conn, src)
            try:
                cur = pg.execute(f"SELECT * FROM ({source_select(conn, src)}) AS _tessera_check LIMIT 0")
                columns = [d.name for d in cur.description]
            except psycopg.Error as exc:
                failure = pg_failure(conn, exc, what=what)
                if failure.reason == "not_found" and src.table:
                    failure = ConnectionFailed(_pg_missing_table(pg, conn, src.table), reason="not_found")
                raise failure from None
            _check_columns(conn, src, columns, what)
            extra = ""
            if src.cursor and src.table:
                extra = _pg_index_note(pg, conn, src)
            lines.append(_source_line(src, what, columns, extra))
    return lines


def _pg_missing_table(pg, conn, table: str) -> str:
    schema, name = table_parts(conn, table)
    have = [r[0] for r in pg.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = %s ORDER BY 1 LIMIT 30",
        [schema]).fetchall()]
    known = f"tables in schema {schema}: {', '.join(have)}" if have else f"schema {schema} has no table"
    return (f"connection '{conn.name}': table {schema}.{name} does not exist in database '{conn.database}' "
            f"({known}); fix the source's table")


def _pg_index_note(pg, conn, src) -> str:
    """' (indexed)', or a hint to create an index on the cursor column."""
    schema, name = table_parts(conn, src.table)
    row = pg.execute(
        "SELECT count(*) FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid "
        "JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_attribute a ON a.attrelid = c.oid "
        "AND a.attnum = i.indkey[0] WHERE n.nspname = %s AND c.relname = %s AND a.attname = %s",
        [schema, name, src.cursor]).fetchone()
    if row and row[0]:
        return " (indexed)"
    return (f" (no index: incremental imports scan the whole table; CREATE INDEX ON "
            f"{table_sql(conn, src.table)} ({quote(conn, src.cursor)}))")


def _check_mysql(conn, sources) -> list[str]:
    import pymysql

    try:
        my = mysql_connect(conn, bounded_handshake=True)
    except pymysql.err.MySQLError as exc:
        raise mysql_failure(conn, exc) from None
    lines = []
    with my, my.cursor() as cur:
        cur.execute("SELECT VERSION(), DATABASE(), CURRENT_USER()")
        version, database, user = cur.fetchone()
        server = "MariaDB" if "mariadb" in version.lower() else "MySQL"
        lines.append(f"connected to {server} {version} at {_where(conn)}, database {database}, as {user}")
        for src in sources:
            what = _what(conn, src)
            try:
                cur.execute(f"SELECT * FROM ({source_select(conn, src)}) AS _tessera_check LIMIT 0")
                columns = [d[0] for d in cur.description]
            except pymysql.err.MySQLError as exc:
                failure = mysql_failure(conn, exc, what=what)
                if failure.reason == "not_found" and src.table:
                    schema, name = table_parts(conn, src.table)
                    cur.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = "
                                "COALESCE(%s, DATABASE()) ORDER BY 1 LIMIT 30", [schema])
                    have = [r[0] for r in cur.fetchall()]
                    failure = ConnectionFailed(
                        f"connection '{conn.name}': table {table_label(conn, src.table)} does not exist "
                        f"(tables in {schema or conn.database}: {', '.join(have) or 'none'}); fix the source's table",
                        reason="not_found")
                raise failure from None
            _check_columns(conn, src, columns, what)
            extra = ""
            if src.cursor and src.table:
                schema, name = table_parts(conn, src.table)
                cur.execute("SELECT COUNT(*) FROM information_schema.statistics WHERE table_schema = "
                            "COALESCE(%s, DATABASE()) AND table_name = %s AND column_name = %s AND seq_in_index = 1",
                            [schema, name, src.cursor])
                extra = " (indexed)" if cur.fetchone()[0] else (
                    f" (no index: incremental imports scan the whole table; CREATE INDEX "
                    f"ix_{name}_{src.cursor} ON {table_sql(conn, src.table)} ({quote(conn, src.cursor)}))")
            lines.append(_source_line(src, what, columns, extra))
    return lines


def mysql_preflight(conn) -> None:
    """Connect and disconnect within ``connect_timeout``; ConnectionFailed with the diagnosis if
    that fails (DuckDB's MySQL scanner has no connection timeout: a silent server would hang it)."""
    import pymysql

    try:
        mysql_connect(conn, bounded_handshake=True).close()
    except pymysql.err.MySQLError as exc:
        raise mysql_failure(conn, exc) from None


def sqlite_open(conn) -> sqlite3.Connection:
    """The SQLite file of ``conn``, opened read-only; ConnectionFailed when it cannot be."""
    path = Path(conn.path)
    if not path.is_file():
        raise ConnectionFailed(
            f"connection '{conn.name}': the SQLite file {path} does not exist; fix the connection's path",
            reason="not_found")
    if not os.access(path, os.R_OK):
        raise ConnectionFailed(
            f"connection '{conn.name}': the SQLite file {path} is not readable by this user; "
            f"allow it (e.g. chmod o+r {path})", reason="permission_denied")
    try:
        db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        db.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.Error as exc:
        raise sqlite_failure(conn, exc) from None
    return db


def _check_sqlite(conn, sources) -> list[str]:
    db = sqlite_open(conn)
    lines = [f"opened SQLite {sqlite3.sqlite_version} file {conn.path} (read-only)"]
    try:
        for src in sources:
            what = _what(conn, src)
            try:
                cur = db.execute(f"SELECT * FROM ({source_select(conn, src)}) AS _tessera_check LIMIT 0")
                columns = [d[0] for d in cur.description]
            except sqlite3.Error as exc:
                failure = sqlite_failure(conn, exc, what=what)
                if failure.reason == "not_found" and src.table:
                    have = [r[0] for r in db.execute(
                        "SELECT name FROM sqlite_master WHERE type IN ('table', 'view') ORDER BY 1 LIMIT 30")]
                    failure = ConnectionFailed(
                        f"connection '{conn.name}': table {src.table} does not exist in {conn.path} "
                        f"(tables: {', '.join(have) or 'none'}); fix the source's table", reason="not_found")
                raise failure from None
            _check_columns(conn, src, columns, what)
            lines.append(_source_line(src, what, columns))
    finally:
        db.close()
    return lines
