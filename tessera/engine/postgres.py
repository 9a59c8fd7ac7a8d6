"""PostgreSQL as the warehouse engine (``TESSERA_WAREHOUSE=postgresql://user@host/db``).

Tables live in the database's current schema, which belongs to one workspace (run and batch
numbers come from the workspace's metadata store; another search_path is set with
``?options=-csearch_path%3Dmy_schema``). The published names are views, re-pointed in one
transaction together with the catalog table ``_tessera_catalog`` (PostgreSQL's DDL is
transactional: readers see the whole previous publication or the whole new one). A run's work
tables are UNLOGGED (no write-ahead log; they are rebuilt by a run anyway) and carry the run's
prefix, so the pipeline's garbage collection drops them.

Files are parsed by the embedded DuckDB reader like on every engine, then streamed into
PostgreSQL with ``COPY ... FROM STDIN`` as CSV written by Arrow, chunk by chunk.

The pipeline's Ibis expressions are compiled by :class:`PostgresCompiler`, which keeps the
results identical to DuckDB's where PostgreSQL's own functions differ:

* regular expressions are written for RE2; they are translated into PostgreSQL's dialect
  (:func:`tessera.engine.functions.postgres_regex`);
* ``try_cast`` from text never raises: PostgreSQL has no TRY_CAST, so the text's shape and
  range are checked first (numbers as DuckDB reads them, ISO dates and timestamps with a
  calendar check), anything else gives NULL;
* text columns are created in the "C" collation: sorted and compared by bytes, as DuckDB does;
  ``lower``/``upper`` change case in a UTF-8 collation (``C.utf8`` where it exists), since "C"
  only knows the case of ASCII letters;
* ``hexdigest`` uses PostgreSQL's ``md5``/``sha256``.

Known differences with DuckDB: ``try_cast`` from text does not read hexadecimal (``0x1F``) or
``1_000`` integers, nor special dates (``infinity``, ``epoch``, years outside 1-9999); a
group inside an alternation of a regular expression may capture another part of the match
(POSIX longest-match rule); exported CSV spells some floats differently (``2`` for ``2.0``).
"""

from __future__ import annotations

import hashlib
import io
from urllib.parse import parse_qsl, unquote, urlsplit

import ibis
import ibis.expr.datatypes as dt
import ibis.expr.operations as ops
import pyarrow as pa
import pyarrow.compute as pc
import sqlglot as sg
import sqlglot.expressions as sge
from ibis.backends.sql.compilers.postgres import PostgresCompiler as _IbisPostgresCompiler

from tessera.engine.base import (CATALOG, Compiled, FileImport, Patch, Prepared, SqlCatalogAdapter, index_name, q,
                                 shared_parts_inlined)
from tessera.engine.dialects import PostgresDialect
from tessera.engine.functions import postgres_regex
from tessera.errors import EngineError, WorkspaceError

COPY_ROWS = 50_000  # rows per CSV chunk written into a COPY stream
MAX_NAME = 63  # bytes in a PostgreSQL identifier (longer ones are cut, silently)

# Collations whose lower/upper follow Unicode like DuckDB's, in order of preference ("default"
# when the database's own locale is not C).
_CASE_COLLATIONS = ("C.utf8", "C.UTF-8", "default", "en_US.utf8", "en_US.UTF-8", "und-x-icu")


# --------------------------------------------------------------------------- compiler

_NUMBER = r"^\s*[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]{1,4})?\s*$"
_SPECIAL_FLOAT = r"^\s*[+-]?(inf|infinity|nan)\s*$"
# ISO dates and timestamps whose fields are in range (PostgreSQL's parser raises on the others):
# a 4-digit year, month 1-12, day 1-31, hour 0-23 (or 24:00:00), minutes and seconds 0-59,
# an optional fraction and zone (ignored for TIMESTAMP, as DuckDB does).
_DATETIME = (
    r"^\s*[0-9]{4}([-/])(0?[1-9]|1[0-2])\1(0?[1-9]|[12][0-9]|3[01])"
    r"([T ](([01]?[0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\.[0-9]+)?)?|24:00(:00(\.0+)?)?)"
    r"( ?(Z|UTC|[+-][0-9]{2}(:?[0-9]{2})?))?)?\s*$"
)
# DuckDB reads a DATE from the date at the start of the text, whatever follows it
_DATE_START = r"^\s*[0-9]{4}([-/])(0?[1-9]|1[0-2])\1(0?[1-9]|[12][0-9]|3[01])([^0-9].*)?$"
_DATE_ONLY = r"^\s*[0-9]{4}[-/][0-9]{1,2}[-/][0-9]{1,2}"
_NO_SUCH_DAY = r"^\s*[0-9]{4}[-/]((0?[469]|11)[-/]31|0?2[-/]3[01])([^0-9]|$)"
_FEB_29 = r"^\s*[0-9]{4}[-/]0?2[-/]29([^0-9]|$)"
_LONG_FRACTION = r"\.[0-9]{7}"
_INT_RANGES = {
    8: (-128, 127), 16: (-32768, 32767), 32: (-2147483648, 2147483647),
    64: (-9223372036854775808, 9223372036854775807),
}
_TRUE = ("true", "t", "yes", "y", "on", "1")
_FALSE = ("false", "f", "no", "n", "off", "0")


def _sql(template: str, **values: sge.Expression) -> sge.Expression:
    """Parse a PostgreSQL expression and put the given expressions in place of ``__name__`` columns."""
    tree = sg.parse_one(template, read="postgres")

    def swap(node):
        if isinstance(node, sge.Column) and node.name.startswith("__") and node.name.strip("_") in values:
            return values[node.name.strip("_")].copy()
        return node

    return tree.transform(swap)


class PostgresCompiler(_IbisPostgresCompiler):
    """Ibis's PostgreSQL compiler, with the few operations Tessera needs to behave as on DuckDB."""

    __slots__ = ("case_collation",)

    # Compiled here instead (``__init_subclass__`` turns SIMPLE_OPS into methods).
    SIMPLE_OPS = {k: v for k, v in _IbisPostgresCompiler.SIMPLE_OPS.items() if k is not ops.RegexSearch}

    def __init__(self, case_collation: str | None = None):
        super().__init__()
        self.case_collation = case_collation

    def translate(self, op, *, params):
        # PostgreSQL stores a CTE read more than once, as DuckDB does (EngineAdapter.shared_parts_recomputed)
        return shared_parts_inlined(super().translate(op, params=params))

    # ---------------------------------------------------------------- case
    @staticmethod
    def _collate(arg, collation: str):
        return sge.Collate(this=arg, expression=sg.to_identifier(collation, quoted=True))

    def _change_case(self, function: str, arg):
        """``function(arg)`` in the case collation, its result back in "C" like every text column
        (two different collations meeting in a join or a comparison would be an error)."""
        if self.case_collation is None:
            return self.f[function](arg)
        # In parentheses: inside POSITION(x IN y) a bare COLLATE is a syntax error.
        return sge.Paren(this=self._collate(self.f[function](self._collate(arg, self.case_collation)), "C"))

    def visit_Lowercase(self, op, *, arg):
        return self._change_case("lower", arg)

    def visit_Uppercase(self, op, *, arg):
        # DuckDB upper-cases the sharp s to the capital sharp s; libc leaves it as it is
        return self.f.replace(self._change_case("upper", arg), "\u00df", "\u1e9e")

    # ---------------------------------------------------------------- regular expressions
    @staticmethod
    def _pattern(op_pattern, pattern):
        if isinstance(op_pattern, ops.Literal) and isinstance(op_pattern.value, str):
            return sge.convert(postgres_regex(op_pattern.value))
        return pattern

    def visit_RegexSearch(self, op, *, arg, pattern):
        return sge.RegexpLike(this=arg, expression=self._pattern(op.pattern, pattern))

    def visit_RegexReplace(self, op, *, arg, pattern, replacement):
        return self.f.regexp_replace(arg, self._pattern(op.pattern, pattern), replacement, "g")

    def visit_RegexExtract(self, op, *, arg, pattern, index):
        if isinstance(op.pattern, ops.Literal) and isinstance(op.pattern.value, str):
            # group 0 is the whole match: wrap the pattern in one more group (after its flags)
            translated = postgres_regex(op.pattern.value)
            flags = ""
            if translated.startswith("(?") and ")" in translated and translated[2:translated.index(")")].isalpha():
                flags, translated = translated[: translated.index(")") + 1], translated[translated.index(")") + 1 :]
            pattern = sge.convert(f"{flags}({translated})")
        else:
            pattern = self.f.concat("(", pattern, ")")
        # (sqlglot shifts the index to PostgreSQL's 1-based arrays)
        found = sge.paren(self.f.regexp_match(arg, pattern), copy=False)[index]
        # like DuckDB and Spark: '' when the text does not match, NULL only for a NULL text
        return self.f.coalesce(found, self.if_(arg.is_(sg.not_(sge.Null())), sge.convert(""), sge.Null()))

    # ---------------------------------------------------------------- hashes
    def visit_HexDigest(self, op, *, arg, how):
        if how == "md5":
            return self.f.md5(arg)
        if how in ("sha224", "sha256", "sha384", "sha512"):
            return self.f.encode(self.f[how](self.f.convert_to(arg, "UTF8")), "hex")
        return super().visit_HexDigest(op, arg=arg, how=how)

    # ---------------------------------------------------------------- casts that never raise
    def visit_TryCast(self, op, *, arg, to):
        from_ = op.arg.dtype
        if from_.is_string() and not to.is_string():
            pg_type = self.type_mapper.from_ibis(to).sql("postgres")
            template = _try_cast_text(to, pg_type)
            if template is not None:
                if isinstance(arg, (sge.Column, sge.Literal)):
                    return _sql(template.replace("__v__", "__x__"), x=arg)
                # the text is used several times: evaluate it once, in a sub-select (a CAST
                # around it, so that an alias given to the result never lands on the sub-select)
                bound = f"(SELECT {template} FROM (SELECT __x__ AS __v__ OFFSET 0) AS _v)"
                return _sql(f"CAST({bound} AS {pg_type})", x=arg)
        if (from_.is_floating() or from_.is_decimal()) and to.is_integer():
            lo, hi = _INT_RANGES[to.nbytes * 8]
            return self.if_(
                sge.Between(this=arg, low=sge.convert(lo), high=sge.convert(hi)),
                self.cast(self.f.round(self.cast(arg, dt.decimal)), to),
                sge.Null(),
            )
        return self.cast(arg, to)


def _try_cast_text(to: dt.DataType, pg_type: str) -> str | None:
    """A CASE expression of the text ``__v__`` as ``to``: NULL where the cast would raise.

    Numbers are read as DuckDB reads them (sign, decimals, exponent; integers rounded half away
    from zero), dates and timestamps in ISO shape with a calendar check."""
    v = "__v__"
    if to.is_integer():
        lo, hi = _INT_RANGES[to.nbytes * 8]
        return (f"CASE WHEN {v} ~ '{_NUMBER}' AND round({v}::numeric) BETWEEN {lo} AND {hi} "
                f"THEN round({v}::numeric)::{pg_type} END")
    if to.is_floating():
        n = f"{v}::numeric"
        return (f"CASE WHEN {v} ~* '{_SPECIAL_FLOAT}' THEN {v}::{pg_type} "
                f"WHEN {v} ~ '{_NUMBER}' THEN CASE "
                f"WHEN abs({n}) >= 1.797693134862315807e308 THEN sign({n}) * 'Infinity'::{pg_type} "
                f"WHEN abs({n}) < 2.4703282292062328e-324 THEN 0::{pg_type} "
                f"ELSE {n}::float8::{pg_type} END END")
    if to.is_decimal():
        precision = to.precision or 38
        scale = to.scale or 0
        return (f"CASE WHEN {v} ~ '{_NUMBER}' AND abs(round({v}::numeric, {scale})) < 1e{precision - scale} "
                f"THEN round({v}::numeric, {scale})::numeric({precision}, {scale}) END")
    if to.is_boolean():
        trues = ", ".join(f"'{w}'" for w in _TRUE)
        falses = ", ".join(f"'{w}'" for w in _FALSE)
        return (f"CASE WHEN lower(btrim({v})) IN ({trues}) THEN TRUE "
                f"WHEN lower(btrim({v})) IN ({falses}) THEN FALSE END")
    if to.is_date() or to.is_timestamp():
        year = f"substr(btrim({v}), 1, 4)::int"
        leap = f"({year} % 4 = 0 AND {year} % 100 <> 0 OR {year} % 400 = 0)"
        if to.is_date():
            shape, text = _DATE_START, f"substring({v} from '{_DATE_ONLY}')"
        else:
            # DuckDB keeps six digits of a longer fraction, PostgreSQL would round them
            shape = _DATETIME
            cut = f"regexp_replace({v}, '(\\.[0-9]{{6}})[0-9]+', '\\1')"
            text = f"CASE WHEN {v} ~ '{_LONG_FRACTION}' THEN {cut} ELSE {v} END"
        return (f"CASE WHEN {v} ~ '{shape}' AND {v} !~ '{_NO_SUCH_DAY}' AND substr(btrim({v}), 1, 4) <> '0000' "
                f"AND ({v} !~ '{_FEB_29}' OR {leap}) THEN ({text})::{pg_type} END")
    return None


# --------------------------------------------------------------------------- adapter


def parse_url(url: str) -> dict:
    """psycopg connection arguments of a ``postgresql://`` or ``postgresql+psycopg://`` URL."""
    parts = urlsplit(url)
    if parts.scheme not in ("postgresql", "postgresql+psycopg", "postgres"):
        raise WorkspaceError(f"'{url}' is not a PostgreSQL URL (postgresql://user@host:port/database)")
    kwargs: dict = {}
    if parts.hostname:
        kwargs["host"] = parts.hostname
    if parts.port:
        kwargs["port"] = parts.port
    if parts.username:
        kwargs["user"] = unquote(parts.username)
    if parts.password:
        kwargs["password"] = unquote(parts.password)
    database = unquote(parts.path.lstrip("/"))
    if database:
        kwargs["database"] = database
    kwargs.update(dict(parse_qsl(parts.query)))  # sslmode=..., options=...
    return kwargs


def _check_name(name: str) -> None:
    if len(name.encode()) > MAX_NAME:
        raise EngineError(
            f"The table name '{name}' is {len(name.encode())} bytes long; PostgreSQL names stop at "
            f"{MAX_NAME}. Shorten the source or dataset name it is made of."
        )


def arrow_for_copy(table: pa.Table) -> pa.Table:
    """The columns as CSV can carry them: PostgreSQL text holds no NUL character."""
    columns = []
    for col in table.columns:
        if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
            col = pc.replace_substring(col, "\x00", "")
        elif pa.types.is_null(col.type):
            col = col.cast(pa.string())
        columns.append(col)
    return pa.table(columns, names=table.column_names)


class PostgresAdapter(SqlCatalogAdapter):
    name = "postgres"
    dialect = PostgresDialect()
    patches_in_place = True
    cheap_views = True

    def __init__(self, url: str):
        self.url = url
        kwargs = parse_url(url)
        try:
            import psycopg  # noqa: F401
        except ImportError as exc:  # pragma: no cover - depends on the installation
            raise EngineError("PostgreSQL support is not installed: pip install 'tessera-cdp[postgres]'") from exc
        try:
            con = ibis.postgres.connect(**kwargs)
        except Exception as exc:  # psycopg.OperationalError and friends
            where = {k: v for k, v in kwargs.items() if k != "password"}
            raise WorkspaceError(f"Cannot connect to the PostgreSQL warehouse {where}: {exc}") from exc
        super().__init__(con)
        self.raw = con.con  # the psycopg connection (autocommit), for COPY and the publication
        con.compiler = PostgresCompiler(self._case_collation())

    def reader(self) -> "PostgresAdapter":
        # A connection of its own: its transactions see the last publication, not a run's work.
        return PostgresAdapter(self.url)

    def interrupt(self) -> None:
        self.raw.cancel()

    placeholder = "%s"

    def _literal_text(self, text: str) -> str:
        return text.replace("%", "%%")

    def fetch(self, prepared: Prepared, **bound) -> list[dict]:
        try:
            cursor = self.raw.execute(prepared.text, prepared.values(bound))
        except Exception as exc:
            raise EngineError(f"PostgreSQL refused a statement: {exc}", sql=prepared.text) from exc
        names = [d.name for d in cursor.description]
        return [dict(zip(names, row)) for row in cursor.fetchall()]

    def index(self, table: str, column: str) -> bool:
        name = index_name(table, column)
        if self.exists(name):
            return False
        self.sql(f"CREATE INDEX IF NOT EXISTS {q(name)} ON {q(table)} ({q(column)})")
        return True

    def _case_collation(self) -> str | None:
        """The collation lower/upper use: text columns are in "C" (byte order, as DuckDB sorts),
        whose case mapping only knows ASCII letters."""
        have = {r[0] for r in self.sql("SELECT collname FROM pg_collation").fetchall()}
        ctype = self.sql("SELECT datctype FROM pg_database WHERE datname = current_database()").fetchone()[0]
        if ctype in ("C", "POSIX"):
            have.discard("default")
        return next((c for c in _CASE_COLLATIONS if c in have), None)

    def sql(self, statement: str, params: list | tuple | None = None):
        try:
            return self.raw.execute(statement, params)
        except Exception as exc:
            raise EngineError(f"PostgreSQL refused a statement: {exc}", sql=statement) from exc

    def prepare_functions(self, names: set[str]) -> None:
        """levenshtein comes with the ``fuzzystrmatch`` extension (in PostgreSQL's contrib)."""
        if "levenshtein" not in names:
            return
        found = self.sql("SELECT 1 FROM pg_proc WHERE proname = 'levenshtein' "
                         "AND pg_function_is_visible(oid)").fetchone()
        if found:
            return
        try:
            self.sql("CREATE EXTENSION IF NOT EXISTS fuzzystrmatch")
        except EngineError as exc:
            raise EngineError(
                "probabilistic matching needs PostgreSQL's levenshtein function: a superuser runs "
                "'CREATE EXTENSION fuzzystrmatch;' in the warehouse database (package postgresql-contrib) "
                f"({exc})"
            ) from exc

    # ------------------------------------------------------------------ tables
    def list_tables(self) -> list[str]:
        rows = self.sql(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'"
        ).fetchall()
        return [r[0] for r in rows]

    def exists(self, name: str) -> bool:
        return self.sql("SELECT to_regclass(%s) IS NOT NULL", [q(name)]).fetchone()[0]

    def _columns_sql(self, schema: ibis.Schema) -> str:
        # Text in the "C" collation: sorted and compared by bytes like DuckDB does, whatever the
        # database's locale (record ids pick new unified ids by their order).
        types = self.con.compiler.type_mapper
        return ", ".join(
            f"{q(name)} {types.from_ibis(dtype).sql('postgres')}" + (' COLLATE "C"' if dtype.is_string() else "")
            for name, dtype in schema.items()
        )

    def create_table(self, name: str, obj, *, overwrite: bool = True, temp: bool = False) -> ibis.Table:
        """Materialize ``obj`` (an Ibis expression or an Arrow table) as ``name``.

        Built under a new name, then swapped in one transaction: a failure leaves the old table.
        ``temp`` tables are UNLOGGED (work tables of a run)."""
        if not isinstance(obj, (ibis.Table, pa.Table, Compiled)):  # a pandas DataFrame
            obj = pa.Table.from_pandas(obj, preserve_index=False)
        if isinstance(obj, pa.Table):
            obj = arrow_for_copy(obj)
            schema = ibis.schema(obj.schema)
            query = None
        else:
            text = obj.text if isinstance(obj, Compiled) else None
            obj = obj.expr if isinstance(obj, Compiled) else obj
            schema = obj.schema()
            self.con._run_pre_execute_hooks(obj)
            query = text or self.con.compile(obj)
        _check_name(name)
        if not overwrite and self.exists(name):
            raise EngineError(f"The table {name} exists already in the PostgreSQL warehouse.")
        building = "_tessera_building_" + hashlib.md5(name.encode()).hexdigest()[:16]
        unlogged = "UNLOGGED " if temp else ""
        with self.raw.transaction():
            self.sql(f"DROP TABLE IF EXISTS {q(building)}")
            self.sql(f"CREATE {unlogged}TABLE {q(building)} ({self._columns_sql(schema)})")
            if query is not None:
                self.sql(f"INSERT INTO {q(building)} {query}")
            else:
                self._copy(building, obj)
            self.sql(f"DROP TABLE IF EXISTS {q(name)}")
            self.sql(f"ALTER TABLE {q(building)} RENAME TO {q(name)}")
        # Statistics now: the next statements join this table, and autovacuum comes later.
        self.sql(f"ANALYZE {q(name)}")
        return self.con.table(name)

    def _copy(self, name: str, data: pa.Table) -> None:
        """Stream Arrow rows into ``name`` with COPY: CSV chunks written by Arrow (C++), no Python row loop."""
        import pyarrow.csv as pacsv

        if data.num_rows == 0:
            return
        columns = ", ".join(q(c) for c in data.column_names)
        # Every value quoted: a quoted empty text is '', an unquoted empty field is NULL.
        options = pacsv.WriteOptions(include_header=False, quoting_style="all_valid")
        statement = f"COPY {q(name)} ({columns}) FROM STDIN (FORMAT csv)"
        try:
            with self.raw.cursor() as cur, cur.copy(statement) as copy:
                for batch in data.to_batches(max_chunksize=COPY_ROWS):
                    buf = io.BytesIO()
                    pacsv.write_csv(pa.Table.from_batches([batch]), buf, write_options=options)
                    copy.write(buf.getbuffer())
        except EngineError:
            raise
        except Exception as exc:
            raise EngineError(f"PostgreSQL refused the rows copied into {name}: {exc}", sql=statement) from exc

    def drop_table(self, name: str) -> None:
        # A run's view (see create_view) is dropped by name too: DROP TABLE refuses a view.
        kind = self.sql("SELECT relkind FROM pg_class WHERE oid = to_regclass(%s)", [q(name)]).fetchone()
        self.sql(f"DROP {'VIEW' if kind and kind[0] == 'v' else 'TABLE'} IF EXISTS {q(name)}")

    def create_view(self, name: str, expr: ibis.Table) -> ibis.Table:
        _check_name(name)
        self.con._run_pre_execute_hooks(expr)
        self.sql(f"DROP VIEW IF EXISTS {q(name)}")
        self.sql(f"CREATE TEMP VIEW {q(name)} AS {self.con.compile(expr)}")
        return self.con.table(name)

    def append(self, name: str, data: pa.Table) -> None:
        """Append rows in bulk (COPY), creating the table when missing."""
        if not self.exists(name):
            self.create_table(name, data)
            return
        table_columns = self.con.get_schema(name).names
        data = data.select([c for c in table_columns if c in data.column_names])
        with self.raw.transaction():
            self._copy(name, arrow_for_copy(data))
        self.sql(f"ANALYZE {q(name)}")

    def with_row_index(self, table: ibis.Table, name: str) -> ibis.Table:
        # An unordered row number needs no sort.
        return table.mutate(**{name: ibis.row_number().over()})

    def adapt_sql_expression(self, expr: sge.Expression) -> sge.Expression:
        """lower/upper in the case collation, as the compiler writes them (text columns are in "C",
        whose case mapping only knows ASCII letters)."""
        compiler = self.con.compiler
        for node in reversed(list(expr.find_all(sge.Lower, sge.Upper))):
            function = "lower" if isinstance(node, sge.Lower) else "upper"
            new = compiler._change_case(function, node.this)
            if function == "upper":
                new = compiler.f.replace(new, "\u00df", "\u1e9e")
            if node is expr:
                return new
            node.replace(new)
        return expr

    # ------------------------------------------------------------------ files
    def import_file(self, path: str, fmt: str, *, table: str, options: dict, decimal_comma: bool,
                    batch: int, file_name: str, declared: frozenset = frozenset()) -> FileImport:
        data, info = self.parse_file(path, fmt, options=options, decimal_comma=decimal_comma, declared=declared)
        n = data.num_rows
        data = data.append_column("_tessera_batch", pa.array([batch] * n, pa.int64()))
        data = data.append_column("_tessera_file", pa.array([file_name] * n, pa.string()))
        self.create_table(table, data)
        return info

    # ------------------------------------------------------------------ export
    def export(self, expr: ibis.Table, path: str, fmt: str) -> None:
        """CSV: PostgreSQL's COPY writes it, streamed to the file (quoted only where needed, empty
        text as "", NULL as nothing, like DuckDB's). Parquet: Arrow batches (the base class)."""
        if fmt != "csv":
            super().export(expr, path, fmt)
            return
        # booleans as DuckDB writes them (COPY would write t/f)
        expr = expr.mutate(**{c: expr[c].cast("string") for c, t in expr.schema().items() if t.is_boolean()})
        self.con._run_pre_execute_hooks(expr)
        statement = f"COPY ({self.con.compile(expr)}) TO STDOUT (FORMAT csv, HEADER true)"
        try:
            with open(path, "wb") as out, self.raw.cursor() as cur, cur.copy(statement) as copy:
                for chunk in copy:
                    out.write(chunk)
        except Exception as exc:
            raise EngineError(f"PostgreSQL could not export to {path}: {exc}", sql=statement) from exc

    # ------------------------------------------------------------------ publication
    def publish(self, views: dict[str, str | None], patches: list[Patch] = ()) -> None:
        # One transaction: readers see either the whole previous state or the whole new one.
        # DROP + CREATE, not CREATE OR REPLACE: a new run may change a view's columns.
        self.sql(f"CREATE TABLE IF NOT EXISTS {CATALOG} (name TEXT PRIMARY KEY, target TEXT NOT NULL)")
        with self.raw.transaction():
            self._apply(list(patches))
            for view, table in views.items():
                self.sql(f"DROP VIEW IF EXISTS {q(view)}")
                if table is None:  # withdrawn
                    self.sql(f"DELETE FROM {CATALOG} WHERE name = %s", [view])
                    continue
                self.sql(f"CREATE VIEW {q(view)} AS SELECT * FROM {q(table)}")
                self.sql(
                    f"INSERT INTO {CATALOG} (name, target) VALUES (%s, %s) "
                    "ON CONFLICT (name) DO UPDATE SET target = EXCLUDED.target",
                    [view, table],
                )

