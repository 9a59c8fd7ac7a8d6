"""Apache Spark as the warehouse engine (PySpark; local mode on one machine, a cluster beyond).

Spark's default catalog lives in memory, so this adapter keeps its own durable catalog: every
table is a Parquet folder under ``<workspace>/spark/tables/<name>``, registered as a view when
the session starts, and the published names are kept in ``published.json``, replaced atomically
(write then rename) so that a killed run leaves the previous publication in place.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import uuid
from pathlib import Path

import ibis
import ibis.expr.operations as ops
import pyarrow as pa
import pyarrow.parquet as pq

from tessera.engine.base import Compiled, EngineAdapter
from tessera.engine.dialects import SparkDialect
from tessera.errors import EngineError

_SESSION = None
# the schema a table's folder is read with when its files hold more columns (see narrow_table)
SCHEMA_FILE = "_tessera_schema.json"

# A run whose imported rows (the raw batches) are at most SMALL_RUN_ROWS runs with SMALL_RUN_SETTINGS:
# every query in one partition, no adaptive re-planning and no broadcast (each broadcast and each
# adaptive stage is a Spark job of its own, costing far more than a few thousand rows), expressions
# interpreted (compiling the code of the staging's and the enrichment's large queries takes longer
# than running them on a few thousand rows). Past it, the session's own settings (Spark's defaults:
# they pay off on real volumes). See docs/performance.md.
SMALL_RUN_ROWS = 250_000
SMALL_RUN_SETTINGS = {
    "spark.sql.adaptive.enabled": "false",
    "spark.sql.shuffle.partitions": "1",
    "spark.sql.autoBroadcastJoinThreshold": "-1",
    "spark.sql.codegen.wholeStage": "false",
    "spark.sql.codegen.factoryMode": "NO_CODEGEN",
}


def _patch_compiler() -> None:
    """Ibis trims Python's ``string.whitespace``, whose \\x0b and \\x0c Spark SQL reads back as the
    letters 'v' and 'f' ('false' would lose its 'f'): trim the usual blanks only."""
    from ibis.backends.sql.compilers.pyspark import PySparkCompiler

    blanks = " \t\n\r"
    PySparkCompiler.visit_Strip = lambda self, op, *, arg: self.f.trim(arg, blanks)
    PySparkCompiler.visit_LStrip = lambda self, op, *, arg: self.f.ltrim(arg, blanks)
    PySparkCompiler.visit_RStrip = lambda self, op, *, arg: self.f.rtrim(arg, blanks)


_patch_compiler()


def spark_session(master: str | None = None, warehouse_dir: str | None = None):
    """The process's Spark session, created once (start-up takes seconds)."""
    global _SESSION
    if _SESSION is not None:
        return _SESSION
    try:
        from pyspark.sql import SparkSession
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise EngineError("Spark is not installed: pip install 'tessera-cdp[spark]'") from exc
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    existing = SparkSession.getActiveSession()
    if existing is not None:
        _SESSION = existing
        return existing
    builder = (
        SparkSession.builder.master(master or os.environ.get("TESSERA_SPARK_MASTER", "local[2]"))
        .appName("tessera")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.shuffle.partitions", os.environ.get("TESSERA_SPARK_PARTITIONS", "4"))
        .config("spark.driver.memory", os.environ.get("TESSERA_SPARK_DRIVER_MEMORY", "2g"))
        .config("spark.sql.warehouse.dir", warehouse_dir or tempfile.mkdtemp(prefix="tessera-spark-"))
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
    )
    _SESSION = builder.getOrCreate()
    _SESSION.sparkContext.setLogLevel("ERROR")
    return _SESSION


class SparkAdapter(EngineAdapter):
    name = "pyspark"
    dialect = SparkDialect()
    graph_in_engine = True
    narrows_in_place = True
    answers_from_statistics = True
    #: on a small run (see fit_memory), a query's rows are collected to this process as Arrow and
    #: written here by pyarrow (:meth:`_create_from_arrow`): one job still computes them, without
    #: Spark's Parquet writer and its commit protocol (a task's and a job's commit, their folders)
    collects_small_writes = True
    #: on a small run, independent queries of a run at once (see :meth:`side_by_side`)
    runs_side_by_side = True

    def __init__(self, root: str | Path, *, master: str | None = None, session=None):
        self.root = Path(root)
        self.tables_dir = self.root / "tables"
        self.tables_dir.mkdir(parents=True, exist_ok=True)
        self.session = session or spark_session(master, str(self.root / "warehouse"))
        super().__init__(ibis.pyspark.connect(self.session))
        self._registered: set[str] = set()
        # a small run's tables are written through Arrow (collects_small_writes; set by fit_memory)
        self._small_run = False
        # the schema of each table this adapter wrote or read: reading a Parquet folder without
        # one runs a Spark job to read its footers, and a run writes and reads back many tables
        self._schemas: dict = {}
        self._ibis_schemas: dict = {}  # name -> (the Spark schema, as Ibis's), see table()
        # the session's own values of the settings a small run changes (None: unset), put back
        # for a larger one; read once per session (an earlier adapter may have changed them)
        if not hasattr(self.session, "_tessera_own_settings"):
            self.session._tessera_own_settings = {k: self.session.conf.get(k, None) for k in SMALL_RUN_SETTINGS}
        for name in self.list_tables():
            self._register(name)
        for view, table in self._published().items():
            self._register_view(view, table)

    # ------------------------------------------------------------------ catalog
    def _path(self, name: str) -> Path:
        return self.tables_dir / name

    def _read(self, name: str):
        """The Parquet folder of table ``name`` as a DataFrame, with the schema it was written with
        when this adapter knows it."""
        schema = self._schemas.get(name)
        if schema is None and (self._path(name) / SCHEMA_FILE).exists():
            from pyspark.sql.types import StructType

            schema = StructType.fromJson(json.loads((self._path(name) / SCHEMA_FILE).read_text()))
        reader = self.session.read if schema is None else self.session.read.schema(schema)
        df = reader.parquet(str(self._path(name)))
        self._schemas[name] = df.schema
        return df

    def _register(self, name: str, schema=None) -> None:
        if schema is not None:
            self._schemas[name] = schema
        self._read(name).createOrReplaceTempView(name)
        self._registered.add(name)

    def _register_view(self, view: str, table: str) -> None:
        """Published name ``view`` reads table ``table``: the plan of its registered view (its files
        already listed) when it has one, else its folder read."""
        if not self._path(table).exists():
            return
        df = self.session.table(table) if table in self._registered and view != table else self._read(table)
        df.createOrReplaceTempView(view)

    def _published(self) -> dict[str, str]:
        f = self.root / "published.json"
        return json.loads(f.read_text()) if f.exists() else {}

    def list_tables(self) -> list[str]:
        return sorted(p.name for p in self.tables_dir.iterdir() if p.is_dir() and (p / "_SUCCESS").exists())

    def list_views(self) -> list[str]:
        return list(self._published())

    def exists(self, name: str) -> bool:
        return (self._path(name) / "_SUCCESS").exists()

    def table(self, name: str) -> ibis.Table:
        """Table ``name``; of a table this adapter registered, from the schema it knows (Ibis would
        ask the session for it, a round trip to the JVM and the schema's JSON parsed, at each of
        the hundred-odd tables a run reads)."""
        schema = self._schemas.get(name) if name in self._registered else None
        if schema is None:
            return self.con.table(name)
        from ibis.backends.pyspark.datatypes import PySparkType

        known = self._ibis_schemas.get(name)
        if known is None or known[0] is not schema:
            known = self._ibis_schemas[name] = (schema, ibis.schema(PySparkType.to_ibis(schema)))
        return ops.DatabaseTable(name, schema=known[1], source=self.con,
                                 namespace=ops.Namespace(catalog=None, database=None)).to_expr()

    def _dataframe(self, obj):
        if isinstance(obj, pa.Table):
            if obj.num_rows == 0:
                return self.session.createDataFrame([], schema=_spark_schema(obj.schema))
            return self.session.createDataFrame(obj, schema=_spark_schema(obj.schema))
        if isinstance(obj, Compiled):
            self.con._run_pre_execute_hooks(obj.expr)
            return self.session.sql(obj.text)
        self.con._run_pre_execute_hooks(obj)
        return self.session.sql(self.con.compile(obj))

    def create_table(self, name: str, obj, *, overwrite: bool = True, temp: bool = False) -> ibis.Table:
        if isinstance(obj, pa.Table) and _arrow_writable(obj.schema):
            return self._create_from_arrow(name, obj)
        df = self._dataframe(obj)
        if self._collects(df):
            return self._create_from_arrow(name, df.toArrow(), df.schema)  # (one job, as the write was)
        path = self._path(name)
        if path.exists():
            # Spark reads lazily: materialize into a new folder before replacing the old one.
            tmp = self.tables_dir / f".{name}.tmp"
            df.write.mode("overwrite").parquet(str(tmp))
            self._install(tmp, name, df.schema)
        else:
            df.write.mode("overwrite").parquet(str(path))
            self._register(name, df.schema)
        return self.table(name)

    def _collects(self, df) -> bool:
        """Whether the rows of ``df`` are written through Arrow: on a small run, with columns of
        types :func:`_write_arrow` writes as Spark reads them."""
        return self.collects_small_writes and self._small_run and _spark_writable(df.schema)

    def _create_from_arrow(self, name: str, data: pa.Table, schema=None) -> ibis.Table:
        """Table ``name`` from rows already in this process: its Parquet file written here by
        pyarrow, in the types Spark would have written (no Spark job: an import's raw batches, the
        scores computed in Python), read with ``schema`` (Spark's, of rows collected from a query)
        or the types of ``data``."""
        tmp = self.tables_dir / f".{name}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        _write_arrow(data, tmp / f"part-00000-{uuid.uuid4()}.parquet")
        (tmp / "_SUCCESS").touch()
        self._install(tmp, name, _spark_schema(data.schema) if schema is None else _nullable(schema))
        return self.table(name)

    def _install(self, folder: Path, name: str, schema) -> None:
        """The complete Parquet folder ``folder`` becomes table ``name``'s (replacing it), read with
        ``schema``. Published views of ``name`` read the old folder's files: they read it again (a
        table rewritten in place, like an erase's deletes, would otherwise point them at files now
        gone)."""
        path = self._path(name)
        replaced = path.exists()
        if replaced:
            shutil.rmtree(path)
        folder.rename(path)
        self._register(name, schema)
        if replaced:
            for view, target in self._published().items():
                if target == name:
                    self._register_view(view, name)

    def narrow_table(self, table: str, name: str, columns: list[str], *, unless: str) -> None:
        """With no row to delete (``unless`` NULL in every row, from the files' statistics), the
        folder renamed and read with ``columns`` alone (their schema kept beside the files, in
        SCHEMA_FILE, for the sessions after): no job. Else a copy."""
        have = {f.name: f for f in (self._schemas.get(table) or self._read(table).schema)}
        if self.known_all_null(table, unless) is not True or any(c not in have for c in columns):
            super().narrow_table(table, name, columns, unless=unless)
            return
        from pyspark.sql.types import StructType

        schema = StructType([have[c] for c in columns])
        (self._path(table) / SCHEMA_FILE).write_text(schema.json())
        self._install(self._path(table), name, schema)
        self.drop_table(table)  # (its view and known schema; the folder is gone)

    def append(self, name: str, data: pa.Table) -> None:
        if not self.exists(name):
            self.create_table(name, data)
            return
        if isinstance(data, pa.Table) and _arrow_writable(data.schema):
            # one more Parquet file in the table's folder, written aside then renamed into it
            part = f"part-{uuid.uuid4()}.parquet"
            _write_arrow(data, self._path(name) / f".{part}.tmp")
            os.replace(self._path(name) / f".{part}.tmp", self._path(name) / part)
            self._register(name)
            return
        df = self._dataframe(data)
        if self._collects(df):
            self.append(name, df.toArrow())
            return
        df.write.mode("append").parquet(str(self._path(name)))
        self._register(name)  # with the table's schema: the rows appended have its columns

    def append_query(self, name: str, expr: ibis.Table, *, temp: bool = False) -> None:
        self.append(name, expr)  # a DataFrame of the expression, written in append mode

    def drop_table(self, name: str) -> None:
        self.session.catalog.dropTempView(name)
        self._registered.discard(name)
        self._schemas.pop(name, None)
        shutil.rmtree(self._path(name), ignore_errors=True)

    def count(self, expr: ibis.Table) -> int:
        """The rows of ``expr``: of a table this adapter stored, from its Parquet footers (read on
        this machine, no Spark job: a run counts the tables it has just written again and again);
        of a query, a Spark job."""
        stored = self._stored_path(expr)
        if stored is not None:
            return sum(_footers(stored).values())
        op = expr.op()
        if isinstance(op, ops.Limit) and op.offset == 0 and isinstance(op.n, int):
            # "are there rows": a limited take, without the count's shuffle to one partition
            return len(self._dataframe(op.parent.to_expr()).take(op.n)) if op.n else 0
        return int(self.con.execute(expr.count()))

    def any_true(self, name: str, column: str) -> bool:
        """Whether a row of stored table ``name`` has ``column`` true: from the maximum of the
        column in each row group's statistics (no Spark job), else a query."""
        found = _max_stats(self._path(name), column)
        return found if found is not None else super().any_true(name, column)

    def known_all_null(self, name: str, column: str) -> bool | None:
        """From the null counts of each row group's statistics (no Spark job)."""
        path = self._path(name)
        return _all_null_stats(path, column) if (path / "_SUCCESS").exists() else None

    def _stored_path(self, expr: ibis.Table) -> Path | None:
        """The Parquet folder ``expr`` reads as it is (a table or a published name), or None."""
        op = expr.op()
        if not isinstance(op, ops.DatabaseTable):
            return None
        name = self._published().get(op.name, op.name) if op.name not in self._registered else op.name
        path = self._path(name)
        return path if (path / "_SUCCESS").exists() else None

    def side_by_side(self) -> int:
        """On a small run (see :meth:`fit_memory`) each query is one task at a time on one core:
        as many queries at once as the session has cores (at most 4), from as many threads (each
        its own thread in the JVM), the Python side of one (building and compiling it) meanwhile
        overlapping the Spark jobs of another. A larger run's queries use every core already."""
        if not (self._small_run and self.runs_side_by_side):
            return 1
        return max(1, min(4, int(self.session.sparkContext.defaultParallelism)))

    def fit_memory(self) -> None:
        """SMALL_RUN_SETTINGS when the raw batches (from their Parquet footers) have at most
        SMALL_RUN_ROWS rows, else the session's own settings."""
        rows = sum(sum(_footers(self._path(name)).values()) for name in self.list_tables()
                   if name.startswith("_tessera_raw_"))
        self._small_run = rows <= SMALL_RUN_ROWS
        for key, small in SMALL_RUN_SETTINGS.items():
            value = small if self._small_run else self.session._tessera_own_settings[key]
            if value is None:
                self.session.conf.unset(key)
            else:
                self.session.conf.set(key, value)

    # ------------------------------------------------------------------ publication
    def publish(self, views: dict[str, str], patches=()) -> None:
        if patches:  # patches_in_place is False: a run copies what it changes
            raise NotImplementedError("Spark tables are not changed in place")
        current = self._published()
        current.update(views)
        withdrawn = [v for v, t in views.items() if t is None]
        for view in withdrawn:
            current.pop(view, None)
        f = self.root / "published.json"
        tmp = self.root / "published.json.tmp"
        tmp.write_text(json.dumps(current, indent=1))
        os.replace(tmp, f)
        for view, table in views.items():
            if table is None:
                try:
                    self.session.catalog.dropTempView(view)
                except Exception:  # noqa: BLE001 - not registered
                    pass
                continue
            self._register_view(view, table)

    def published_target(self, name: str) -> str | None:
        return self._published().get(name)

    def close(self) -> None:
        # The session is shared by the process; views of this workspace are dropped.
        for name in list(self._registered) + list(self._published()):
            try:
                self.session.catalog.dropTempView(name)
            except Exception:  # noqa: BLE001 - already gone
                pass


def _spark_schema(schema: pa.Schema):
    from pyspark.sql import types as T

    mapping = {
        pa.string(): T.StringType(), pa.large_string(): T.StringType(), pa.int64(): T.LongType(),
        pa.int32(): T.IntegerType(), pa.int8(): T.ByteType(), pa.float64(): T.DoubleType(),
        pa.bool_(): T.BooleanType(), pa.date32(): T.DateType(),
    }
    fields = []
    for f in schema:
        t = mapping.get(f.type)
        if t is None and pa.types.is_timestamp(f.type):
            t = T.TimestampType()
        if t is None:
            t = T.StringType()
        fields.append(T.StructField(f.name, t, True))
    return T.StructType(fields)


def _spark_writable(schema) -> bool:
    """Whether every column of the Spark ``schema`` has a type whose Arrow column :func:`_write_arrow`
    writes as Spark reads it back (text, whole numbers, doubles, booleans, dates, instants)."""
    from pyspark.sql import types as T

    kinds = (T.StringType, T.LongType, T.IntegerType, T.ByteType, T.DoubleType, T.BooleanType, T.DateType,
             T.TimestampType)
    return all(type(f.dataType) in kinds for f in schema.fields)


def _nullable(schema):
    """``schema`` with every column nullable, as Spark reads back the Parquet files it writes."""
    from pyspark.sql import types as T

    return T.StructType([T.StructField(f.name, f.dataType, True) for f in schema.fields])


def _arrow_writable(schema: pa.Schema) -> bool:
    """Whether every column of ``schema`` has a type that :func:`_write_arrow` writes as Spark
    would (the others go through Spark)."""
    return all(f.type in _ARROW_TYPES or pa.types.is_timestamp(f.type) for f in schema)


_ARROW_TYPES = {pa.string(), pa.large_string(), pa.int64(), pa.int32(), pa.int8(), pa.float64(), pa.bool_(),
                pa.date32()}


def _write_arrow(data: pa.Table, path: Path) -> None:
    """``data`` as one Parquet file in the types Spark reads as :func:`_spark_schema`'s: text as
    ``string``, times in microseconds as instants (a time without zone is one in UTC, the session's
    zone, as Spark takes it from Arrow)."""
    fields = []
    for f in data.schema:
        t = f.type
        if t == pa.large_string():
            t = pa.string()
        elif pa.types.is_timestamp(t):
            t = pa.timestamp("us", tz="UTC")
        fields.append(pa.field(f.name, t, True))
    schema = pa.schema(fields)
    pq.write_table(data.cast(schema, safe=False) if schema != data.schema else data, str(path))


def _parts(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix == ".parquet" and not p.name.startswith((".", "_")))


def _footers(folder: Path) -> dict[str, int]:
    """Rows of each Parquet file of a table's folder, from the files' footers."""
    return {p.name: pq.read_metadata(p).num_rows for p in _parts(folder)}


def _row_group_stats(folder: Path, column: str) -> list | None:
    """(rows, statistics) of ``column`` in each row group with rows of a table's folder, from the
    files' footers; None when a file has no such column."""
    found = []
    for p in _parts(folder):
        meta = pq.read_metadata(p)
        names = meta.schema.names
        if column not in names:
            return None
        i = names.index(column)
        for g in range(meta.num_row_groups):
            group = meta.row_group(g)
            if group.num_rows:
                found.append((group.num_rows, group.column(i).statistics))
    return found


def _all_null_stats(folder: Path, column: str) -> bool | None:
    """Whether ``column`` is NULL in every row of a table's folder, from the row groups' null
    counts; None when a row group has no null count of the column."""
    groups = _row_group_stats(folder, column)
    if groups is None:
        return None
    for rows, stats in groups:
        if stats is None or not stats.has_null_count:
            return None
        if stats.null_count != rows:
            return False
    return True


def _max_stats(folder: Path, column: str) -> bool | None:
    """Whether the boolean ``column`` is true in some row of a table's folder, from the row groups'
    statistics; None when a row group has rows but no statistics of the column."""
    groups = _row_group_stats(folder, column)
    if groups is None:
        return None
    for rows, stats in groups:
        if stats is None or not stats.has_min_max:
            if stats is not None and stats.null_count == rows:
                continue  # all null: not true
            return None
        if stats.max:
            return True
    return False
