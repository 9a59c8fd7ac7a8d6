"""Table destinations: PostgreSQL and MySQL/MariaDB.

The table (``table`` of the sync; ``schema.table`` or ``database.table`` to name another one) is
created when missing, with a column per destination field typed from the dataset and a primary
key on the key field. A table that exists gets the missing columns (``ALTER TABLE ... ADD
COLUMN``; columns the sync no longer sends are left alone) and must have a primary key or a
unique index on exactly the key field.

Each batch is one transaction: its rows are bulk-loaded into a temporary table (PostgreSQL:
``COPY ... FROM STDIN`` of CSV written by Arrow; MySQL: ``LOAD DATA LOCAL INFILE`` of the same
CSV, or multi-row ``INSERT`` statements when the server refuses local files), then upserted by
the key (``INSERT ... ON CONFLICT (key) DO UPDATE`` / ``ON DUPLICATE KEY UPDATE``; ``insert``
mode never updates a row that exists); deletes go through a temporary table of keys. A
PostgreSQL table created by the run gets its rows straight from COPY (nothing there to conflict
with). The next batch is read from the warehouse and encoded while the database works. When the
database refuses a batch (a value that does not fit a column...), the batch is split in halves
until the refused records are found, so that only they fail, each with the database's message.
"""

from __future__ import annotations

import io
import os
import tempfile
from dataclasses import dataclass

import ibis.expr.datatypes as dt
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from tessera.connectors.sql import mysql_connect, pg_connect
from tessera.engine.postgres import arrow_for_copy
from tessera.errors import ConnectionFailed, SyncError
from tessera.syncs.destinations import Destination, DestinationDown, Refusal, SendContext
from tessera.syncs.plan import KEY, OP

MAX_SPLITS = 40  # extra transactions spent per batch to find the records a database refuses
STAGE = "_tessera_stage"
DELETES = "_tessera_deletes"


class RecordsRefused(Exception):
    """The database refused the rows of one transaction (its message)."""


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return " ".join(text.splitlines()[0].split()) if text else type(exc).__name__


def _split_name(name: str) -> tuple[str | None, str]:
    if "." in name:
        schema, table = name.split(".", 1)
        return schema, table
    return None, name


class TableDestination(Destination):
    """What PostgreSQL and MySQL share: batches split into upserts and deletes, one transaction
    each, halved until the refused records are found."""

    batch_rows = 50_000
    engine = "database"

    def __init__(self, ctx: SendContext):
        super().__init__(ctx)
        if not ctx.sync.table:
            raise SyncError(f"{ctx.where}: a sync to a {ctx.conn.type} connection needs table: the destination table")
        self.columns = ctx.field_names
        self.key = ctx.key_field

    method = "csv"  # how the rows are encoded (MySQL falls back to "insert")

    def encode(self, batch: pa.RecordBatch) -> "_Parts":
        """The batch's upserts and deleted keys, encoded for the database (runs ahead of send)."""
        return self._parts(pa.Table.from_batches([batch]))

    def _parts(self, table: pa.Table) -> "_Parts":
        ops = table.column(OP)
        upserts = table.filter(pc.not_equal(ops, "delete")).select(self.columns)
        keys = table.filter(pc.equal(ops, "delete")).column(KEY)
        return _Parts(self.method,
                      self._encode_upserts(upserts) if upserts.num_rows else None,
                      self._encode_keys(keys) if len(keys) else None)

    def send(self, batch: pa.RecordBatch, encoded: "_Parts | None" = None) -> list[Refusal]:
        refusals: list[Refusal] = []
        budget = [MAX_SPLITS]
        table = pa.Table.from_batches([batch])

        def attempt(positions: np.ndarray) -> None:
            whole = len(positions) == table.num_rows
            part = table if whole else table.take(pa.array(positions))
            parts = encoded if whole and encoded is not None and encoded.method == self.method else self._parts(part)
            try:
                self._transaction(parts)
            except _Reencode:
                attempt(positions)
            except RecordsRefused as exc:
                if len(positions) == 1 or budget[0] <= 0:
                    refusals.append(Refusal(positions.tolist(), f"{self.engine} refused the record: {exc}"
                                            if len(positions) == 1 else f"{self.engine} refused the batch: {exc}"))
                    return
                budget[0] -= 1
                middle = len(positions) // 2
                attempt(positions[:middle])
                attempt(positions[middle:])

        attempt(np.arange(table.num_rows))
        return refusals

    def _encode_upserts(self, upserts: pa.Table):
        raise NotImplementedError

    def _encode_keys(self, keys: pa.ChunkedArray):
        raise NotImplementedError

    def _transaction(self, parts: "_Parts") -> None:
        """Upsert and delete in one transaction; raise RecordsRefused or DestinationDown."""
        raise NotImplementedError


@dataclass
class _Parts:
    method: str
    upserts: object | None  # encoded rows to upsert (None: none)
    deletes: object | None  # encoded keys to delete (None: none)


class _Reencode(Exception):
    """The encoding changed (MySQL refused LOAD DATA LOCAL): encode the rows again and retry."""


def _csv(table: pa.Table, *, null: str = "") -> bytes:
    """CSV of ``table`` without header, every value quoted (an unquoted field is NULL)."""
    buf = io.BytesIO()
    options = pacsv.WriteOptions(include_header=False, quoting_style="all_valid", null_string=null)
    pacsv.write_csv(table, buf, write_options=options)
    return buf.getvalue()


# --------------------------------------------------------------------------- PostgreSQL


def pg_type(dtype: dt.DataType) -> str:
    """The PostgreSQL column type of a dataset type."""
    if dtype.is_string():
        return "text"
    if dtype.is_boolean():
        return "boolean"
    if dtype.is_integer():
        bits = dtype.nbytes * 8
        if dtype.is_unsigned_integer():
            return {8: "smallint", 16: "integer", 32: "bigint"}.get(bits, "numeric(20)")
        return {8: "smallint", 16: "smallint", 32: "integer"}.get(bits, "bigint")
    if dtype.is_float32():
        return "real"
    if dtype.is_floating():
        return "double precision"
    if dtype.is_decimal():
        return f"numeric({dtype.precision}, {dtype.scale or 0})" if dtype.precision else "numeric"
    if dtype.is_date():
        return "date"
    if dtype.is_timestamp():
        return "timestamptz" if dtype.timezone else "timestamp"
    if dtype.is_time():
        return "time"
    return "text"


def _pg_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class PostgresDestination(TableDestination):
    """A PostgreSQL table (see the module's documentation)."""

    engine = "PostgreSQL"

    def open(self) -> None:
        import psycopg

        conn = self.ctx.conn
        try:
            self.db = pg_connect(conn, autocommit=True)
        except psycopg.OperationalError as exc:
            text = _first_line(exc)
            reason = "auth_refused" if "password" in text or "authentication" in text else "unreachable"
            raise ConnectionFailed(f"{self.ctx.where}: cannot connect to PostgreSQL at {conn.host}:{conn.port} "
                                   f"({text}); check host, port, user and password", reason=reason) from None
        schema, table = _split_name(self.ctx.sync.table)
        self.schema = schema or conn.schema_
        self.table = table
        self.target = f"{_pg_ident(self.schema)}.{_pg_ident(table)}"
        try:
            self._prepare()
        except psycopg.Error as exc:
            raise SyncError(f"{self.ctx.where}: cannot prepare the table {self.schema}.{table}: {_first_line(exc)}") \
                from None

    def _existing(self) -> dict[str, str]:
        rows = self.db.execute(
            "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
            "JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND c.relname = %s AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
            [self.schema, self.table],
        ).fetchall()
        return {name: typ for name, typ in rows}

    def _prepare(self) -> None:
        ctx = self.ctx
        existing = self._existing()
        self.fresh = not existing
        if not existing:
            cols = ", ".join(f"{_pg_ident(c)} {pg_type(ctx.field_types[c])}" + (" NOT NULL" if c == self.key else "")
                             for c in self.columns)
            self.db.execute(f"CREATE SCHEMA IF NOT EXISTS {_pg_ident(self.schema)}")
            self.db.execute(f"CREATE TABLE {self.target} ({cols}, PRIMARY KEY ({_pg_ident(self.key)}))")
        else:
            for c in self.columns:
                if c not in existing:
                    self.db.execute(f"ALTER TABLE {self.target} ADD COLUMN {_pg_ident(c)} {pg_type(ctx.field_types[c])}")
            unique = self.db.execute(
                "SELECT 1 FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid "
                "JOIN pg_namespace n ON n.oid = c.relnamespace "
                "JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = i.indkey[0] "
                "WHERE n.nspname = %s AND c.relname = %s AND i.indisunique AND i.indnatts = 1 AND a.attname = %s",
                [self.schema, self.table, self.key],
            ).fetchone()
            if unique is None:
                raise SyncError(
                    f"{ctx.where}: the table {self.schema}.{self.table} exists without a primary key or unique index "
                    f"on the key field '{self.key}', which upserts need; add one (ALTER TABLE {self.target} ADD "
                    f"PRIMARY KEY ({_pg_ident(self.key)})) or sync to a new table")
        types = self._existing()
        stage_cols = ", ".join(f"{_pg_ident(c)} {types[c]}" for c in self.columns)
        self.db.execute(f"CREATE TEMP TABLE {STAGE} ({stage_cols}) ON COMMIT DELETE ROWS")
        self.db.execute(f"CREATE TEMP TABLE {DELETES} (k {types[self.key]}) ON COMMIT DELETE ROWS")
        names = ", ".join(_pg_ident(c) for c in self.columns)
        updates = ", ".join(f"{_pg_ident(c)} = EXCLUDED.{_pg_ident(c)}" for c in self.columns if c != self.key)
        action = f"DO UPDATE SET {updates}" if updates and ctx.sync.mode != "insert" else "DO NOTHING"
        self.copy_sql = f"COPY {STAGE} ({names}) FROM STDIN (FORMAT csv)"
        # A table created by this run holds only what this run sends, each key once: rows are
        # copied straight into it (no conflict can happen, nothing is there to delete).
        self.direct_sql = f"COPY {self.target} ({names}) FROM STDIN (FORMAT csv)"
        self.upsert_sql = (f"INSERT INTO {self.target} ({names}) SELECT {names} FROM {STAGE} "
                           f"ON CONFLICT ({_pg_ident(self.key)}) {action}")
        self.delete_sql = f"DELETE FROM {self.target} t USING {DELETES} d WHERE t.{_pg_ident(self.key)} = d.k"

    def _encode_upserts(self, upserts: pa.Table) -> bytes:
        return _csv(arrow_for_copy(upserts))

    def _encode_keys(self, keys: pa.ChunkedArray) -> bytes:
        return _csv(arrow_for_copy(pa.table({"k": keys})))

    def _transaction(self, parts: _Parts) -> None:
        import psycopg

        try:
            with self.db.transaction(), self.db.cursor() as cur:
                if self.fresh:
                    if parts.upserts is not None:
                        with cur.copy(self.direct_sql) as copy:
                            copy.write(parts.upserts)
                    return
                if parts.upserts is not None:
                    with cur.copy(self.copy_sql) as copy:
                        copy.write(parts.upserts)
                    cur.execute(self.upsert_sql)
                if parts.deletes is not None:
                    with cur.copy(f"COPY {DELETES} (k) FROM STDIN (FORMAT csv)") as copy:
                        copy.write(parts.deletes)
                    cur.execute(self.delete_sql)
        except psycopg.OperationalError as exc:
            raise DestinationDown(f"{self.ctx.where}: PostgreSQL connection lost: {_first_line(exc)}") from None
        except psycopg.Error as exc:
            if self.db.closed or self.db.broken:
                raise DestinationDown(f"{self.ctx.where}: PostgreSQL connection lost: {_first_line(exc)}") from None
            raise RecordsRefused(_first_line(exc)) from None

    def close(self) -> None:
        db = getattr(self, "db", None)
        if db is not None:
            db.close()


# --------------------------------------------------------------------------- MySQL / MariaDB

MYSQL_METHOD = "load"  # LOAD DATA LOCAL INFILE; "insert": multi-row INSERT (see bench/bench_sync.py --mariadb)
_MYSQL_DOWN = {2002, 2003, 2006, 2013, 2055}  # cannot connect, server gone, connection lost
_MYSQL_NO_LOCAL_FILE = {1148, 2068, 3948, 3950, 4166}  # LOAD DATA LOCAL refused (MySQL, MariaDB, client)


def mysql_type(dtype: dt.DataType, *, key: bool = False) -> str:
    """The MySQL/MariaDB column type of a dataset type (a text key is a VARCHAR(255))."""
    if dtype.is_string():
        return "VARCHAR(255)" if key else "MEDIUMTEXT"
    if dtype.is_boolean():
        return "BOOLEAN"
    if dtype.is_integer():
        bits = dtype.nbytes * 8
        name = {8: "TINYINT", 16: "SMALLINT", 32: "INT"}.get(bits, "BIGINT")
        return name + (" UNSIGNED" if dtype.is_unsigned_integer() else "")
    if dtype.is_float32():
        return "FLOAT"
    if dtype.is_floating():
        return "DOUBLE"
    if dtype.is_decimal():
        precision = min(dtype.precision or 38, 65)
        return f"DECIMAL({precision}, {min(dtype.scale or 0, 30, precision)})"
    if dtype.is_date():
        return "DATE"
    if dtype.is_timestamp():
        return "DATETIME(6)"
    if dtype.is_time():
        return "TIME(6)"
    return "MEDIUMTEXT"


def _my_ident(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _mysql_values(table: pa.Table) -> pa.Table:
    """Columns as MySQL reads them from text: booleans as 1/0, timestamps with microseconds."""
    columns = []
    for col in table.columns:
        if pa.types.is_boolean(col.type):
            col = col.cast(pa.int8())
        elif pa.types.is_timestamp(col.type):
            if col.type.tz is not None:
                col = col.cast(pa.timestamp(col.type.unit, "UTC")).cast(pa.timestamp("us"), safe=False)
            elif col.type.unit == "ns":
                col = col.cast(pa.timestamp("us"), safe=False)
        elif pa.types.is_null(col.type):
            col = col.cast(pa.string())
        columns.append(col)
    return pa.table(columns, names=table.column_names)


class MySQLDestination(TableDestination):
    """A MySQL or MariaDB table (see the module's documentation).

    ``method`` is ``load`` (LOAD DATA LOCAL INFILE into a temporary table, the default) or
    ``insert`` (multi-row INSERT statements, used when the server refuses local files)."""

    engine = "MySQL"

    def __init__(self, ctx: SendContext, method: str | None = None):
        super().__init__(ctx)
        self.method = method or MYSQL_METHOD  # "load" or "insert"
        self.engine = "MariaDB" if ctx.conn.type == "mariadb" else "MySQL"

    def open(self) -> None:
        import pymysql

        conn = self.ctx.conn
        try:
            self.db = mysql_connect(conn, autocommit=True)
        except pymysql.err.MySQLError as exc:
            code = exc.args[0] if exc.args else None
            reason = "auth_refused" if code in (1044, 1045) else ("not_found" if code == 1049 else "unreachable")
            raise ConnectionFailed(f"{self.ctx.where}: cannot connect to {conn.type} at {conn.host}:{conn.port} "
                                   f"({_first_line(exc)}); check host, port, user, password and database",
                                   reason=reason) from None
        schema, table = _split_name(self.ctx.sync.table)
        self.schema = schema or conn.database
        self.table = table
        self.target = f"{_my_ident(self.schema)}.{_my_ident(table)}"
        try:
            self._prepare()
        except pymysql.err.MySQLError as exc:
            raise SyncError(f"{self.ctx.where}: cannot prepare the table {self.schema}.{table}: {_first_line(exc)}") \
                from None

    def _execute(self, sql: str, args=None):
        cur = self.db.cursor()
        cur.execute(sql, args)
        return cur

    def _prepare(self) -> None:
        ctx = self.ctx
        self._execute("SET SESSION sql_mode = 'STRICT_ALL_TABLES,NO_ENGINE_SUBSTITUTION,ERROR_FOR_DIVISION_BY_ZERO'")
        self._execute("SET SESSION time_zone = '+00:00'")
        existing = {r[0] for r in self._execute(
            "SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s",
            [self.schema, self.table]).fetchall()}
        if not existing:
            cols = ", ".join(f"{_my_ident(c)} {mysql_type(ctx.field_types[c], key=c == self.key)}"
                             + (" NOT NULL" if c == self.key else "") for c in self.columns)
            self._execute(f"CREATE TABLE {self.target} ({cols}, PRIMARY KEY ({_my_ident(self.key)})) "
                          "DEFAULT CHARSET=utf8mb4")
        else:
            for c in self.columns:
                if c not in existing:
                    self._execute(f"ALTER TABLE {self.target} ADD COLUMN {_my_ident(c)} {mysql_type(ctx.field_types[c])}")
            unique = self._execute(
                "SELECT INDEX_NAME FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s "
                "AND NON_UNIQUE = 0 GROUP BY INDEX_NAME HAVING COUNT(*) = 1 AND MAX(COLUMN_NAME) = %s",
                [self.schema, self.table, self.key]).fetchall()
            if not unique:
                raise SyncError(
                    f"{ctx.where}: the table {self.schema}.{self.table} exists without a primary key or unique index "
                    f"on the key field '{self.key}', which upserts need; add one (ALTER TABLE {self.target} ADD "
                    f"PRIMARY KEY ({_my_ident(self.key)})) or sync to a new table")
        key_type = self._execute(
            "SELECT COLUMN_TYPE FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s "
            "AND COLUMN_NAME = %s", [self.schema, self.table, self.key]).fetchone()[0]
        # The stage holds text: the INSERT ... SELECT converts it in strict mode, so that a value that
        # does not fit is an error (LOAD DATA LOCAL would turn it into a warning).
        stage_cols = ", ".join(f"{_my_ident(c)} LONGTEXT" for c in self.columns)
        self._execute(f"CREATE TEMPORARY TABLE {STAGE} ({stage_cols}) DEFAULT CHARSET=utf8mb4")
        self._execute(f"CREATE TEMPORARY TABLE {DELETES} (k {key_type}) DEFAULT CHARSET=utf8mb4")
        names = ", ".join(_my_ident(c) for c in self.columns)
        if ctx.sync.mode == "insert" or len(self.columns) == 1:
            key = f"{self.target}.{_my_ident(self.key)}"
            updates = f"{key} = {key}"  # no change (INSERT IGNORE would also hide bad values)
        else:
            updates = ", ".join(f"{_my_ident(c)} = VALUES({_my_ident(c)})" for c in self.columns if c != self.key)
        self.names = names
        self.upsert_sql = f"INSERT INTO {self.target} ({names}) SELECT {names} FROM {STAGE} ON DUPLICATE KEY UPDATE {updates}"
        self.insert_sql = (f"INSERT INTO {self.target} ({names}) VALUES ({', '.join(['%s'] * len(self.columns))}) "
                           f"ON DUPLICATE KEY UPDATE {updates}")
        self.delete_sql = f"DELETE t FROM {self.target} t JOIN {DELETES} d ON t.{_my_ident(self.key)} = d.k"

    def _load(self, cur, table: str, columns: str, data: bytes) -> None:
        fd, path = tempfile.mkstemp(prefix="tessera-sync-", suffix=".csv")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            quoted = path.replace("\\", "\\\\").replace("'", "\\'")
            cur.execute(f"LOAD DATA LOCAL INFILE '{quoted}' INTO TABLE {table} CHARACTER SET utf8mb4 "
                        "FIELDS TERMINATED BY ',' OPTIONALLY ENCLOSED BY '\"' ESCAPED BY '' "
                        f"LINES TERMINATED BY '\\n' ({columns})")
        finally:
            os.unlink(path)

    def _encode_upserts(self, upserts: pa.Table):
        data = _mysql_values(upserts)
        if self.method == "load":
            return _csv(data, null="NULL")
        return list(zip(*(c.to_pylist() for c in data.columns)))

    def _encode_keys(self, keys: pa.ChunkedArray):
        if self.method == "load":
            return _csv(pa.table({"k": keys}), null="NULL")
        return [(k,) for k in keys.to_pylist()]

    def _transaction(self, parts: _Parts) -> None:
        import pymysql

        try:
            self.db.begin()
            cur = self.db.cursor()
            try:
                if parts.upserts is not None:
                    if parts.method == "load":
                        cur.execute(f"DELETE FROM {STAGE}")
                        self._load(cur, STAGE, self.names, parts.upserts)
                        cur.execute(self.upsert_sql)
                    else:
                        cur.executemany(self.insert_sql, parts.upserts)
                if parts.deletes is not None:
                    cur.execute(f"DELETE FROM {DELETES}")
                    if parts.method == "load":
                        self._load(cur, DELETES, "k", parts.deletes)
                    else:
                        cur.executemany(f"INSERT INTO {DELETES} (k) VALUES (%s)", parts.deletes)
                    cur.execute(self.delete_sql)
                self.db.commit()
            finally:
                cur.close()
        except pymysql.err.MySQLError as exc:
            code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else None
            if code in _MYSQL_DOWN or not self.db.open:
                raise DestinationDown(f"{self.ctx.where}: {self.ctx.conn.type} connection lost: {_first_line(exc)}") \
                    from None
            try:
                self.db.rollback()
            except pymysql.err.MySQLError:
                raise DestinationDown(f"{self.ctx.where}: {self.ctx.conn.type} connection lost: "
                                      f"{_first_line(exc)}") from None
            if parts.method == "load" and (code in _MYSQL_NO_LOCAL_FILE or "local infile" in str(exc).lower()):
                self.method = "insert"  # the server refuses LOAD DATA LOCAL: multi-row INSERT instead
                raise _Reencode() from None
            raise RecordsRefused(_first_line(exc)) from None

    def close(self) -> None:
        db = getattr(self, "db", None)
        if db is not None:
            try:
                db.close()
            except Exception:  # noqa: BLE001 - already closed by the server
                pass
