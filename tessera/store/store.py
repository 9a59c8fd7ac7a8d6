"""The metadata store: configuration, runs, imported files, source schemas and publications.

``MetadataStore`` works on SQLite (``sqlite:///path/to/tessera.db``, the default of a workspace)
and PostgreSQL (``postgresql+psycopg://user@host/db``). Every method opens a short transaction
of its own and returns plain, JSON-friendly values: dicts whose datetimes are ISO 8601 strings
in UTC.

Several processes may use one store at once (the CLI and a server, say). On SQLite the file is
in WAL mode, waits up to 30 s for a lock, and transactions that write take the write lock when
they begin (``BEGIN IMMEDIATE``) so that two writers never deadlock on a lock upgrade. On
PostgreSQL, writes that compute the next number of something retry when a concurrent writer
took the same number first.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Engine, case, create_engine, delete, event, func, select, text, update
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload, sessionmaker

from tessera.store.models import (
    CONFIG_KINDS,
    JOB_STATES,
    ROLES,
    RUN_STATUSES,
    ApiToken,
    AuditEntry,
    Base,
    ConfigObject,
    ConfigVersion,
    Counter,
    IdentityOverride,
    PrivacyRequest,
    ImportedFile,
    Job,
    Publication,
    Run,
    RunStep,
    Secret,
    SourceSchema,
    State,
    User,
    utcnow,
)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
SQLITE_BUSY_TIMEOUT_S = 30
_WRITE = "tessera_write"
_RETRIES = 5
# PostgreSQL advisory lock keys (SQLite needs none: a write transaction locks the whole file)
_PG_MIGRATION_LOCK = 7_315_002_001
_PG_LOCK_PUBLICATION = 73_150_001
_PG_LOCK_SOURCE_SCHEMA = 73_150_002

# One plain statement (built once: it runs on every read request of a server).
_READ_STATE = text(
    f"SELECT (SELECT coalesce(max(id), 0) FROM {ConfigVersion.__tablename__}), "
    f"(SELECT count(*) FROM {Publication.__tablename__}), "
    f"(SELECT coalesce(max(id), 0) FROM {Run.__tablename__}), "
    f"(SELECT coalesce(max(id), 0) FROM {RunStep.__tablename__}), "
    f"(SELECT count(*) FROM {Run.__tablename__} WHERE finished_at IS NOT NULL)")

_READ_STATE_SQL = str(_READ_STATE)  # no bound values: the same text for every driver

_IMPORTED_FILE_FIELDS = {c.key for c in ImportedFile.__table__.columns} - {"id"}
_IMPORTED_FILE_REQUIRED = {"source", "path", "name", "sha256", "size", "batch_id"}

T = TypeVar("T")


def _normalize_url(url: str | os.PathLike[str]) -> URL:
    """Accept a SQLAlchemy URL or a plain file path (taken as a SQLite file)."""
    text = os.fspath(url)
    if "://" not in text:
        return URL.create("sqlite", database=str(Path(text).expanduser().resolve()))
    parsed = make_url(text)
    if parsed.drivername in ("postgresql", "postgres"):
        # psycopg 3 is the driver Tessera ships with; psycopg2 is not installed
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def _is_sqlite_file(url: URL) -> bool:
    return url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:") and not (
        url.database or ""
    ).startswith("file::memory:")


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:  # SQLite returns the stored UTC time without its offset
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc).isoformat()


def _as_dict(obj: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for column in obj.__table__.columns:
        value = getattr(obj, column.key)
        out[column.key] = _iso(value) if isinstance(value, datetime) else value
    return out


def _json_value(value: Any, what: str) -> Any:
    """A deep copy of ``value`` as JSON gives it back (fails early on what JSON cannot hold)."""
    try:
        return json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{what} is not JSON-serializable: {exc}") from exc


class MetadataStore:
    """Access to the metadata store of one workspace.

    The constructor only connects; ``upgrade()`` creates or migrates the tables, and
    ``MetadataStore.create(url)`` does both.
    """

    def __init__(self, url: str | os.PathLike[str]):
        self.url = _normalize_url(url)
        self.is_sqlite = self.url.get_backend_name() == "sqlite"
        if _is_sqlite_file(self.url):
            Path(self.url.database).parent.mkdir(parents=True, exist_ok=True)  # type: ignore[arg-type]
        self.engine = self._create_engine()
        self._write_engine = self.engine.execution_options(**{_WRITE: True})
        self._read_sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._write_sessions = sessionmaker(self._write_engine, expire_on_commit=False)

    @classmethod
    def create(cls, url: str | os.PathLike[str]) -> MetadataStore:
        """Open the store at ``url`` and bring its tables up to date."""
        store = cls(url)
        try:
            store.upgrade()
        except BaseException:
            store.close()
            raise
        return store

    def _create_engine(self) -> Engine:
        if not self.is_sqlite:
            return create_engine(self.url, pool_pre_ping=True)
        engine = create_engine(self.url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S})

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: Any) -> None:
            # Transactions are begun by hand below, so the driver must not begin its own.
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            try:
                if _is_sqlite_file(self.url):
                    cursor.execute("PRAGMA journal_mode=WAL")
                    cursor.execute("PRAGMA synchronous=NORMAL")
                cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_S * 1000}")
                cursor.execute("PRAGMA foreign_keys=ON")
            finally:
                cursor.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Any) -> None:
            immediate = conn.get_execution_options().get(_WRITE, False)
            conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

        return engine

    def close(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()

    def __enter__(self) -> MetadataStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"MetadataStore({self.url.render_as_string(hide_password=True)!r})"

    # -- migrations ---------------------------------------------------------------------------

    def _alembic_config(self) -> Any:
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
        cfg.set_main_option("path_separator", "os")
        return cfg

    def upgrade(self, revision: str = "head") -> None:
        """Create or migrate the tables up to ``revision`` (the latest by default)."""
        from alembic import command

        cfg = self._alembic_config()
        with self._write_engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_PG_MIGRATION_LOCK})")
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)

    def current_revision(self) -> str | None:
        """The migration the database is at, or None when it has no tables yet."""
        from alembic.runtime.migration import MigrationContext

        with self.engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()

    @staticmethod
    def head_revision() -> str | None:
        """The latest migration shipped with this version of Tessera."""
        from alembic.config import Config
        from alembic.script import ScriptDirectory

        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
        cfg.set_main_option("path_separator", "os")
        return ScriptDirectory.from_config(cfg).get_current_head()

    def is_up_to_date(self) -> bool:
        return self.current_revision() == self.head_revision()

    # -- sessions -----------------------------------------------------------------------------

    @contextmanager
    def _read(self) -> Iterator[Session]:
        with self._read_sessions() as session, session.begin():
            yield session

    @contextmanager
    def _write(self) -> Iterator[Session]:
        with self._write_sessions() as session, session.begin():
            yield session

    def _write_retrying(self, fn: Callable[[Session], T]) -> T:
        """Run ``fn`` in a write transaction, again when a concurrent writer won a unique key."""
        for attempt in range(_RETRIES):
            try:
                with self._write() as session:
                    return fn(session)
            except IntegrityError:
                if attempt == _RETRIES - 1:
                    raise
                time.sleep(0.01 * (attempt + 1))
        raise AssertionError("unreachable")

    @staticmethod
    def _lock(session: Session, namespace: int, key: str) -> None:
        """On PostgreSQL, serialize the transactions that write under ``key`` until they end."""
        if session.get_bind().dialect.name == "postgresql":
            session.execute(text("SELECT pg_advisory_xact_lock(:ns, hashtext(:key))"), {"ns": namespace, "key": key})

    # -- configuration ------------------------------------------------------------------------

    def save_config(self, objects: Iterable[tuple[str, str, dict[str, Any]]], origin: str) -> int:
        """Replace the current configuration with ``objects`` and record it in the history.

        ``objects`` are (kind, name, spec) in declaration order. Objects whose spec did not change
        keep their ``updated_at``. Returns the id of the new ``config_versions`` row.
        """
        items: list[tuple[str, str, dict[str, Any]]] = []
        seen: set[tuple[str, str]] = set()
        for i, item in enumerate(objects):
            kind, name, spec = item
            if not kind or not isinstance(kind, str) or not name or not isinstance(name, str):
                raise ValueError(f"configuration object #{i + 1}: kind and name must be non-empty strings")
            if not isinstance(spec, dict):
                raise ValueError(f"{kind} {name!r}: spec must be a dict, not {type(spec).__name__}")
            if (kind, name) in seen:
                raise ValueError(f"{kind} {name!r} is declared twice")
            seen.add((kind, name))
            items.append((kind, name, _json_value(spec, f"{kind} {name!r}")))
        whole = [{"kind": k, "name": n, "spec": s} for k, n, s in items]

        with self._write() as session:
            now = utcnow()
            current = {(o.kind, o.name): o for o in session.scalars(select(ConfigObject))}
            for position, (kind, name, spec) in enumerate(items):
                row = current.pop((kind, name), None)
                if row is None:
                    session.add(ConfigObject(kind=kind, name=name, position=position, spec=spec, updated_at=now))
                else:
                    if row.spec != spec:
                        row.spec = spec
                        row.updated_at = now
                    row.position = position
            for row in current.values():
                session.delete(row)
            version = ConfigVersion(created_at=now, spec=whole, origin=origin)
            session.add(version)
            session.flush()
            return version.id

    def load_config(self) -> list[tuple[str, str, dict[str, Any]]]:
        """The current configuration: connections, then sources, then datasets (then any other
        kind, alphabetically), each in declaration order."""
        rank = case({k: i for i, k in enumerate(CONFIG_KINDS)}, value=ConfigObject.kind, else_=len(CONFIG_KINDS))
        with self._read() as session:
            rows = session.scalars(select(ConfigObject).order_by(rank, ConfigObject.kind, ConfigObject.position))
            return [(r.kind, r.name, r.spec) for r in rows]

    def list_config_versions(self, limit: int = 20) -> list[dict[str, Any]]:
        """The latest applied configurations, newest first."""
        with self._read() as session:
            rows = session.scalars(select(ConfigVersion).order_by(ConfigVersion.id.desc()).limit(limit))
            return [_as_dict(r) for r in rows]

    def read_state(self) -> tuple[int, ...]:
        """A token that changes when the configuration, a publication or a run changes:
        (configuration version, publications, last run, last run step, finished runs).

        Readers cache what they derive from these (a parsed configuration, compiled queries, the
        status) and ask this one cheap query per request to know whether the cache still holds.
        It goes to the driver's connection: SQLAlchemy's transaction and result handling cost
        several times the query on SQLite."""
        conn = self.engine.raw_connection()
        try:
            cursor = conn.cursor()
            try:
                cursor.execute(_READ_STATE_SQL)
                row = cursor.fetchone()
            finally:
                cursor.close()
        finally:
            conn.close()  # back to the pool (which ends the driver's transaction, if it began one)
        return tuple(int(v or 0) for v in row)

    def current_config_version(self) -> int:
        """The id of the last applied configuration (0 before the first apply)."""
        with self._read() as session:
            return session.scalar(select(func.max(ConfigVersion.id))) or 0

    def config_objects(self) -> list[dict[str, Any]]:
        """The current configuration objects with their position and ``updated_at``."""
        with self._read() as session:
            rows = session.scalars(select(ConfigObject).order_by(ConfigObject.id))
            return [_as_dict(r) for r in rows]

    # -- runs ---------------------------------------------------------------------------------

    def start_run(self, kind: str, target: str | None, pid: int) -> int:
        with self._write() as session:
            run = Run(kind=kind, target=target, status="running", started_at=utcnow(), pid=pid)
            session.add(run)
            session.flush()
            return run.id

    def add_step(
        self,
        run_id: int,
        step: str,
        seconds: float,
        counts: dict[str, Any] | None,
        status: str = "succeeded",
    ) -> int:
        """Record a finished step of a run (it started ``seconds`` ago)."""
        counts = _json_value(counts, f"counts of step {step!r}") if counts is not None else None
        with self._write() as session:
            if session.get(Run, run_id) is None:
                raise KeyError(f"run {run_id} does not exist")
            row = RunStep(
                run_id=run_id,
                step=step,
                started_at=utcnow() - timedelta(seconds=max(float(seconds), 0.0)),
                seconds=float(seconds),
                counts=counts,
                status=status,
            )
            session.add(row)
            session.flush()
            return row.id

    def finish_run(
        self,
        run_id: int,
        status: str,
        counts: dict[str, Any] | None = None,
        error: str | None = None,
    ) -> None:
        """End a run with a final status (succeeded, failed, cancelled...). ``counts=None`` keeps the counts."""
        if status not in RUN_STATUSES or status == "running":
            raise ValueError(f"cannot finish a run as {status!r}: use one of {', '.join(RUN_STATUSES[1:])}")
        counts = _json_value(counts, "run counts") if counts is not None else None
        with self._write() as session:
            run = session.get(Run, run_id)
            if run is None:
                raise KeyError(f"run {run_id} does not exist")
            run.status = status
            run.finished_at = utcnow()
            if counts is not None:
                run.counts = counts
            if error is not None:
                run.error = error

    @staticmethod
    def _run_dict(run: Run) -> dict[str, Any]:
        out = _as_dict(run)
        out["steps"] = [_as_dict(s) for s in run.steps]
        return out

    def get_run(self, run_id: int) -> dict[str, Any]:
        """A run with its steps; KeyError when there is no such run."""
        with self._read() as session:
            run = session.get(Run, run_id, options=[selectinload(Run.steps)])
            if run is None:
                raise KeyError(f"run {run_id} does not exist")
            return self._run_dict(run)

    def list_runs(
        self, limit: int = 20, *, kind: str | None = None, status: str | None = None
    ) -> list[dict[str, Any]]:
        """The latest runs, newest first, each with its steps."""
        query = select(Run).options(selectinload(Run.steps)).order_by(Run.id.desc()).limit(limit)
        if kind is not None:
            query = query.where(Run.kind == kind)
        if status is not None:
            query = query.where(Run.status == status)
        with self._read() as session:
            return [self._run_dict(r) for r in session.scalars(query)]

    def mark_stale_runs(self, alive: Callable[[int], bool]) -> list[int]:
        """Mark as interrupted the runs still 'running' whose process is gone; returns their ids.

        ``alive(pid)`` tells whether a process is still running (e.g. ``psutil.pid_exists``).
        Runs without a pid are left alone.
        """
        with self._read() as session:
            running = session.execute(
                select(Run.id, Run.pid).where(Run.status == "running", Run.pid.is_not(None)).order_by(Run.id)
            ).all()
        stale = [(run_id, pid) for run_id, pid in running if not alive(pid)]
        if not stale:
            return []
        marked: list[int] = []
        with self._write() as session:
            now = utcnow()
            for run_id, pid in stale:
                result = session.execute(
                    update(Run)
                    .where(Run.id == run_id, Run.status == "running")
                    .values(status="interrupted", finished_at=now,
                            error=f"process {pid} ended before the run finished (killed or crashed); "
                                  "the last publication is intact")
                )
                if result.rowcount:
                    marked.append(run_id)
        return marked

    # -- jobs ---------------------------------------------------------------------------------

    def add_job(self, kind: str, params: dict[str, Any] | None, *, requested_by: str | None = None,
                server_pid: int | None = None) -> dict[str, Any]:
        """Record a new job of the writer queue, queued."""
        params = _json_value(params, "job parameters") if params is not None else None
        with self._write() as session:
            job = Job(kind=kind, params=params, state="queued", created_at=utcnow(), requested_by=requested_by,
                      server_pid=server_pid, log=[])
            session.add(job)
            session.flush()
            return _as_dict(job)

    def update_job(self, job_id: int, **fields: Any) -> dict[str, Any]:
        """Change a job's state, progress, log, result or error; returns the job."""
        if "state" in fields and fields["state"] not in JOB_STATES:
            raise ValueError(f"unknown job state {fields['state']!r}: use one of {', '.join(JOB_STATES)}")
        for key in ("progress", "log", "result"):
            if key in fields and fields[key] is not None:
                fields[key] = _json_value(fields[key], f"job {key}")
        with self._write() as session:
            job = session.get(Job, job_id)
            if job is None:
                raise KeyError(f"job {job_id} does not exist")
            for key, value in fields.items():
                setattr(job, key, value)
            session.flush()
            return _as_dict(job)

    def get_job(self, job_id: int) -> dict[str, Any] | None:
        with self._read() as session:
            job = session.get(Job, job_id)
            return _as_dict(job) if job is not None else None

    def list_jobs(self, limit: int = 50, *, states: Iterable[str] | None = None) -> list[dict[str, Any]]:
        """The latest jobs, newest first."""
        query = select(Job).order_by(Job.id.desc()).limit(limit)
        if states is not None:
            query = query.where(Job.state.in_(list(states)))
        with self._read() as session:
            return [_as_dict(j) for j in session.scalars(query)]

    def interrupt_jobs(self, reason: str) -> list[int]:
        """Mark every queued or running job as interrupted (a server that ended without finishing them)."""
        with self._write() as session:
            ids = list(session.scalars(select(Job.id).where(Job.state.in_(("queued", "running")))))
            if ids:
                session.execute(update(Job).where(Job.id.in_(ids))
                                .values(state="interrupted", finished_at=utcnow(), error=reason,
                                        error_code="interrupted"))
            return ids

    # -- imported files -----------------------------------------------------------------------

    def find_imported_file(self, source: str, sha256: str) -> dict[str, Any] | None:
        """The latest import of a file with this content into ``source``, if any."""
        with self._read() as session:
            row = session.scalars(
                select(ImportedFile)
                .where(ImportedFile.source == source, ImportedFile.sha256 == sha256)
                .order_by(ImportedFile.id.desc())
                .limit(1)
            ).first()
            return _as_dict(row) if row is not None else None

    def add_imported_file(self, **fields: Any) -> int:
        """Record an imported file. Needs source, path, name, sha256, size and batch_id;
        imported_at defaults to now and status to 'imported'."""
        unknown = set(fields) - _IMPORTED_FILE_FIELDS
        if unknown:
            raise TypeError(f"unknown imported file fields: {', '.join(sorted(unknown))}")
        missing = _IMPORTED_FILE_REQUIRED - set(fields)
        if missing:
            raise TypeError(f"missing imported file fields: {', '.join(sorted(missing))}")
        values = {"status": "imported", "imported_at": utcnow(), **fields}
        for key in ("path", "archive_path"):
            if isinstance(values.get(key), os.PathLike):
                values[key] = os.fspath(values[key])
        with self._write() as session:
            row = ImportedFile(**values)
            session.add(row)
            session.flush()
            return row.id

    def update_imported_file(self, file_id: int, **fields: Any) -> None:
        """Change fields of an imported file (e.g. rows, rejected, status, archive_path)."""
        unknown = set(fields) - _IMPORTED_FILE_FIELDS
        if unknown:
            raise TypeError(f"unknown imported file fields: {', '.join(sorted(unknown))}")
        for key in ("path", "archive_path"):
            if isinstance(fields.get(key), os.PathLike):
                fields[key] = os.fspath(fields[key])
        with self._write() as session:
            row = session.get(ImportedFile, file_id)
            if row is None:
                raise KeyError(f"imported file {file_id} does not exist")
            for key, value in fields.items():
                setattr(row, key, value)

    def list_imported_files(self, source: str | None = None) -> list[dict[str, Any]]:
        """Imported files in the order they were recorded."""
        query = select(ImportedFile).order_by(ImportedFile.id)
        if source is not None:
            query = query.where(ImportedFile.source == source)
        with self._read() as session:
            return [_as_dict(r) for r in session.scalars(query)]

    def next_batch_id(self) -> int:
        """A new batch id, larger than every batch id handed out or recorded before."""
        recorded = select(func.coalesce(func.max(ImportedFile.batch_id), 0)).scalar_subquery()

        def take(session: Session) -> int:
            result = session.execute(
                update(Counter)
                .where(Counter.name == "batch_id")
                .values(value=case((Counter.value >= recorded, Counter.value), else_=recorded) + 1)
            )
            if result.rowcount == 0:
                start = session.scalar(select(func.coalesce(func.max(ImportedFile.batch_id), 0))) or 0
                session.add(Counter(name="batch_id", value=start + 1))
                session.flush()
            return int(session.scalar(select(Counter.value).where(Counter.name == "batch_id")))

        return self._write_retrying(take)

    # -- source schemas -----------------------------------------------------------------------

    def set_source_schema(self, source: str, columns: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
        """Merge ``columns`` into the known schema of ``source``: known columns keep their
        position and type, new ones are added at the end. Returns the merged schema."""
        columns = list(columns)

        def merge(session: Session) -> list[tuple[str, str]]:
            self._lock(session, _PG_LOCK_SOURCE_SCHEMA, source)
            rows = list(
                session.scalars(
                    select(SourceSchema).where(SourceSchema.source == source).order_by(SourceSchema.position)
                )
            )
            known = {r.column_name for r in rows}
            position = max((r.position for r in rows), default=-1)
            merged = [(r.column_name, r.inferred_type) for r in rows]
            for name, inferred_type in columns:
                if name in known:
                    continue
                known.add(name)
                position += 1
                session.add(
                    SourceSchema(source=source, column_name=name, position=position, inferred_type=inferred_type)
                )
                merged.append((name, inferred_type))
            session.flush()
            return merged

        return self._write_retrying(merge)

    def get_source_schema(self, source: str) -> list[tuple[str, str]]:
        """The known columns of ``source`` as (name, inferred type), in order."""
        with self._read() as session:
            rows = session.execute(
                select(SourceSchema.column_name, SourceSchema.inferred_type)
                .where(SourceSchema.source == source)
                .order_by(SourceSchema.position)
            ).all()
            return [(name, inferred_type) for name, inferred_type in rows]

    def delete_source_schema(self, source: str) -> None:
        """Forget the known columns of ``source`` (e.g. when the source is reset)."""
        with self._write() as session:
            session.execute(delete(SourceSchema).where(SourceSchema.source == source))

    # -- publications -------------------------------------------------------------------------

    def record_publication(self, dataset: str, run_id: int | None, table_name: str, rows: int | None) -> int:
        """Record a new published version of ``dataset``; returns its version (1, 2, ...)."""

        def add(session: Session) -> int:
            self._lock(session, _PG_LOCK_PUBLICATION, dataset)
            last = session.scalar(select(func.max(Publication.version)).where(Publication.dataset == dataset))
            version = (last or 0) + 1
            session.add(
                Publication(
                    dataset=dataset,
                    version=version,
                    run_id=run_id,
                    table_name=table_name,
                    published_at=utcnow(),
                    rows=rows,
                )
            )
            session.flush()
            return version

        return self._write_retrying(add)

    def latest_publication(self, dataset: str) -> dict[str, Any] | None:
        with self._read() as session:
            row = session.scalars(
                select(Publication)
                .where(Publication.dataset == dataset)
                .order_by(Publication.version.desc())
                .limit(1)
            ).first()
            return _as_dict(row) if row is not None else None

    def list_publications(self, dataset: str) -> list[dict[str, Any]]:
        """Published versions of ``dataset``, newest first."""
        with self._read() as session:
            rows = session.scalars(
                select(Publication).where(Publication.dataset == dataset).order_by(Publication.version.desc())
            )
            return [_as_dict(r) for r in rows]


    # -- secrets (ciphertext only: tessera.secrets encrypts and decrypts) ------------------------

    def set_secret(self, name: str, ciphertext: str) -> None:
        with self._write() as session:
            row = session.get(Secret, name)
            if row is None:
                session.add(Secret(name=name, ciphertext=ciphertext, updated_at=utcnow()))
            elif row.ciphertext != ciphertext:
                row.ciphertext = ciphertext
                row.updated_at = utcnow()

    def get_secret(self, name: str) -> str | None:
        with self._read() as session:
            row = session.get(Secret, name)
            return row.ciphertext if row is not None else None

    def list_secrets(self) -> list[str]:
        with self._read() as session:
            return list(session.scalars(select(Secret.name).order_by(Secret.name)))

    def delete_secret(self, name: str) -> None:
        with self._write() as session:
            session.execute(delete(Secret).where(Secret.name == name))

    # -- states --------------------------------------------------------------------------------

    def set_state(self, scope: str, key: str, value: Any) -> None:
        """Store a JSON value under (scope, key), replacing the previous one."""
        value = _json_value(value, f"state {scope}/{key}")
        with self._write() as session:
            row = session.get(State, (scope, key))
            if row is None:
                session.add(State(scope=scope, key=key, value=value, updated_at=utcnow()))
            else:
                row.value = value
                row.updated_at = utcnow()

    def get_state(self, scope: str, key: str, default: Any = None) -> Any:
        with self._read() as session:
            row = session.get(State, (scope, key))
            return row.value if row is not None else default

    def list_states(self, scope: str) -> dict[str, Any]:
        with self._read() as session:
            return {r.key: r.value for r in session.scalars(select(State).where(State.scope == scope))}

    def delete_state(self, scope: str, key: str) -> None:
        with self._write() as session:
            session.execute(delete(State).where(State.scope == scope, State.key == key))

    # -- identity overrides --------------------------------------------------------------------

    def add_identity_override(self, dataset: str, kind: str, records: list[str], *, origin: str = "manual",
                              note: str | None = None, created_by: str | None = None) -> dict[str, Any]:
        """Record a manual rule; the rules it contradicts are removed (the newest decision wins):
        a merge removes the splits that separate its records and the rejects of its pairs, a split
        the merges and rejects that cross it, a reject the merges of both its records."""
        recs = sorted(set(records))

        def add(session: Session) -> dict[str, Any]:
            mine = set(recs)
            for row in session.scalars(select(IdentityOverride).where(IdentityOverride.dataset == dataset)):
                theirs = set(row.records)
                if kind == "merge":
                    crosses = row.kind == "split" and 0 < len(theirs & mine) < len(mine)
                    if crosses or (row.kind == "reject" and theirs <= mine):
                        session.delete(row)
                elif kind == "split":
                    crosses = row.kind in ("merge", "reject") and 0 < len(theirs & mine) < len(theirs)
                    if crosses or (row.kind == "split" and theirs == mine):
                        session.delete(row)
                elif kind == "reject" and row.kind in ("merge", "reject") and mine <= theirs:
                    session.delete(row)
            row = IdentityOverride(dataset=dataset, kind=kind, records=recs, origin=origin, note=note,
                                   created_by=created_by, created_at=utcnow())
            session.add(row)
            session.flush()
            return _as_dict(row)

        return self._write_retrying(add)

    def list_identity_overrides(self, dataset: str | None = None) -> list[dict[str, Any]]:
        """Identity overrides, oldest first (the order they are applied in)."""
        with self._read() as session:
            q = select(IdentityOverride).order_by(IdentityOverride.id)
            if dataset is not None:
                q = q.where(IdentityOverride.dataset == dataset)
            return [_as_dict(r) for r in session.scalars(q)]

    def delete_identity_override(self, override_id: int) -> bool:
        with self._write() as session:
            return session.execute(delete(IdentityOverride).where(IdentityOverride.id == override_id)).rowcount > 0

    # -- users, API tokens, audit log ----------------------------------------------------------

    @staticmethod
    def _user_dict(user: User) -> dict[str, Any]:
        out = _as_dict(user)
        out.pop("password_hash", None)
        return out

    def add_user(self, email: str, role: str, password_hash: str | None, *,
                 created_by: str | None = None) -> dict[str, Any]:
        """Record a user (without its password hash in the answer).

        Raises:
            ValueError: an unknown role, or a user with this email exists.
        """
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}: use one of {', '.join(ROLES)}")
        try:
            with self._write() as session:
                user = User(email=email, role=role, password_hash=password_hash, created_at=utcnow(),
                            created_by=created_by)
                session.add(user)
                session.flush()
                return self._user_dict(user)
        except IntegrityError:
            raise ValueError(f"a user with the email {email!r} exists") from None

    def get_user(self, email: str, *, with_hash: bool = False) -> dict[str, Any] | None:
        with self._read() as session:
            user = session.scalars(select(User).where(User.email == email)).first()
            if user is None:
                return None
            return _as_dict(user) if with_hash else self._user_dict(user)

    def get_user_by_id(self, user_id: int) -> dict[str, Any] | None:
        with self._read() as session:
            user = session.get(User, user_id)
            return self._user_dict(user) if user is not None else None

    def list_users(self) -> list[dict[str, Any]]:
        with self._read() as session:
            return [self._user_dict(u) for u in session.scalars(select(User).order_by(User.email))]

    def count_admins(self) -> int:
        with self._read() as session:
            return int(session.scalar(select(func.count()).select_from(User).where(User.role == "admin")) or 0)

    def set_user(self, email: str, **fields: Any) -> dict[str, Any] | None:
        """Change a user's ``role`` or ``password_hash``; None when no such user."""
        if "role" in fields and fields["role"] not in ROLES:
            raise ValueError(f"unknown role {fields['role']!r}: use one of {', '.join(ROLES)}")
        with self._write() as session:
            user = session.scalars(select(User).where(User.email == email)).first()
            if user is None:
                return None
            for key, value in fields.items():
                setattr(user, key, value)
            session.flush()
            return self._user_dict(user)

    def delete_user(self, email: str) -> bool:
        """Remove a user and its API tokens."""
        with self._write() as session:
            user = session.scalars(select(User).where(User.email == email)).first()
            if user is None:
                return False
            session.execute(delete(ApiToken).where(ApiToken.user_id == user.id))
            session.delete(user)
            return True

    @staticmethod
    def _token_dict(token: ApiToken, email: str | None) -> dict[str, Any]:
        out = _as_dict(token)
        out.pop("token_hash", None)
        out["user"] = email
        return out

    def add_token(self, user_id: int, role: str, token_hash: str, prefix: str, *,
                  expires_at: datetime | None = None, note: str | None = None) -> dict[str, Any]:
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}: use one of {', '.join(ROLES)}")
        with self._write() as session:
            user = session.get(User, user_id)
            if user is None:
                raise ValueError(f"no user {user_id}")
            token = ApiToken(user_id=user_id, role=role, token_hash=token_hash, prefix=prefix, note=note,
                             created_at=utcnow(), expires_at=expires_at)
            session.add(token)
            session.flush()
            return self._token_dict(token, user.email)

    def find_token(self, token_hash: str) -> dict[str, Any] | None:
        """The token with this hash and its user (``user``, ``user_role``), whatever its state."""
        with self._read() as session:
            row = session.execute(select(ApiToken, User).join(User, User.id == ApiToken.user_id)
                                  .where(ApiToken.token_hash == token_hash)).first()
            if row is None:
                return None
            out = self._token_dict(row[0], row[1].email)
            out["user_role"] = row[1].role
            return out

    def get_token(self, token_id: int) -> dict[str, Any] | None:
        with self._read() as session:
            row = session.execute(select(ApiToken, User).join(User, User.id == ApiToken.user_id)
                                  .where(ApiToken.id == token_id)).first()
            return self._token_dict(row[0], row[1].email) if row is not None else None

    def list_tokens(self, user_id: int | None = None) -> list[dict[str, Any]]:
        query = select(ApiToken, User).join(User, User.id == ApiToken.user_id).order_by(ApiToken.id)
        if user_id is not None:
            query = query.where(ApiToken.user_id == user_id)
        with self._read() as session:
            return [self._token_dict(t, u.email) for t, u in session.execute(query)]

    def revoke_token(self, token_id: int) -> dict[str, Any] | None:
        """Mark a token revoked (it stays listed); None when no such token."""
        with self._write() as session:
            token = session.get(ApiToken, token_id)
            if token is None:
                return None
            if token.revoked_at is None:
                token.revoked_at = utcnow()
            session.flush()
            user = session.get(User, token.user_id)
            return self._token_dict(token, user.email if user else None)

    def touch_token(self, token_id: int) -> None:
        with self._write() as session:
            session.execute(update(ApiToken).where(ApiToken.id == token_id).values(last_used_at=utcnow()))

    def audit(self, action: str, *, actor: str | None, target: str | None = None, details: Any = None,
              client: str | None = None) -> int:
        """Append a line to the audit log; its id. Lines are never changed nor removed."""
        details = _json_value(details, "audit details") if details is not None else None
        with self._write() as session:
            entry = AuditEntry(at=utcnow(), actor=actor, action=action, target=target, details=details,
                               client=client)
            session.add(entry)
            session.flush()
            return entry.id

    def list_audit(self, limit: int = 100, *, action: str | None = None, actor: str | None = None,
                   before: int | None = None) -> list[dict[str, Any]]:
        """Audit lines, newest first; ``action`` matches a prefix (``job`` for job.submitted, job.finished)."""
        query = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
        if action:
            query = query.where(AuditEntry.action.startswith(action))
        if actor:
            query = query.where(AuditEntry.actor == actor)
        if before is not None:
            query = query.where(AuditEntry.id < before)
        with self._read() as session:
            return [_as_dict(e) for e in session.scalars(query)]

    # -- privacy requests ---------------------------------------------------------------------

    def add_privacy_request(self, kind: str, subject: str, requested_by: str | None) -> int:
        """Record an erase or export as it starts; its id."""
        with self._write() as session:
            row = PrivacyRequest(kind=kind, subject=subject[:512], requested_by=requested_by,
                                 requested_at=utcnow(), status="running")
            session.add(row)
            session.flush()
            return row.id

    def finish_privacy_request(self, request_id: int, status: str, receipt: Any = None) -> None:
        receipt = _json_value(receipt, "privacy receipt") if receipt is not None else None
        with self._write() as session:
            session.execute(update(PrivacyRequest).where(PrivacyRequest.id == request_id)
                            .values(status=status, receipt=receipt, finished_at=utcnow()))

    def list_privacy_requests(self, limit: int = 100) -> list[dict[str, Any]]:
        """Erase and export requests, newest first."""
        with self._read() as session:
            q = select(PrivacyRequest).order_by(PrivacyRequest.id.desc()).limit(limit)
            return [_as_dict(r) for r in session.scalars(q)]


__all__ = ["MetadataStore", "Base", "MIGRATIONS_DIR"]
