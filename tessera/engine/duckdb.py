"""The embedded default engine: one DuckDB file inside the workspace."""

from __future__ import annotations

import os
import time
from datetime import timezone
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import ClassVar

import duckdb
import ibis
import ibis.expr.operations as ops
import pyarrow as pa

from tessera.engine import filereader
from tessera.engine.base import (CATALOG, PREFIX, Compiled, FileImport, Patch, Prepared, SqlCatalogAdapter, caused_by,
                                 index_name, q, shared_parts_inlined)
from tessera.engine.dialects import DuckDBDialect
from tessera.errors import EngineError, WorkspaceError


def _patch_compiler() -> None:
    """Ibis trims ``string.whitespace`` with TRIM(x, chars), several times slower in DuckDB than
    testing for blanks at either end first, which most values do not have. The test compares the
    code of the first and the last character with 32 (every character TRIM removes is at most
    32): quicker than a regular expression (docs/performance.md has the figures)."""
    import sqlglot.expressions as sge
    from ibis.backends.sql.compilers.duckdb import DuckDBCompiler

    def visit_strip(self, op, *, arg):
        def control(text):
            return sge.LTE(this=self.f.ascii(text), expression=sge.convert(32))

        blank_end = sge.Or(this=control(arg), expression=control(self.f.right(arg, 1)))
        return self.if_(blank_end, self.f.trim(arg, " \t\n\r\x0b\x0c"), arg)

    DuckDBCompiler.visit_Strip = visit_strip

    # Inside EngineAdapter.shared_parts_recomputed, the CTEs of a query are inlined (see there).
    translate = DuckDBCompiler.translate

    def translate_inlining(self, op, *, params):
        return shared_parts_inlined(translate(self, op, params=params))

    DuckDBCompiler.translate = translate_inlining


_patch_compiler()


#: DuckDB's compression methods of text columns (see TESSERA_DUCKDB_TEXT_COMPRESSION)
TEXT_COMPRESSION = "fsst,dict_fsst,dictionary"
#: DuckDB's memory when neither pipeline.memory_limit nor TESSERA_DUCKDB_MEMORY_LIMIT is set
#: (DuckDB's own default, 80% of the machine's memory, let a run of 10M records take 14 GB; at
#: 512 MB a run of a million records peaks under 1 GB, but the merge of 10M runs out of memory)
DEFAULT_MEMORY_LIMIT = "1536MB"
#: the least a run's default memory limit is scaled to (see DuckDBAdapter.fit_memory), and the
#: bytes per value (row x column) of the raw batches it grows by: a million contacts of ten
#: columns keep the least, from 32 million values (3.2 million rows of ten columns) the default applies
LEAST_MEMORY_LIMIT = 512 * 10**6  # (DuckDB's MB are 10^6 bytes)
BYTES_PER_VALUE = 48


class DuckDBAdapter(SqlCatalogAdapter):
    name = "duckdb"
    dialect = DuckDBDialect()
    authoring_types = True
    patches_in_place = True
    cheap_views = True
    prunes_by_order = True
    narrows_in_place = True

    def __init__(self, path: str, *, read_only: bool = False, threads: int | None = None,
                 memory_limit: str | None = None):
        self.path = path
        # Another process may hold the file for a moment (the server's event loader does, each
        # second): wait a little (TESSERA_LOCK_WAIT, default 10 s) before giving up.
        deadline = time.monotonic() + float(os.environ.get("TESSERA_LOCK_WAIT", "10"))
        while True:
            try:
                con = ibis.duckdb.connect(path, read_only=read_only)
                break
            except duckdb.IOException as exc:
                if "lock" not in str(exc).lower():
                    raise
                if time.monotonic() < deadline:
                    time.sleep(0.05)
                    continue
                raise WorkspaceError(
                    f"The warehouse {path} is open for writing by another process ({exc}). "
                    "Wait for the running command to finish, or stop it."
                ) from exc
        super().__init__(con)
        self.raw = con.con  # the duckdb connection, for the few statements Ibis cannot say
        self._views: set[str] = set()  # the temporary views this connection made (see drop_table)
        settings = {"preserve_insertion_order": "false"}
        if not read_only and os.environ.get("TESSERA_DUCKDB_TEXT_COMPRESSION", "") not in ("1", "on", "true"):
            # Text columns are written plain: compressing them (dictionary, FSST) was most of the
            # cost of writing a table (a million contacts: 2.4 s of CPU against 0.5 s), for a file
            # about three times smaller. Numbers, dates and repeated values keep their compression.
            settings["disabled_compression_methods"] = TEXT_COMPRESSION
        if threads:
            settings["threads"] = str(threads)
        if memory_limit or os.environ.get("TESSERA_DUCKDB_MEMORY_LIMIT"):
            settings["memory_limit"] = memory_limit or os.environ["TESSERA_DUCKDB_MEMORY_LIMIT"]
        elif path != ":memory:":
            # Past it DuckDB spills its work tables to the warehouse's temporary folder
            # (warehouse.duckdb.tmp): a run's memory stays bounded whatever the data's size.
            settings["memory_limit"] = DEFAULT_MEMORY_LIMIT
            self.fitted_memory = True  # a run scales it to its data (fit_memory)
        for key, value in settings.items():
            self.raw.execute(f"SET {key} = '{value}'")
        # what a job without a memory limit of its own gets back (RESET would not apply it), as it
        # was set: DuckDB shows it rounded ('1.4 GiB' for 1536MB), which set again would be less
        self.default_memory_limit = settings.get("memory_limit") or \
            self.raw.execute("SELECT current_setting('memory_limit')").fetchone()[0]

    def reader(self) -> "DuckDBAdapter":
        # A cursor is a connection of its own to the same database instance: its own transaction
        # (reads see the last commit, not the writer's work in progress), no file lock to take.
        reader = DuckDBAdapter.__new__(DuckDBAdapter)
        cursor = self.raw.cursor()
        SqlCatalogAdapter.__init__(reader, ibis.duckdb.from_connection(cursor))
        reader.path = self.path
        reader.raw = cursor
        reader._parsed = {}
        reader._views = set()
        return reader

    def interrupt(self) -> None:
        self.raw.interrupt()

    #: Ibis types by DuckDB's name of a type and nullability (Ibis parses the name with sqlglot:
    #: some 40 us a column, a run looks up hundreds of columns)
    _types: ClassVar[dict[tuple[str, bool], object]] = {}

    def _type(self, name: str, nullable: bool):
        typ = self._types.get((name, nullable))
        if typ is None:
            typ = self._types[(name, nullable)] = self.con.compiler.type_mapper.from_string(name, nullable=nullable)
        return typ

    def table(self, name: str) -> ibis.Table:
        # The columns read straight from the connection: Ibis's own lookup builds its DESCRIBE
        # with sqlglot and reads the answer as Arrow (about 0.9 ms a table against 0.2 ms; a run
        # looks some fifty tables up, an incremental run's share of it is felt).
        try:
            rows = self.raw.execute(f"DESCRIBE {q(name)}").fetchall()
        except duckdb.CatalogException:
            return self.con.table(name)  # Ibis's own error (the table is not found)
        schema = ibis.schema({column: self._type(typ, null == "YES") for column, typ, null, *_ in rows})
        if schema.geospatial:  # Ibis loads DuckDB's spatial extension for these
            return self.con.table(name)
        return ops.DatabaseTable(name, schema=schema, source=self.con,
                                 namespace=ops.Namespace(catalog=None, database=None)).to_expr()

    @contextmanager
    def read_often(self) -> Iterator[None]:
        # Text columns of few distinct values (names, countries, statuses) written as dictionaries
        # (DuckDB picks them per block, where they pay): a filter computes its function once per
        # distinct value of a block instead of once per row, and reads a few bytes per row (a
        # filtered page of a million contacts: about 2.5 times faster). A million rows cost about
        # half a second more of CPU to write; FSST (ids, e-mails) stays off, slower to read.
        disabled = self.raw.execute("SELECT current_setting('disabled_compression_methods')").fetchone()[0] or ""
        methods = [m.strip().lower() for m in disabled.split(",") if m.strip()]
        if "dictionary" not in methods:
            yield
            return
        self.raw.execute("SET disabled_compression_methods = ?", [",".join(m for m in methods if m != "dictionary")])
        try:
            yield
        finally:
            self.raw.execute("SET disabled_compression_methods = ?", [",".join(methods)])

    def indexed_table(self, name: str) -> ibis.Table:
        # DuckDB scans the whole table behind a view even for an equality on an indexed column
        # (an email among a million records: 20 ms through the view, 1 ms on the table).
        return self.table(self.published_target(name) or name)

    placeholder = "?"
    # A point read with a LIMIT costs DuckDB about a sixth more than without; its results stream,
    # so the fetch stops after the first rows instead.
    _fetch_stops = True
    _parsed: dict | None = None  # a reader's parsed statements, by their text

    def fetch(self, prepared: Prepared, **bound) -> list[dict]:
        statement = prepared.text
        parsed = self._parsed
        if parsed is not None:  # a reader (one per thread): each statement is parsed once
            statement = parsed.get(prepared.text)
            if statement is None:
                if len(parsed) > 256:  # texts of older publications
                    parsed.clear()
                try:
                    statement = parsed[prepared.text] = self.raw.extract_statements(prepared.text)[0]
                except duckdb.Error as exc:
                    raise EngineError(f"DuckDB refused a statement: {exc}", sql=prepared.text) from exc
        try:
            result = self.raw.execute(statement, prepared.values(bound))
        except duckdb.Error as exc:
            raise EngineError(f"DuckDB refused a statement: {exc}", sql=prepared.text) from exc
        # Plain tuples: for the few rows of a point read, building Arrow first costs more.
        names = [d[0] for d in result.description]
        zoned = [i for i, d in enumerate(result.description) if str(d[1]).upper() == "TIMESTAMP WITH TIME ZONE"]
        if prepared.first is None:
            rows = result.fetchall()
        else:
            # One row more than wanted: a result of at most ``first`` rows is then read to its end,
            # which ends the statement (and its snapshot of the warehouse) at once.
            rows = result.fetchmany(prepared.first + 1)[:prepared.first]
        if zoned:  # in UTC, as Arrow gives them (DuckDB gives them in the session's time zone)
            rows = [tuple(v.astimezone(timezone.utc) if i in zoned and v is not None else v
                          for i, v in enumerate(row)) for row in rows]
        return [dict(zip(names, row)) for row in rows]

    def index(self, table: str, column: str) -> bool:
        # An ART index: a customer's rows are found without reading the whole column (at 1M
        # records a scan of the id column costs about 20 ms, the index lookup well under 1 ms).
        name = index_name(table, column)
        found = self.sql("SELECT count(*) FROM duckdb_indexes() WHERE index_name = ? AND table_name = ?",
                         [name, table]).fetchone()[0]
        if found:
            return False
        self.sql(f"CREATE INDEX IF NOT EXISTS {q(name)} ON {q(table)} ({q(column)})")
        return True

    def range_index(self, table: str, column: str) -> bool:
        # A table created sorted keeps its order; each row group's min/max of the column (its zone
        # map) lets a range read skip every group outside the range: no ART index (built slowly
        # and held in memory for millions of short texts) is needed.
        return False

    #: the default memory limit may be scaled to the data (no limit set by a setting or the environment)
    fitted_memory = False
    #: the job running set a memory limit of its own (pipeline.memory_limit)
    job_memory = False

    def set_memory_limit(self, limit: str | None) -> None:
        # Past the limit DuckDB spills to its temporary folder (beside the warehouse file), then fails.
        self.job_memory = limit is not None
        limit = limit or getattr(self, "default_memory_limit", None)
        if limit:
            self.sql(f"SET memory_limit = '{limit.replace(chr(39), '')}'")

    def fit_memory(self) -> None:
        # DuckDB keeps the blocks it reads and writes in memory up to its limit: with the default,
        # a run over a million contacts held 1.5 GB where 512 MB do (work tables spill past the
        # limit). The limit follows the values of the raw batches (every source's data) from
        # LEAST_MEMORY_LIMIT up to the default: a long or a wide source keeps the default.
        if not self.fitted_memory or self.job_memory:
            return
        values = self.sql(
            "SELECT coalesce(sum(estimated_size * column_count), 0) FROM duckdb_tables() "
            "WHERE NOT temporary AND starts_with(table_name, '_tessera_raw_')").fetchone()[0]
        ceiling = int(DEFAULT_MEMORY_LIMIT.removesuffix("MB")) * 10**6
        limit = min(max(int(values) * BYTES_PER_VALUE, LEAST_MEMORY_LIMIT), ceiling)
        self.sql(f"SET memory_limit = '{limit}B'")

    def unfit_memory(self) -> None:
        if not self.job_memory:
            self.set_memory_limit(None)

    def out_of_memory(self, exc: BaseException) -> bool:
        return caused_by(exc, duckdb.OutOfMemoryException, "Out of Memory Error")

    def sql(self, statement: str, params: list | None = None):
        try:
            return self.raw.execute(statement, params or [])
        except duckdb.Error as exc:
            raise EngineError(f"DuckDB refused a statement: {exc}", sql=statement) from exc

    def count(self, expr: ibis.Table) -> int:
        # One row fetched straight from the connection: no result frame built (a run counts its
        # work tables a few dozen times).
        op = expr.op()
        if isinstance(op, ops.DatabaseTable) and op.namespace == ops.Namespace(catalog=None, database=None):
            # a stored table (a run's work table, counted as soon as made) is named, not compiled
            return int(self.sql(f"SELECT count(*) FROM {q(op.name)}").fetchone()[0])
        self.con._run_pre_execute_hooks(expr)
        return int(self.raw.execute(f"SELECT count(*) FROM ({self.con.compile(expr)})").fetchone()[0])

    def create_table(self, name: str, obj, *, overwrite: bool = True, temp: bool = False) -> ibis.Table:
        if isinstance(obj, pa.Table):
            return self.con.create_table(name, obj, overwrite=overwrite, temp=temp)
        # One CREATE ... AS: Ibis would build a temporary table under another name and copy it.
        text = obj.text if isinstance(obj, Compiled) else None
        obj = obj.expr if isinstance(obj, Compiled) else obj
        self.con._run_pre_execute_hooks(obj)
        kind = "TEMP TABLE" if temp else "TABLE"
        replace = "OR REPLACE " if overwrite else ""
        self.sql(f"CREATE {replace}{kind} {q(name)} AS {text or self.con.compile(obj)}")
        return self.table(name)

    #: the compression of a text column by what it holds (see create_table_hinted)
    COMPRESSION: ClassVar[dict[str, str]] = {"few": "dictionary", "distinct": "fsst"}

    def create_table_hinted(self, name: str, obj, hints: dict[str, str]) -> ibis.Table:
        # DuckDB tries each compression method on each block of a column (dictionary building a
        # hash table of unique ids too): with the method given, millions of rows are written
        # with about a third less work. Declared in the table's definition, so later inserts
        # keep it: built under another name, swapped in one transaction.
        if isinstance(obj, pa.Table):
            obj = ibis.memtable(obj)
        self.con._run_pre_execute_hooks(obj)
        query = self.con.compile(obj)
        columns = ", ".join(
            f"{q(column)} {typ}" + (f" USING COMPRESSION {self.COMPRESSION[hints[column]]}"
                                    if typ == "VARCHAR" and hints.get(column) in self.COMPRESSION else "")
            for column, typ, *_ in self.sql(f"DESCRIBE {query}").fetchall())
        building = f"{PREFIX}building_{name}"
        with self._transaction():
            self.sql(f"CREATE OR REPLACE TABLE {q(building)} ({columns})")
            self.sql(f"INSERT INTO {q(building)} {query}")
            self.sql(f"DROP TABLE IF EXISTS {q(name)}")
            self.sql(f"ALTER TABLE {q(building)} RENAME TO {q(name)}")
        return self.table(name)

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        """The statements of the block in one transaction: committed at its end, rolled back if
        it raises (an interrupt included)."""
        self.sql("BEGIN TRANSACTION")
        try:
            yield
            self.sql("COMMIT")
        except BaseException:
            self.sql("ROLLBACK")
            raise

    def create_view(self, name: str, expr: ibis.Table) -> ibis.Table:
        self.con._run_pre_execute_hooks(expr)
        self.sql(f"CREATE OR REPLACE TEMP VIEW {q(name)} AS {self.con.compile(expr)}")
        self._views.add(name)
        return self.table(name)

    def drop_table(self, name: str) -> None:
        # A run's view (see create_view) is listed with the tables, and DROP TABLE refuses it:
        # the views this connection made are known, another name is looked up only when DROP
        # TABLE refuses it (a run drops some twenty tables: one statement each, not two).
        if name in self._views:
            self.sql(f"DROP VIEW IF EXISTS {q(name)}")
            self._views.discard(name)
            return
        try:
            self.sql(f"DROP TABLE IF EXISTS {q(name)}")
        except EngineError:
            kind = self.sql("SELECT table_type FROM information_schema.tables WHERE table_name = ? "
                            "ORDER BY table_catalog = 'temp' DESC LIMIT 1", [name]).fetchone()
            if not kind or kind[0] != "VIEW":
                raise
            self.sql(f"DROP VIEW IF EXISTS {q(name)}")

    def narrow_table(self, table: str, name: str, columns: list[str], *, unless: str) -> None:
        # The rows deleted (a few rejects, usually none) and the columns dropped in place: DuckDB
        # rewrites nothing (a copy of a million staged rows cost about 0.7 s of CPU).
        have = [row[0] for row in self.sql(f"DESCRIBE {q(table)}").fetchall()]
        temporary = self.sql("SELECT count(*) FROM duckdb_tables() WHERE table_name = ? AND temporary",
                             [table]).fetchone()[0]
        if temporary or [c for c in have if c in columns] != list(columns):
            super().narrow_table(table, name, columns, unless=unless)
            return
        # (a delete and an alter of one table in one transaction fail to commit in DuckDB)
        self.sql(f"DELETE FROM {q(table)} WHERE {q(unless)} IS NOT NULL")
        with self._transaction():
            for column in have:
                if column not in columns:
                    self.sql(f"ALTER TABLE {q(table)} DROP COLUMN {q(column)}")
            self.sql(f"DROP TABLE IF EXISTS {q(name)}")
            self.sql(f"ALTER TABLE {q(table)} RENAME TO {q(name)}")

    def with_row_index(self, table: ibis.Table, name: str) -> ibis.Table:
        # An unordered row number needs no sort.
        return table.mutate(**{name: ibis.row_number().over()})

    def exists(self, name: str) -> bool:
        # (one name looked up: a run asks some fifty times, and listing every table costs twice as much)
        return self.sql("SELECT 1 FROM information_schema.tables WHERE table_schema = 'main' AND table_name = ? "
                        "LIMIT 1", [name]).fetchone() is not None

    def list_tables(self) -> list[str]:
        rows = self.sql(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'"
        ).fetchall()
        return [r[0] for r in rows]

    def import_file(self, path: str, fmt: str, *, table: str, options: dict, decimal_comma: bool,
                    batch: int, file_name: str, declared: frozenset = frozenset()) -> FileImport:
        # Parse straight into the warehouse: no round trip through Python memory.
        tmp = f"{table}__parse"
        constants = (f"CAST({int(batch)} AS BIGINT) AS _tessera_batch, "
                     f"CAST({filereader.ql(file_name)} AS VARCHAR) AS _tessera_file")
        # A Parquet file is read straight into the raw table (its rows need no copy).
        read = filereader.read_file(self.raw, path, fmt, table=tmp, keep_as=(table, constants), **options)
        done = False
        try:
            # Declared types need no inference (it reads every value).
            types = filereader.infer_types(self.raw, read.table, [c for c in read.columns if c not in declared],
                                           decimal_comma=decimal_comma)
            if read.table != table:
                self.sql(f"CREATE OR REPLACE TABLE {q(table)} AS SELECT *, {constants} FROM {q(read.table)}")
            rejects = self.sql(f"SELECT * FROM {q(read.rejects_table)} ORDER BY line").to_arrow_table()
            done = True
        finally:
            if read.table != table or not done:
                self.sql(f"DROP TABLE IF EXISTS {q(read.table)}")
            self.sql(f"DROP TABLE IF EXISTS {q(read.rejects_table)}")
        return FileImport(read.columns, read.rows, read.rejected, types, rejects)

    @contextmanager
    def scanner(self) -> Iterator[duckdb.DuckDBPyConnection]:
        yield self.raw  # a source database is read straight into the warehouse

    def load_select(self, scanner: duckdb.DuckDBPyConnection, table: str, select: str, *, create: bool,
                    batch_rows: int, progress: Callable[[int], None] | None = None) -> int:
        if create:
            self.sql(f"CREATE TABLE {q(table)} AS {select}")
            rows = self.sql(f"SELECT count(*) FROM {q(table)}").fetchone()[0]
        else:
            rows = self.sql(f"INSERT INTO {q(table)} {select}").fetchone()[0]
        if progress:
            progress(rows)
        return rows

    def publish(self, views: dict[str, str | None], patches: list[Patch] = ()) -> None:
        # One transaction: readers see either the whole previous state or the whole new one.
        self.sql(f"CREATE TABLE IF NOT EXISTS {CATALOG} (name VARCHAR PRIMARY KEY, target VARCHAR)")
        self.sql("BEGIN TRANSACTION")
        try:
            self._apply(list(patches))
            for view, table in views.items():
                if table is None:  # withdrawn
                    self.sql(f"DROP VIEW IF EXISTS {q(view)}")
                    self.sql(f"DELETE FROM {CATALOG} WHERE name = ?", [view])
                    continue
                self.sql(f"CREATE OR REPLACE VIEW {q(view)} AS SELECT * FROM {q(table)}")
                self.sql(f"INSERT OR REPLACE INTO {CATALOG} VALUES (?, ?)", [view, table])
            self.sql("COMMIT")
        except Exception:
            self.sql("ROLLBACK")
            raise
        # Rows deleted by patches would be compacted away ("vacuum") by the checkpoint, which
        # rewrites the row groups around them: seconds for a million rows however few were
        # deleted. They stay (see dead_share: the pipeline copies a table that holds too many).
        vacuum = self.raw.execute("SELECT current_setting('max_vacuum_tasks')").fetchone()[0]
        try:
            if patches:
                self.raw.execute("SET max_vacuum_tasks = 0")
            self.raw.execute("CHECKPOINT")
        except duckdb.TransactionException:
            # Readers on other cursors (the server's API) are active: the publication is durable in
            # the write-ahead log already, and DuckDB checkpoints it later by itself.
            pass
        finally:
            self.raw.execute(f"SET max_vacuum_tasks = {int(vacuum)}")

    def dead_share(self, table: str) -> float:
        stored = self.sql("SELECT estimated_size FROM duckdb_tables() WHERE table_name = ? AND schema_name = 'main' "
                          "AND NOT temporary", [table]).fetchone()
        live = self.sql(f"SELECT count(*) FROM {q(table)}").fetchone()[0]
        return 1 - live / stored[0] if stored and stored[0] else 0.0


    def export(self, expr: ibis.Table, path: str, fmt: str) -> None:
        sql = self.con.compile(expr)
        options = "FORMAT csv, HEADER true" if fmt == "csv" else "FORMAT parquet"
        self.sql(f"COPY ({sql}) TO '{path.replace(chr(39), chr(39) * 2)}' ({options})")


@contextmanager
def authoring_probe(schema: ibis.Schema) -> Iterator[tuple[DuckDBAdapter, ibis.Table]]:
    """An in-memory DuckDB adapter and an empty table of ``schema`` in it: there user SQL shows the
    types DuckDB, its authoring dialect, gives it (the reference every engine is cast to)."""
    probe = DuckDBAdapter(":memory:")
    try:
        yield probe, probe.create_table("t", schema.to_pyarrow().empty_table())
    finally:
        probe.close()
