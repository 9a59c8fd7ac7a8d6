"""The engine adapter: everything Tessera asks of a warehouse engine.

The pipeline speaks Ibis; an adapter owns the connection, the naming of tables, the few
operations whose SQL differs by engine (file parsing, atomic publication) and the capability
flags that tell the pipeline what the engine can do. No engine-specific SQL lives outside
this package.
"""

from __future__ import annotations

import contextvars
import hashlib
import re
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, ClassVar

import duckdb
import ibis
import pyarrow as pa
import sqlglot as sg
import sqlglot.expressions as sge

from tessera.engine import filereader
from tessera.engine.dialects import Dialect

PREFIX = "_tessera_"
_PARAM = "__tessera_param__"
_PARAM_RE = re.compile("'" + _PARAM + r"([A-Za-z0-9]+)__'")


def param(name: str) -> ibis.Value:
    """A text value left open in a query that :meth:`EngineAdapter.prepare` compiles once: it is
    bound at each :meth:`EngineAdapter.fetch` (``name``: letters and digits)."""
    if not name.isalnum():
        raise ValueError(f"a parameter name is letters and digits, not {name!r}")
    return ibis.literal(f"{_PARAM}{name}__", type="string")


@dataclass(frozen=True)
class Prepared:
    """A query compiled once (see :meth:`EngineAdapter.prepare`): its SQL text and the parameter
    bound at each placeholder, in order."""

    text: str
    names: tuple[str, ...]
    #: at most this many rows are read (None: all); see :meth:`EngineAdapter.prepare`
    first: int | None = None

    def values(self, bound: dict[str, Any]) -> list[Any]:
        return [bound[n] for n in self.names]


@dataclass(frozen=True)
class Compiled:
    """A query with its SQL text for this engine already written (see :meth:`EngineAdapter.template`
    and :meth:`EngineAdapter.fill`): :meth:`EngineAdapter.create_table` runs the text as it is, the
    expression gives the columns."""

    expr: ibis.Table
    text: str


def q(name: str) -> str:
    """Quote an identifier for SQL text built inside the engine package."""
    return '"' + name.replace('"', '""') + '"'


def index_name(table: str, column: str) -> str:
    """The name of the index of ``column`` of ``table`` (short enough for every engine)."""
    return PREFIX + "ix_" + hashlib.sha1(f"{table}.{column}".encode()).hexdigest()[:16]


@dataclass
class FileImport:
    """What one parsed file gave: good rows (all text, with their line) and rejected rows."""

    columns: list[str]
    rows: int
    rejected: int
    types: dict[str, str]
    rejects: pa.Table  # line, column_name, reason, raw
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Patch:
    """Rows of a published table replaced when a run publishes, in the publication's transaction
    (see :attr:`EngineAdapter.patches_in_place`): the rows whose ``key`` is in ``remove`` go, the
    rows of ``add`` (the table's columns) come in."""

    table: str
    key: str
    remove: ibis.Table  # with a column ``key``
    add: ibis.Table


def caused_by(exc: BaseException | None, kind: type, text: str) -> bool:
    """Whether ``exc`` or an exception in its chain of causes is a ``kind`` (or says ``text``)."""
    for _ in range(10):
        if exc is None:
            return False
        if isinstance(exc, kind) or text in str(exc):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


#: set inside EngineAdapter.shared_parts_recomputed (per thread: a reader's queries meanwhile keep the default)
_INLINE_SHARED: contextvars.ContextVar[bool] = contextvars.ContextVar("tessera_inline_shared", default=False)


def shared_parts_inlined(query: sge.Expression) -> sge.Expression:
    """``query`` as a compiler gives it, its common table expressions marked ``NOT MATERIALIZED``
    inside :meth:`EngineAdapter.shared_parts_recomputed` (for engines that store them)."""
    shared = query.args.get("with_") if _INLINE_SHARED.get() else None
    for cte in shared.expressions if shared else ():
        cte.set("materialized", False)
    return query


class EngineAdapter:
    """Base class of the engine adapters.

    The packages above the engine ask an adapter, never test its name: its :attr:`dialect` holds
    the functions whose SQL differs, its capability flags (class constants) say what it can do,
    and its methods do what needs its connection (bulk loads, streams, publication)."""

    #: the Ibis backend name, for messages and status only
    name: ClassVar[str] = "base"
    #: the functions whose SQL differs by engine, and the rendering of user SQL
    dialect: ClassVar[Dialect]
    #: user SQL (written in DuckDB's dialect) gets DuckDB's types here as it is: no cast needed
    authoring_types: ClassVar[bool] = False
    #: identity components are found by joins in the engine (a cluster: no edge goes to the driver),
    #: not on this machine with SciPy
    graph_in_engine: ClassVar[bool] = False
    #: a run may change tables of the last publication in place (:class:`Patch`: rows deleted and
    #: inserted in the publication's transaction, readers see the whole change or none of it)
    #: instead of copying them whole; its own reads see the change through a view of the run
    #: (:meth:`create_view`)
    patches_in_place: ClassVar[bool] = False
    #: a view costs nothing until a query reads it (the engine plans them together): a run reads a
    #: source staged from several batches through a view (:meth:`create_view`), not a copy
    cheap_views: ClassVar[bool] = False
    #: the engine skips the blocks of a table whose min/max of a column are outside a filter's
    #: bounds: a table of events stored in the order of their time is read only for the days of a
    #: window (worth a sort when it is built)
    prunes_by_order: ClassVar[bool] = False
    #: a stored table's columns are dropped and the table renamed without a copy
    #: (:meth:`narrow_table`): a run stores its typed rows to keep them as the staged rows
    narrows_in_place: ClassVar[bool] = False
    #: :meth:`any_true` and :meth:`known_all_null` are answered from the statistics of the stored
    #: files, without a query: a run stores a flag with rows it will ask about (the typed rows'
    #: duplicate keys) rather than query them after
    answers_from_statistics: ClassVar[bool] = False

    def __init__(self, con: ibis.BaseBackend):
        self.con = con

    # ------------------------------------------------------------------ tables
    def table(self, name: str) -> ibis.Table:
        return self.con.table(name)

    def exists(self, name: str) -> bool:
        return name in self.list_tables()

    def list_tables(self) -> list[str]:
        return list(self.con.list_tables())

    def create_table(self, name: str, obj: ibis.Table | pa.Table | Compiled, *, overwrite: bool = True,
                     temp: bool = False) -> ibis.Table:
        """Materialize ``obj``. A ``temp`` table is a work table of one run: engines may keep it in memory."""
        if isinstance(obj, Compiled):
            obj = obj.expr
        return self.con.create_table(name, obj, overwrite=overwrite)

    def create_table_hinted(self, name: str, obj: ibis.Table | pa.Table, hints: dict[str, str]) -> ibis.Table:
        """Materialize ``obj`` as :meth:`create_table` does, told what its text columns hold:
        ``hints`` maps a column to ``"few"`` (few distinct values: names, states) or ``"distinct"``
        (mostly distinct values: ids). An engine that compresses each column picks the method
        from them instead of trying every method on every block (the cost of writing millions of
        short texts); elsewhere the hints change nothing."""
        return self.create_table(name, obj)

    def with_row_index(self, table: ibis.Table, name: str) -> ibis.Table:
        """Number the rows 0..n-1 in no particular order (callers must not depend on the order)."""
        return table.mutate(**{name: ibis.row_number().over(order_by=table.columns[0])})

    def add_sql_columns(self, table: ibis.Table, columns: list[tuple[str, str]]) -> ibis.Table:
        """``table`` with one more column per ``(name, expression)``, in order: each expression is SQL in
        this engine's dialect over the table's columns and the columns added before it.

        The expressions come from :func:`tessera.engine.sqlrender.render` (checked against its allow-list)."""
        dialect = self.con.compiler.dialect
        alias = f"{PREFIX}sql_{uuid.uuid4().hex[:12]}"
        source: sge.Expression = sge.Table(this=sg.to_identifier(alias, quoted=True))
        query = None
        for i, (name, sql) in enumerate(columns):
            expr = self.adapt_sql_expression(sg.parse_one(sql, read=dialect))
            source = source if query is None else query.subquery(f"_c{i}")
            query = sg.select(sge.Star(), sge.alias_(expr, name, quoted=True)).from_(source)
        if query is None:
            return table
        # On this adapter's own connection: ``table`` may be bound to another one (a table cached by
        # the workspace, bound to the writer's connection, read from a reader's thread), and
        # asking that connection for the new columns' types would race with its own statements.
        self.con._run_pre_execute_hooks(table)
        inner = self.con.compile(table)
        return self.con.sql(f"WITH {sg.to_identifier(alias, quoted=True).sql(dialect=dialect)} AS ({inner}) "
                            f"{query.sql(dialect=dialect)}")

    def adapt_sql_expression(self, expr: sge.Expression) -> sge.Expression:
        """An engine's last touch to a SQL expression of :meth:`add_sql_columns` (none by default)."""
        return expr

    def prepare_functions(self, names: set[str]) -> None:
        """Make the functions ``names`` (e.g. ``{"levenshtein"}``) callable, or raise EngineError saying
        how; built in everywhere but where an engine overrides this."""

    def drop_table(self, name: str) -> None:
        """Drop table (or run's view) ``name``; none of that name is no error."""
        self.con.drop_table(name, force=True)

    def narrow_table(self, table: str, name: str, columns: list[str], *, unless: str) -> None:
        """Store the rows of table ``table`` whose column ``unless`` is NULL as table ``name`` (replaced
        if it exists), with ``columns`` alone, in this order; ``table`` is gone after. Here a copy;
        an engine that :attr:`narrows_in_place` deletes the other rows and drops the other columns."""
        t = self.table(table)
        self.create_table(name, t.filter(t[unless].isnull()).select(*columns))
        self.drop_table(table)

    def append_query(self, name: str, expr: ibis.Table, *, temp: bool = False) -> None:
        """Append the rows of an Ibis expression, computed in the engine (creating the table when missing)."""
        raise NotImplementedError

    def delete_matching(self, name: str, matching: ibis.Table, columns: list[str]) -> None:
        """Delete the rows of table ``name`` whose ``columns`` equal those of a row of ``matching``
        (an Ibis expression with these columns, computed in the engine). Here the table is
        rewritten without them (an engine without DELETE); engines with transactions delete."""
        kept = self.table(name).anti_join(matching.select(*columns), columns)
        self.create_table(name, kept)

    def append(self, name: str, data: pa.Table) -> None:
        """Append rows to a table, creating it when missing."""
        if self.exists(name):
            self.con.insert(name, data)
        else:
            self.create_table(name, data)

    def export(self, expr: ibis.Table, path: str, fmt: str) -> None:
        """Write a table to a CSV or Parquet file, streaming in batches."""
        import pyarrow.csv as pacsv
        import pyarrow.parquet as pq

        reader = self.con.to_pyarrow_batches(expr)
        if fmt == "csv":
            # The header is written by hand: pyarrow quotes every header name.
            options = pacsv.WriteOptions(quoting_style="needed", include_header=False)
            with open(path, "wb") as fh:
                fh.write((",".join(_csv_field(n) for n in reader.schema.names) + "\n").encode())
                with pacsv.CSVWriter(fh, reader.schema, write_options=options) as writer:
                    for batch in reader:
                        writer.write_batch(batch)
        else:
            with pq.ParquetWriter(path, reader.schema) as writer:
                for batch in reader:
                    writer.write_batch(batch)

    def to_batches(self, expr: ibis.Table, batch_rows: int) -> pa.RecordBatchReader:
        """Stream the rows of ``expr`` as Arrow record batches of about ``batch_rows`` rows."""
        return self.con.to_pyarrow_batches(expr, chunk_size=batch_rows)

    def count(self, expr: ibis.Table) -> int:
        return int(self.con.execute(expr.count()))

    def any_true(self, name: str, column: str) -> bool:
        """Whether a row of stored table ``name`` has the boolean ``column`` true (an engine that
        keeps statistics of its files may answer without reading the rows)."""
        t = self.table(name)
        return self.count(t.filter(t[column]).limit(1)) > 0

    def known_all_null(self, name: str, column: str) -> bool | None:
        """Whether ``column`` of stored table ``name`` is NULL in every row, when the engine knows it
        without reading the rows (statistics of its files); None: it would take a query."""
        return None

    def to_arrow(self, expr: ibis.Table) -> pa.Table:
        return self.con.to_pyarrow(expr)

    def execute(self, expr: ibis.Expr) -> Any:
        return self.con.execute(expr)

    # ------------------------------------------------------------------ prepared reads
    #: the placeholder of a bound value in this engine driver's SQL (None: values are written in)
    placeholder: ClassVar[str | None] = None

    #: whether :meth:`fetch` stops reading after ``first`` rows itself, cheaper than a LIMIT in the SQL
    _fetch_stops: ClassVar[bool] = False

    def prepare(self, expr: ibis.Table, *, first: int | None = None) -> Prepared:
        """Compile ``expr`` once; its :func:`param` values become placeholders bound by :meth:`fetch`.

        The reads of a server (a profile, a status) compile the same expressions again and again
        with only a customer's id changing: compiling them costs far more than running them.

        Args:
            first: read at most this many rows (of an unordered ``expr``; order and limit a
                top-N yourself): a LIMIT in the SQL, or on engines whose results stream
                (``_fetch_stops``) the fetch stops there.
        """
        if first is not None and not self._fetch_stops:
            expr = expr.limit(first)
        sql = self.con.compile(expr)
        names = tuple(_PARAM_RE.findall(sql))
        if self.placeholder is None:
            return Prepared(sql, names, first)
        parts = _PARAM_RE.split(sql)[::2]  # the text around the placeholders
        return Prepared(self.placeholder.join(self._literal_text(p) for p in parts), names, first)

    def template(self, expr: ibis.Table) -> str:
        """The SQL text of ``expr``, built over placeholder tables (``ibis.table(schema, name)``) and
        :func:`param` values, for :meth:`fill` to complete again and again without compiling: a
        large query (a source's typed rows) written once per process for every batch of its source."""
        return self.con.compile(expr)

    def fill(self, template: str, expr: ibis.Table, tables: dict[str, str], **bound: Any) -> Compiled:
        """``template`` (see :meth:`template`) with each placeholder table of ``tables`` replaced by
        the named table and each :func:`param` by its value; ``expr``: the query it now is (its
        columns)."""
        dialect = self.con.compiler.dialect
        text = _PARAM_RE.sub(lambda m: sge.convert(bound[m.group(1)]).sql(dialect=dialect), template)
        for placeholder, name in tables.items():
            text = text.replace(sg.to_identifier(placeholder, quoted=True).sql(dialect=dialect),
                                sg.to_identifier(name, quoted=True).sql(dialect=dialect))
        return Compiled(expr, text)

    def _literal_text(self, text: str) -> str:
        """SQL text around placeholders as the driver wants it (psycopg doubles ``%``)."""
        return text

    def fetch(self, prepared: Prepared, **bound: Any) -> list[dict]:
        """The rows of a prepared query with its parameters bound, as dictionaries."""
        dialect = self.con.compiler.dialect
        text = _PARAM_RE.sub(lambda m: sge.convert(bound[m.group(1)]).sql(dialect=dialect), prepared.text)
        return self.to_arrow(self.con.sql(text)).to_pylist()

    def index(self, table: str, column: str) -> bool:
        """Index ``column`` of ``table`` for point reads (a customer's rows) when the engine has
        indexes; True when an index was made. Published tables change only by the few rows an
        incremental run patches (or an erase deletes), which the engine keeps indexed: an index
        is made once per table."""
        return False

    def range_index(self, table: str, column: str) -> bool:
        """Make ``column`` of ``table`` (a table created sorted by it) readable by ranges of values
        (``column >= a AND column < b``) without a scan; True when an index was made. The base
        makes the engine's index (:meth:`index`); an engine that skips the blocks outside a range
        of a sorted table by their minimum and maximum needs none."""
        return self.index(table, column)

    # ------------------------------------------------------------------ files
    def parse_file(self, path: str, fmt: str, *, options: dict, decimal_comma: bool = False,
                   declared: frozenset = frozenset()) -> tuple[pa.Table, FileImport]:
        """Parse a file with the embedded DuckDB reader and return its rows as Arrow.

        Files are always parsed by the same reader whatever the engine, so a file gives the same
        rows, lines and rejects on every engine.
        """
        con = duckdb.connect()
        con.execute(f"SET temp_directory='{tempfile.gettempdir()}'")
        try:
            read = filereader.read_file(con, path, fmt, table="f", **options)
            types = filereader.infer_types(con, read.table, [c for c in read.columns if c not in declared],
                                           decimal_comma=decimal_comma)
            data = con.sql(f"SELECT * FROM {q(read.table)}").to_arrow_table()
            rejects = con.sql(f"SELECT * FROM {q(read.rejects_table)} ORDER BY line").to_arrow_table()
        finally:
            con.close()
        return data, FileImport(read.columns, read.rows, read.rejected, types, rejects)

    def import_file(self, path: str, fmt: str, *, table: str, options: dict, decimal_comma: bool,
                    batch: int, file_name: str, declared: frozenset = frozenset()) -> FileImport:
        """Parse ``path`` into a new table ``table`` (text columns, ``_tessera_line``, batch and file)."""
        data, info = self.parse_file(path, fmt, options=options, decimal_comma=decimal_comma, declared=declared)
        n = data.num_rows
        data = data.append_column("_tessera_batch", pa.array([batch] * n, pa.int64()) if n else pa.array([], pa.int64()))
        data = data.append_column("_tessera_file", pa.array([file_name] * n, pa.string()) if n else pa.array([], pa.string()))
        self.create_table(table, data)
        return info

    # ------------------------------------------------------------------ databases
    @contextmanager
    def scanner(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A DuckDB connection on which a source database is read (its scanner extension, ATTACH,
        secrets): an embedded one here, the warehouse's own on DuckDB."""
        con = duckdb.connect()
        try:
            con.execute(f"SET temp_directory = '{tempfile.gettempdir().replace(chr(39), chr(39) * 2)}'")
            con.execute("SET preserve_insertion_order = false")
            yield con
        finally:
            con.close()

    def load_select(self, scanner: duckdb.DuckDBPyConnection, table: str, select: str, *, create: bool,
                    batch_rows: int, progress: Callable[[int], None] | None = None) -> int:
        """Run the DuckDB ``select`` on ``scanner`` (a connection of :meth:`scanner`) into ``table``,
        created when ``create``, else appended to; returns the rows loaded. Here its rows stream into
        the warehouse in Arrow record batches; ``progress`` hears the rows loaded so far."""
        reader = scanner.execute(select).to_arrow_reader(batch_rows)
        rows = 0
        for record_batch in reader:
            if record_batch.num_rows == 0 and not create:
                continue
            self.append(table, pa.Table.from_batches([record_batch]))
            create = False
            rows += record_batch.num_rows
            if progress:
                progress(rows)
        if create:
            self.create_table(table, reader.schema.empty_table())
        return rows

    def dead_share(self, table: str) -> float:
        """The share of the rows stored for ``table`` that are deleted but still take room (rows
        patched away, kept until the table is copied); 0 where the engine reclaims them itself."""
        return 0.0

    def create_view(self, name: str, expr: ibis.Table) -> ibis.Table:
        """A view of ``expr`` seen by this connection alone (a run's reads of a table it will
        patch, see :attr:`patches_in_place`); :meth:`drop_table` drops it."""
        raise NotImplementedError

    # ------------------------------------------------------------------ publication
    def publish(self, views: dict[str, str | None], patches: list[Patch] = ()) -> None:
        """Point each published name at its new table, atomically: readers see the whole previous
        publication or the whole new one, and a failure leaves the previous one. A name given None
        is withdrawn (no longer published). ``patches`` (on
        engines with :attr:`patches_in_place`) are applied in the same transaction."""
        raise NotImplementedError

    def published_target(self, name: str) -> str | None:
        """The table a published name points at, or None."""
        raise NotImplementedError

    def list_views(self) -> list[str]:
        """The published names."""
        return []

    def published_targets(self) -> dict[str, str]:
        """Every published name and the table it points at (one read of the catalog where the
        engine keeps one)."""
        return {view: target for view in self.list_views() if (target := self.published_target(view))}

    def reader(self) -> "EngineAdapter":
        """An adapter for reading on another thread while this one writes: it sees the last
        committed state (the last publication), never a run's work in progress."""
        return self

    def indexed_table(self, name: str) -> ibis.Table:
        """The published ``name`` for point reads by an indexed column (:meth:`index`): on engines
        whose planner does not use a table's index through a view, the table it points at."""
        return self.table(name)

    @contextmanager
    def shared_parts_recomputed(self) -> Iterator[None]:
        """The queries compiled inside compute a part they read several times (a common table
        expression) again at each read rather than store it first: for queries whose shared parts
        are cheap to compute and large to hold (the enrichment's orders and order lines). Same
        rows either way.

        DuckDB and PostgreSQL store such a part (its rows in memory, spilled past the memory
        limit) before the query reads it; their compilers mark the parts ``NOT MATERIALIZED``
        inside (see :func:`shared_parts_inlined`). Spark always computes them again. Every
        library score on 1M customers and 5M orders on DuckDB: 13.8 s and 1,916 MB peak inside,
        16.3 s and 2,171 MB stored. Elsewhere storing them is the default: a deduplicated
        dataset's merge reads its joined records several times, quicker stored."""
        token = _INLINE_SHARED.set(True)
        try:
            yield
        finally:
            _INLINE_SHARED.reset(token)

    @contextmanager
    def read_often(self) -> Iterator[None]:
        """The tables created inside are published ones, read again and again (pages of rows with
        a filter, segments): an engine that chooses how to store a table may store these for
        reading rather than for writing fast. Nothing changes in their rows."""
        yield

    def interrupt(self) -> None:
        """Stop the statement running on this adapter, if the engine can (a cancelled job)."""

    def set_memory_limit(self, limit: str | None) -> None:
        """Bound the memory of this engine's statements (``"4GB"``, ``"123456789B"``); None: the
        engine's default. Engines that take their memory from elsewhere (Spark's driver memory, a
        PostgreSQL server's settings) ignore it."""

    def fit_memory(self) -> None:
        """Scale the engine's default memory limit to the data imported (the raw batches), once
        they are: a run over little data holds less memory. A limit set by ``pipeline.memory_limit``
        (or by the engine's own setting) is kept. Spark chooses its settings for a small run there
        (see ``tessera.engine.spark.SMALL_RUN_SETTINGS``); other engines without a limit ignore it."""

    def side_by_side(self) -> int:
        """How many independent queries of a run (the staging of different sources) this adapter
        runs at once from as many threads: 1 (one after the other) unless the engine gains from
        it. DuckDB and PostgreSQL run each query on every core already, through one connection."""
        return 1

    def unfit_memory(self) -> None:
        """The engine's default memory limit again after :meth:`fit_memory` (not a limit of
        ``pipeline.memory_limit``): for work after the build that the scaled limit was not meant
        for (indexes for reads)."""

    def out_of_memory(self, exc: BaseException) -> bool:
        """Whether ``exc`` (or what caused it) is this engine's refusal for lack of memory."""
        return False

    def stopped(self, exc: BaseException) -> bool:
        """Whether ``exc`` is the engine out of memory or interrupted (a job's limits, a cancel): no
        fault of the data, so a file being read is not refused for it. Files are parsed by an
        embedded DuckDB on every engine: its own refusals count too."""
        return (self.out_of_memory(exc) or caused_by(exc, duckdb.OutOfMemoryException, "Out of Memory Error")
                or caused_by(exc, duckdb.InterruptException, "INTERRUPT Error"))

    def close(self) -> None:
        pass



def _csv_field(text: str) -> str:
    if any(ch in text for ch in ',"\n\r'):
        return '"' + text.replace('"', '""') + '"'
    return text


CATALOG = "_tessera_catalog"  # published name -> table, changed in the publication's transaction


class SqlCatalogAdapter(EngineAdapter):
    """An engine with transactions: published names are views, listed in a catalog table."""

    def sql(self, statement: str, params: list | None = None):  # pragma: no cover - per engine
        raise NotImplementedError

    #: the catalog table was seen: it is never dropped, so it is not looked up again
    _has_catalog = False

    def _catalog(self) -> dict[str, str]:
        if not self._has_catalog:
            if not self.exists(CATALOG):
                return {}
            self._has_catalog = True
        return dict(self.sql(f"SELECT name, target FROM {CATALOG}").fetchall())

    def published_target(self, name: str) -> str | None:
        return self._catalog().get(name)

    def published_targets(self) -> dict[str, str]:
        return self._catalog()

    def append_query(self, name: str, expr: ibis.Table, *, temp: bool = False) -> None:
        """Append the rows of an Ibis expression in the engine (``INSERT ... SELECT``), creating
        the table when missing (a ``temp`` work table, see :meth:`create_table`)."""
        if not self.exists(name):
            self.create_table(name, expr, temp=temp)
            return
        self.con._run_pre_execute_hooks(expr)
        columns = ", ".join(q(c) for c in expr.columns)
        self.sql(f"INSERT INTO {q(name)} ({columns}) {self.con.compile(expr)}")

    def list_views(self) -> list[str]:
        return list(self._catalog())

    def _apply(self, patches: list[Patch]) -> None:
        """Apply ``patches`` (inside the caller's transaction)."""
        for p in patches:
            self.delete_matching(p.table, p.remove.select(p.key), [p.key])
            self.append_query(p.table, p.add)

    def delete_matching(self, name: str, matching: ibis.Table, columns: list[str]) -> None:
        """``DELETE ... WHERE EXISTS`` the same key in ``matching`` (one statement, in the engine)."""
        self.con._run_pre_execute_hooks(matching)
        sub = self.con.compile(matching.select(*columns))
        same = " AND ".join(f"{q('_tessera_m')}.{q(c)} = {q(name)}.{q(c)}" for c in columns)
        self.sql(f"DELETE FROM {q(name)} WHERE EXISTS (SELECT 1 FROM ({sub}) AS {q('_tessera_m')} WHERE {same})")

    def close(self) -> None:
        try:
            self.con.disconnect()
        except Exception:  # noqa: BLE001 - closing twice is harmless
            pass
