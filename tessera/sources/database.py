"""Imports of database sources: PostgreSQL, MySQL/MariaDB, SQLite and BigQuery.

One import reads the source's table or query into a new immutable raw batch table
``_tessera_raw_<source>_<batch>``, shaped like a file import: every column as text, plus
``_tessera_batch``, ``_tessera_file`` (a label such as ``postgresql:public.customers`` or
``query``), ``_tessera_line`` (the row's number in the read) and ``_tessera_hash`` (a hash of the
row's text, used to find unchanged rows; staging ignores it). The batch is recorded in the
metadata store like a file (``path`` = the label, ``sha256`` = a digest of the batch content)
and the source's schema is set from the database's column types, so staging casts the text back.

How rows travel (measured on 1,000,000 rows of PostgreSQL, see ``bench/bench_db_import.py``):

* the database is ATTACHed (READ_ONLY) with DuckDB's scanner extension (:mod:`tessera.engine.scanner`),
  loaded offline from its PyPI wheel, on the connection of ``adapter.scanner()``, and the rows of
  ``postgres_query``/``mysql_query``/``sqlite_query`` go into the warehouse with
  ``adapter.load_select``: on DuckDB the scanner runs in the warehouse and the batch is one
  ``CREATE TABLE ... AS SELECT`` (PostgreSQL rows arrive by binary COPY and never pass through
  Python); on the other warehouses (Spark, PostgreSQL) an in-memory DuckDB reads the same way and
  hands Arrow record batches of 100,000 rows to ``adapter.append``;
* when the scanner extension cannot load (``TESSERA_DB_READER=driver`` forces it), the
  database's Python driver reads with a server-side cursor, 100,000 rows at a time;
* BigQuery results stream as Arrow record batches (:mod:`tessera.connectors.bigquery`).

Memory stays flat whatever the table's size: no path holds a whole table in Python.

Import strategies:

* ``full`` reads everything each time. When the content is the same as the latest import's
  (an order-independent aggregate of the row hashes, computed in the engine), the new batch is
  dropped and nothing is recorded: importing the same data again changes nothing.
* ``incremental`` reads only the rows whose ``cursor`` is at or after (``>=``: a row changed in
  the same instant as the last one read is not missed) the last value seen, minus the
  ``lookback`` window (``10m``, ``2h``, ``1d`` for date and timestamp cursors, a number for
  numeric ones). The condition is written in the database's SQL and runs there, so the database
  uses its index on the cursor column. Rows whose cursor is NULL are read by the first import
  only. Rows whose hash equals the latest hash of their record key
  (the per-source table ``_tessera_keys_<source>``, maintained set-based in the engine) are
  dropped from the batch: rows re-read inside the look-back window that did not change add
  nothing, and a batch left empty is not recorded. The cursor's maximum is kept in the metadata
  store (state ``cursor``/<source>) once the batch is recorded.

Errors: a failed read is diagnosed by :func:`tessera.connectors.sql.check` (or the BigQuery
check), so it says whether the host is unreachable, the password refused, the table missing or
the SELECT not granted, and names the fix; the password never appears in a message.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation

import ibis
import pyarrow as pa

from tessera.config.models import SourceConfig
from tessera.connectors import bigquery
from tessera.connectors import sql as sqlconn
from tessera.engine import scanner
from tessera.engine.base import EngineAdapter
from tessera.engine.types import cast_text
from tessera.errors import ConnectionFailed, EngineError, SourceError, TesseraError
from tessera.sources.importer import ImportResult, raw_table

BATCH_ROWS = 100_000  # rows per Arrow record batch handed to a warehouse
HASH = "_tessera_hash"  # hash of a row's text (BIGINT, 63 bits)
KEY = "_tessera_key"  # a record key as one text, in the key table
META = ("_tessera_batch", "_tessera_file", "_tessera_line")
STATE = "cursor"  # metadata store scope of the incremental cursors

_NUMERIC = ("integer", "float", "decimal")


def keys_table(source: str) -> str:
    """The per-source table of record key -> latest row hash (incremental imports)."""
    return f"_tessera_keys_{source}"


# --------------------------------------------------------------------------- types

def tessera_type(duck_type: str) -> str:
    """The configuration type of a DuckDB column type (what the scanners report).

    Decimals that do not fit Tessera's DECIMAL(18, 4) without loss are read as float."""
    t = duck_type.upper().strip()
    if t in ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER",
             "UBIGINT", "UHUGEINT", "INT1", "INT2", "INT4", "INT8"):
        return "integer"
    m = re.match(r"^DECIMAL\((\d+),\s*(\d+)\)$", t)
    if m:
        precision, scale = int(m.group(1)), int(m.group(2))
        if scale == 0 and precision <= 18:
            return "integer"
        return "decimal" if scale <= 4 and precision - scale <= 14 else "float"
    if t in ("DOUBLE", "FLOAT", "REAL"):
        return "float"
    if t == "BOOLEAN":
        return "boolean"
    if t == "DATE":
        return "date"
    if t.startswith("TIMESTAMP"):
        return "timestamp"
    return "string"


def sqlite_declared_type(declared: str | None) -> str:
    """The configuration type of a SQLite column from its declared type (SQLite's affinity rules,
    plus the usual names of booleans, dates and timestamps)."""
    d = (declared or "").upper()
    if "BOOL" in d:
        return "boolean"
    if "INT" in d:
        return "integer"
    if any(w in d for w in ("CHAR", "CLOB", "TEXT")):
        return "string"
    if any(w in d for w in ("REAL", "FLOA", "DOUB")):
        return "float"
    if "DATETIME" in d or "TIMESTAMP" in d:
        return "timestamp"
    if "DATE" in d:
        return "date"
    if "DEC" in d or "NUMERIC" in d:
        return "decimal"
    return "string"


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


# --------------------------------------------------------------------------- cursor

@dataclass
class CursorBound:
    """The lower bound of an incremental read: ``column >= value`` (the last maximum minus the
    look-back window), with the column's type as the previous import saw it."""

    column: str
    type: str  # configuration type of the cursor column
    native: str  # the DuckDB type read (TIMESTAMP WITH TIME ZONE needs an explicit UTC offset)
    value: str  # numbers as text; dates and timestamps in ISO form
    separator: str = " "  # the date-time separator the source writes (SQLite stores text)


def parse_lookback(src: SourceConfig, cursor_type: str) -> timedelta | Decimal | None:
    """The source's ``lookback`` as a duration (date and timestamp cursors) or a number."""
    value = src.lookback
    if value is None:
        return None
    where = f"Source '{src.name}': lookback {value!r}"
    if cursor_type in ("date", "timestamp"):
        if not isinstance(value, str):
            raise SourceError(f"{where} is a number but cursor '{src.cursor}' is a {cursor_type}: "
                              "use a duration such as '10m', '2h' or '1d'.")
        m = re.match(r"^(\d+(?:\.\d+)?)\s*([smhd])$", value.strip())
        amount, unit = float(m.group(1)), m.group(2)
        return timedelta(**{{"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[unit]: amount})
    if cursor_type in _NUMERIC:
        if isinstance(value, str):
            raise SourceError(f"{where} is a duration but cursor '{src.cursor}' is a number: "
                              "use a number, e.g. lookback: 100.")
        return Decimal(str(value))
    raise SourceError(f"{where}: cursor '{src.cursor}' is text, which has no look-back window; remove "
                      "lookback or use a numeric, date or timestamp cursor column.")


def _parse_datetime(text: str) -> datetime:
    text = text.strip().replace("T", " ")
    text = re.sub(r"(Z|[+-]\d\d(:?\d\d)?)$", "", text)
    return datetime.fromisoformat(text)


def bound_value(src: SourceConfig, state: dict) -> CursorBound:
    """The bound of the next read from the stored cursor state and the source's look-back window."""
    ctype, value = state["type"], str(state["value"])
    lookback = parse_lookback(src, ctype)
    sep = state.get("separator", " ")
    try:
        if ctype == "timestamp":
            moment = _parse_datetime(value) - (lookback or timedelta(0))
            value = moment.strftime(f"%Y-%m-%d{sep}%H:%M:%S")
            if moment.microsecond:
                value += f".{moment.microsecond:06d}"
        elif ctype == "date":
            day = date.fromisoformat(value[:10])
            if lookback:
                day = (datetime.combine(day, datetime.min.time()) - lookback).date()
            value = day.isoformat()
        elif ctype in _NUMERIC:
            number = Decimal(value) - (lookback or Decimal(0))
            value = str(int(number)) if ctype == "integer" and number == number.to_integral_value() else str(number)
    except (ValueError, InvalidOperation) as exc:
        raise SourceError(f"Source '{src.name}': the stored cursor value {value!r} of '{src.cursor}' cannot be "
                          f"read as a {ctype} ({exc}); reset the source to import it again in full.") from exc
    return CursorBound(src.cursor, ctype, state.get("native", ""), value, sep)


def cursor_condition(conn, bound: CursorBound) -> str:
    """``cursor >= <bound>`` in the database's SQL (PostgreSQL, MySQL/MariaDB, SQLite)."""
    column = sqlconn.quote(conn, bound.column)
    if bound.type in _NUMERIC:
        return f"{column} >= {bound.value}"
    value = bound.value
    if sqlconn.dialect(conn) == "postgresql" and bound.native.upper() in ("TIMESTAMP WITH TIME ZONE", "TIMESTAMPTZ"):
        value += "+00"  # stored in UTC
    return f"{column} >= {_literal(value)}"


def _signature(src: SourceConfig) -> str:
    """What the stored cursor belongs to: another table, query or cursor starts over."""
    return hashlib.sha256(json.dumps([src.connection, src.table, src.query, src.cursor]).encode()).hexdigest()[:16]


# --------------------------------------------------------------------------- readers

class _Read:
    """How one source is read into DuckDB: ``chunks`` yields DuckDB FROM items (valid until the
    next one is asked for); ``declared_types`` are the column types the database declares."""

    label: str

    def open(self, dcon) -> None:
        pass

    def chunks(self, dcon, bound: CursorBound | None) -> Iterator[str]:
        raise NotImplementedError

    def declared_types(self) -> dict[str, str]:
        return {}

    def close(self, dcon) -> None:
        pass


class ScannerRead(_Read):
    """PostgreSQL, MySQL/MariaDB or SQLite through DuckDB's scanner extension.

    The database is ATTACHed READ_ONLY under a name of its own (the password goes into a
    temporary DuckDB secret, which ``duckdb_secrets()`` redacts, not into the ATTACH string), and
    the source's SELECT, in the database's own dialect, runs there through
    ``postgres_query``/``mysql_query``/``sqlite_query``: one statement, which the database plans
    with its own indexes (PostgreSQL rows arrive by binary COPY)."""

    def __init__(self, conn, src: SourceConfig):
        self.conn, self.src = conn, src
        self.kind = sqlconn.dialect(conn)
        self.alias = f"_tessera_src_{src.name}"
        self.secret = f"_tessera_secret_{src.name}"
        self.label = landed_label(conn, src)
        self._attached = False
        self._sqlite_types: dict[str, str] = {}

    def open(self, dcon) -> None:
        c = self.conn
        if self.kind == "postgresql":
            scanner.attach(dcon, "postgresql", self.alias, self.secret, host=c.host, port=c.port, database=c.database,
                           user=c.user, password=c.password, connect_timeout=c.connect_timeout, sslmode=c.sslmode)
        elif self.kind == "mysql":
            sqlconn.mysql_preflight(c)
            scanner.attach(dcon, "mysql", self.alias, self.secret, host=c.host, port=c.port, database=c.database,
                           user=c.user, password=c.password)
        else:
            sqlconn.sqlite_open(c).close()  # a missing or unreadable file gets its diagnosis first
            self._sqlite_types = _sqlite_types(c, self.src)
            scanner.attach(dcon, "sqlite", self.alias, self.secret, path=str(c.path))
        self._attached = True

    def chunks(self, dcon, bound):
        where = cursor_condition(self.conn, bound) if bound else None
        yield scanner.query_from(self.kind, self.alias, sqlconn.source_select(self.conn, self.src, where))

    def declared_types(self) -> dict[str, str]:
        return self._sqlite_types

    def close(self, dcon) -> None:
        scanner.detach(dcon, self.kind, self.alias, self.secret, attached=self._attached)
        self._attached = False


def _sqlite_types(conn, src: SourceConfig) -> dict[str, str]:
    """Declared types of a SQLite table's columns (queries: none, their columns read as text)."""
    if not src.table:
        return {}
    db = sqlconn.sqlite_open(conn)
    try:
        schema, name = sqlconn.table_parts(conn, src.table)
        pragma = f"PRAGMA {sqlconn.quote(conn, schema)}.table_info" if schema else "PRAGMA table_info"
        rows = db.execute(f"{pragma}({_literal(name)})").fetchall()
    except Exception:  # noqa: BLE001 - the read reports a missing table with its diagnosis
        return {}
    finally:
        db.close()
    return {r[1]: sqlite_declared_type(r[2]) for r in rows}


class ArrowRead(_Read):
    """A source read as a stream of Arrow record batches (BigQuery, or a database driver).

    ``stream(bound)`` returns (column names, declared types, iterator of record batches)."""

    def __init__(self, label: str, stream):
        self.label = label
        self._stream = stream
        self._types: dict[str, str] = {}
        self.view = "_tessera_chunk"

    def chunks(self, dcon, bound):
        names, self._types, batches = self._stream(bound)
        seen = False
        try:
            for batch in batches:
                if batch.num_rows == 0 and seen:
                    continue
                seen = True
                scanner.register(dcon, self.view, pa.Table.from_batches([batch]))
                yield self.view
            if not seen:  # an empty result still has columns
                scanner.register(dcon, self.view, pa.table({n: pa.array([], pa.string()) for n in names}))
                yield self.view
        finally:
            scanner.unregister(dcon, self.view)

    def declared_types(self) -> dict[str, str]:
        return self._types


def driver_read(conn, src: SourceConfig) -> ArrowRead:
    """Read with the database's Python driver, ``BATCH_ROWS`` rows at a time from a server-side
    cursor (the fallback when the scanner extension cannot load). Values become Arrow arrays
    column by column; DuckDB then turns them into text as on the scanner path."""
    kind = sqlconn.dialect(conn)
    label = landed_label(conn, src)

    def stream(bound):
        where = cursor_condition(conn, bound) if bound else None
        sql = sqlconn.source_select(conn, src, where)
        if kind == "postgresql":
            db = sqlconn.pg_connect(conn)
            cur = db.cursor(name="tessera_read")  # server-side: rows arrive as they are fetched
            cur.itersize = BATCH_ROWS
            declared = {}
        elif kind == "mysql":
            import pymysql.cursors

            db = sqlconn.mysql_connect(conn, bounded_handshake=True)
            db.cursor().execute("SET time_zone = '+00:00'")  # TIMESTAMP columns in UTC, as the scanner reads them
            cur = db.cursor(pymysql.cursors.SSCursor)  # unbuffered
            declared = {}
        else:
            db = sqlconn.sqlite_open(conn)
            cur = db.cursor()
            declared = _sqlite_types(conn, src)
        try:
            cur.execute(sql)
        except Exception:
            db.close()
            raise
        names = [d[0] for d in cur.description]
        # MySQL's TINYINT(1) is its boolean (the scanner reads it so)
        booleans = {i for i, d in enumerate(cur.description) if kind == "mysql" and d[1] == 1 and d[3] == 1}
        return names, declared, _driver_batches(db, cur, names, booleans)

    return ArrowRead(label, stream)


def _driver_batches(db, cur, names: list[str], booleans: set[int]) -> Iterator[pa.RecordBatch]:
    try:
        while True:
            rows = cur.fetchmany(BATCH_ROWS)
            if not rows:
                break
            columns = list(zip(*rows))
            arrays = []
            for i, values in enumerate(columns):
                try:
                    array = pa.array(values)
                    if i in booleans or pa.types.is_null(array.type):
                        array = array.cast(pa.bool_() if i in booleans else pa.string())
                    arrays.append(array)
                except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, OverflowError):
                    # mixed types (SQLite) or values Arrow does not know: their text
                    arrays.append(pa.array([None if v is None else str(v) for v in values], pa.string()))
            yield pa.RecordBatch.from_arrays(arrays, names=names)
    finally:
        try:
            cur.close()
        finally:
            db.close()


def make_read(conn, src: SourceConfig, dcon) -> _Read:
    """The fastest reader that works here for ``src``, opened on the DuckDB connection ``dcon``."""
    if conn.type == "bigquery":
        return ArrowRead(landed_label(conn, src), bigquery.arrow_stream(conn, src, BATCH_ROWS))
    if os.environ.get("TESSERA_DB_READER", "").strip().lower() == "driver":
        return driver_read(conn, src)
    read = ScannerRead(conn, src)
    try:
        read.open(dcon)
    except scanner.ExtensionUnavailable:
        read.close(dcon)
        return driver_read(conn, src)
    except BaseException:
        read.close(dcon)
        raise
    return read


# --------------------------------------------------------------------------- landing

@dataclass
class Landed:
    columns: list[str]
    types: dict[str, str]  # configuration types
    natives: dict[str, str]  # DuckDB types of the read
    rows: int


def land(adapter: EngineAdapter, conn, src: SourceConfig, table: str, batch: int,
         bound: CursorBound | None, progress=None) -> Landed:
    """Read ``src`` (rows at or after ``bound``) into the new table ``table`` of the warehouse."""
    with adapter.scanner() as dcon:
        read = None
        try:
            read = make_read(conn, src, dcon)
            described: list[tuple[str, str]] = []
            natives: dict[str, str] = {}  # per column, the first type other than VARCHAR over the chunks
            rows = 0
            created = False
            for from_item in read.chunks(dcon, bound):
                described = scanner.describe(dcon, from_item)
                _check_names(src, [n for n, _ in described])
                for n, t in described:
                    if natives.get(n, "VARCHAR") == "VARCHAR":
                        natives[n] = t  # (a column NULL all along a chunk is read as text there)
                done = rows

                def report(n: int, done: int = done, label: str = read.label) -> None:
                    progress(f"{label}: {done + n:,} rows")

                select = scanner.text_select(from_item, described, hash_column=HASH, batch=batch, label=read.label,
                                             offset=rows)
                rows += adapter.load_select(dcon, table, select, create=not created, batch_rows=BATCH_ROWS,
                                            progress=report if progress else None)
                created = True
            declared = read.declared_types()
            types = {n: declared.get(n) or tessera_type(natives[n]) for n, _ in described}
            return Landed([n for n, _ in described], types, natives, rows)
        except BaseException as exc:
            _drop_quietly(adapter, table)
            # The engine's refusal of the read (EngineError) is the database's answer: diagnose it.
            if not isinstance(exc, Exception) or (isinstance(exc, TesseraError)
                                                  and not isinstance(exc, (ConnectionFailed, EngineError))):
                raise
            raise diagnose(conn, src, exc) from exc
        finally:
            if read is not None:
                read.close(dcon)


def _drop_quietly(adapter: EngineAdapter, table: str) -> None:
    try:
        adapter.drop_table(table)
    except Exception:  # noqa: BLE001 - the original error matters more
        pass


def _check_names(src: SourceConfig, names: list[str]) -> None:
    clash = [n for n in names if n.startswith("_tessera_")]
    if clash:
        raise SourceError(f"Source '{src.name}': column(s) {', '.join(clash)} use the reserved prefix _tessera_; "
                          "rename them in the source's query (AS ...).")


def diagnose(conn, src: SourceConfig, exc: Exception) -> TesseraError:
    """The error to raise for a failed read: the connection check's diagnosis when it finds one
    (unreachable, auth_refused, not_found, permission_denied, timeout), else a SourceError."""
    if isinstance(exc, ConnectionFailed):
        return ConnectionFailed(f"Source '{src.name}': {exc}", reason=exc.reason)
    if conn.type == "bigquery":
        found = bigquery.failure(conn, exc)
        return ConnectionFailed(f"Source '{src.name}': {found}", reason=found.reason)
    try:
        sqlconn.check(conn, [src])
    except ConnectionFailed as failure:
        return ConnectionFailed(f"Source '{src.name}': {failure}", reason=failure.reason)
    except Exception:  # noqa: BLE001 - the original error says more
        pass
    text = sqlconn.scrub(conn, str(exc))
    what = f"table {src.table}" if src.table else "its query"
    return SourceError(f"Source '{src.name}': reading {what} from connection '{conn.name}' failed: "
                       f"{text.strip()}")


# --------------------------------------------------------------------------- import

def _digest(adapter: EngineAdapter, table: str, landed: Landed) -> tuple[str, int]:
    """(digest of a batch's content, rows): the same rows in any order give the same digest.

    Computed in the engine from the row hashes: their count and two sums of 32-bit halves."""
    t = adapter.table(table)
    h = t[HASH]
    sums = t.aggregate(n=t.count(), hi=(h // 4294967296).sum(), lo=(h % 4294967296).sum())
    row = adapter.to_arrow(sums).to_pylist()[0]
    shape = [(c, landed.natives.get(c, "")) for c in landed.columns]
    text = json.dumps([shape, int(row["n"]), int(row["hi"] or 0), int(row["lo"] or 0)])
    return hashlib.sha256(text.encode()).hexdigest(), int(row["n"])


def _key(t: ibis.Table, keys: list[str]) -> ibis.Value:
    parts = [t[k].fill_null("") for k in keys]
    out = parts[0]
    for p in parts[1:]:
        out = out.concat("|", p)
    return out


def _cursor_max(adapter: EngineAdapter, table: str, src: SourceConfig, landed: Landed) -> dict | None:
    """The state to keep after an incremental import: the cursor's maximum in the rows read."""
    ctype = src.types.get(src.cursor) or landed.types.get(src.cursor, "string")  # a declared type wins
    t = adapter.table(table)
    text = t[src.cursor]
    typed = cast_text(text, "float" if ctype == "decimal" else ctype)
    row = adapter.to_arrow(t.aggregate(m=typed.max(), s=text.max())).to_pylist()[0]
    value = row["m"]
    if value is None:
        return None
    if isinstance(value, datetime):
        value = value.replace(tzinfo=None).isoformat(sep=" ")
    elif isinstance(value, date):
        value = value.isoformat()
    elif isinstance(value, float):
        value = repr(value)
    separator = "T" if ctype == "timestamp" and "T" in (row["s"] or "") else " "
    return {"value": str(value), "type": ctype, "native": landed.natives.get(src.cursor, ""),
            "separator": separator, "signature": _signature(src)}


def _validate(src: SourceConfig, landed: Landed, conn) -> None:
    needed = [*src.record_keys, *([src.cursor] if src.import_strategy == "incremental" else [])]
    missing = [c for c in needed if c not in landed.columns]
    if missing:
        what = f"table {src.table}" if src.table else "its query"
        raise SourceError(
            f"Source '{src.name}': column(s) {', '.join(missing)} (record keys / cursor) are not in {what} on "
            f"connection '{conn.name}' (columns: {', '.join(landed.columns)}); fix record_keys or cursor.")


def import_database_source(adapter: EngineAdapter, store, src: SourceConfig, conn, progress=None) -> ImportResult:
    """Import ``src`` from the database connection ``conn`` (secrets revealed) into a new raw batch.

    Returns what was imported: ``files_new`` is 1 when a batch was recorded, ``files_skipped``
    is 1 when the data read added nothing (same content as the last full import, or no new or
    changed row since the last incremental one).

    Raises:
        ConnectionFailed: the database cannot be reached or read (reason says why).
        SourceError: the source's settings do not fit what the database returns.
    """
    result = ImportResult(src.name)
    history = store.list_imported_files(src.name)
    read_at = datetime.now(timezone.utc)
    keys_name = keys_table(src.name)
    incremental = src.import_strategy == "incremental"
    if not incremental or not history:
        # The key table serves incremental imports only and must match the recorded batches.
        if adapter.exists(keys_name):
            adapter.drop_table(keys_name)
    bound = None
    if incremental and history:
        state = store.get_state(STATE, src.name)
        if state and state.get("signature") == _signature(src):
            bound = bound_value(src, state)

    label = landed_label(conn, src)
    batch = store.next_batch_id()
    table = raw_table(src.name, batch)
    landed = land(adapter, conn, src, table, batch, bound, progress)
    try:
        _validate(src, landed, conn)
        cursor_state = _cursor_max(adapter, table, src, landed) if incremental else None
        read_rows = landed.rows
        where = f" where {src.cursor} >= {bound.value}" if bound else ""
        if incremental and history and adapter.exists(keys_name):
            # Keep only new or changed rows: (record key, row hash) not in the key table.
            t = adapter.table(table)
            keyed = t.mutate(**{KEY: _key(t, src.record_keys)})
            kept = keyed.anti_join(adapter.table(keys_name), [KEY, HASH])
            final_batch = store.next_batch_id()
            final = raw_table(src.name, final_batch)
            adapter.create_table(final, kept.select(
                *landed.columns, HASH, _tessera_batch=ibis.literal(final_batch).cast("int64"),
                _tessera_file=kept._tessera_file, _tessera_line=kept._tessera_line))
            adapter.drop_table(table)
            table, batch = final, final_batch
        digest, rows = _digest(adapter, table, landed)
        if history and (rows == 0 if incremental else digest == history[-1]["sha256"]):
            adapter.drop_table(table)
            result.files_skipped = 1
            result.messages.append(
                f"{label}: {read_rows:,} rows read{where}, no new or changed row" if incremental else
                f"{label}: {rows:,} rows, unchanged since batch {history[-1]['batch_id']}")
            return result
        store.set_source_schema(src.name, [(c, landed.types[c]) for c in landed.columns])
        store.add_imported_file(
            source=src.name, path=label, name=f"{label} @ {read_at.strftime('%Y-%m-%d %H:%M:%S')} UTC",
            sha256=digest, size=rows, batch_id=batch, imported_at=read_at, rows=rows, rejected=0,
            status="imported")
    except BaseException:
        adapter.drop_table(table)
        raise
    if incremental:
        _update_keys(adapter, keys_name, table, src)
        if cursor_state is not None:
            store.set_state(STATE, src.name, cursor_state)
    result.files_new = 1
    result.rows = rows
    read = f" of {read_rows:,} read{where}" if incremental else ""
    result.messages.append(f"{label}: {rows:,} rows imported{read}")
    return result


def landed_label(conn, src: SourceConfig) -> str:
    """The label of a source's batches (``_tessera_file`` and the imported file's path)."""
    if src.query:
        return "query"
    if conn.type == "bigquery":
        return f"bigquery:{bigquery.table_id(conn, src.table)}"
    return f"{conn.type}:{sqlconn.table_label(conn, src.table)}"


def _update_keys(adapter: EngineAdapter, keys_name: str, table: str, src: SourceConfig) -> None:
    """Set-based upsert of the batch's (record key, row hash) pairs into the key table."""
    t = adapter.table(table)
    batch_keys = t.mutate(**{KEY: _key(t, src.record_keys)}).group_by(KEY).agg(**{HASH: ibis._[HASH].max()})
    if adapter.exists(keys_name):
        old = adapter.table(keys_name)
        merged = old.anti_join(batch_keys, KEY).select(KEY, HASH).union(batch_keys.select(KEY, HASH))
    else:
        merged = batch_keys.select(KEY, HASH)
    adapter.create_table(keys_name, merged)
