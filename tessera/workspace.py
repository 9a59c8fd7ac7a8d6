"""The Workspace facade: the one Python API that the CLI, the server and the scheduler call.

A workspace is a folder::

    DIR/
      workspace.json      settings (engine, where the metadata lives)
      metadata.sqlite     configuration, runs, imported files (or TESSERA_METADATA_URL)
      warehouse.duckdb    raw layer and published datasets (or TESSERA_WAREHOUSE)
      archive/            every imported file, by content hash
      .lock               held by the process that writes

Examples:
    >>> ws = Workspace.init("shop")                       # doctest: +SKIP
    >>> ws.apply("workspace.yaml")                          # doctest: +SKIP
    >>> ws.run().status                                     # doctest: +SKIP
    'succeeded'
"""

from __future__ import annotations

import fcntl
import gc
import json
import os
import uuid
import threading
import time
from datetime import date
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import ibis
import psutil
import pyarrow as pa

from tessera.analytics import dashboard_problems
from tessera.config.events import EVENT_COLUMNS
from tessera.config.loader import dump_yaml, load_yaml, load_yaml_text, parse_config, resolve_paths
from tessera.config.models import DatasetConfig, WorkspaceConfig
from tessera.config.versions import KIND_PLURALS, spec_version
from tessera.connectors import check_connection
from tessera.datasets.build import dataset_columns
from tessera.datasets.search import search_view
from tessera.engine.base import EngineAdapter, param
from tessera.engine.connect import open_adapter
from tessera.errors import (
    BusyError,
    ConfigError,
    ConflictError,
    EngineError,
    NotFoundError,
    TesseraError,
    UsageError,
    VersionConflict,
    WorkspaceError,
)
from tessera.identity.explain import explain
from tessera.normalize.semantic import suggest_semantic
from tessera.jobs.limits import JobLimits
from tessera.pipeline import REJECTS_VIEW, Pipeline, Progress, RunResult, read_index_columns
from tessera.privacy import consent as consent_history
from tessera.privacy.erase import erase as erase_customer
from tessera.privacy import export as privacy_export
from tessera.privacy.suppression import listing as suppression_listing
from tessera.privacy.suppression import salt as privacy_salt
from tessera.profiles import profile
from tessera.schedule import Scheduler
from tessera.secrets import SecretBox, create_key_file
from tessera.setup import propose_config
from tessera.sources.columns import column_problems
from tessera.sources.events import EVENTS_TABLE
from tessera.store import MetadataStore
from tessera.syncs import customer_state, mark_erased
from tessera.syncs.runner import run_syncs

TID = "tessera_id"

SETTINGS = "workspace.json"


def _without_password(url: str) -> str:
    """A warehouse URL fit to be written in workspace.json: never its password."""
    from sqlalchemy.engine import make_url

    if "://" not in url:
        return url
    try:
        parsed = make_url(url)
    except Exception:  # noqa: BLE001 - not a URL we can read: reported when connecting
        return url
    return parsed._replace(password=None).render_as_string(hide_password=False) if parsed.password else url


def _engine_setting(settings: dict) -> str:
    return os.environ.get("TESSERA_WAREHOUSE") or settings.get("warehouse") or "duckdb"


_heap_settled = False


def _settle_heap() -> None:
    """Keep what is alive when a process opens its first workspace (the modules: some 200,000
    objects) out of the garbage collector's full scans, as the server does at its start: each
    scan of them took 0.05-0.1 s, some 10% of a run after a file of 1% new records. They live
    as long as the process; objects made after are collected as usual."""
    global _heap_settled
    if not _heap_settled:
        _heap_settled = True
        gc.freeze()


class Workspace:
    """A Tessera workspace: configuration, runs and published datasets."""

    def __init__(self, path: Path, settings: dict):
        _settle_heap()
        self.path = path
        self.settings = settings
        url = os.environ.get("TESSERA_METADATA_URL") or settings.get("metadata_url") or \
            f"sqlite:///{path / 'metadata.sqlite'}"
        self.store = MetadataStore(url)
        self.store.upgrade()
        self._adapter: EngineAdapter | None = None
        self._lock_fh = None
        self._held = False  # True while a server owns the workspace (see :meth:`hold`)
        self._is_reader = False
        self._readers = threading.local()
        # What reads derive from the store's state (the parsed configuration, compiled queries,
        # the status), shared by this workspace and its readers: see :meth:`cached_read`.
        self._cache: dict = {}
        self._pinned: list | None = None  # the store's state for the read in progress (see :meth:`pinned`)
        self.secrets = SecretBox(path, self.store)
        # A run whose process was killed stays 'running' in the store until someone looks.
        self.store.mark_stale_runs(psutil.pid_exists)

    # ------------------------------------------------------------------ lifecycle
    @classmethod
    def init(cls, path: str | Path, *, warehouse: str | None = None, metadata_url: str | None = None) -> "Workspace":
        """Create a workspace folder (idempotent on an existing workspace).

        Args:
            path: the folder to create.
            warehouse: ``duckdb``, ``spark`` or a PostgreSQL URL; default ``TESSERA_WAREHOUSE``, else
                ``duckdb``. It is recorded in ``workspace.json`` (a URL without its password, which
                ``TESSERA_WAREHOUSE``, ``PGPASSWORD`` or ``~/.pgpass`` then give), so later commands
                use the same engine without the environment variable.
            metadata_url: a SQLAlchemy URL for the metadata store (default: SQLite file in the folder).
        """
        path = Path(path).resolve()
        settings_file = path / SETTINGS
        if settings_file.exists():
            return cls.open(path)
        if path.exists() and any(path.iterdir()):
            raise WorkspaceError(f"{path} exists and is not empty: choose a new folder for the workspace.")
        path.mkdir(parents=True, exist_ok=True)
        (path / "archive").mkdir(exist_ok=True)
        settings = {"version": 1, "warehouse": _without_password(warehouse or os.environ.get("TESSERA_WAREHOUSE")
                                                                 or "duckdb")}
        if metadata_url:
            settings["metadata_url"] = metadata_url
        settings_file.write_text(json.dumps(settings, indent=2) + "\n")
        create_key_file(path)
        ws = cls(path, settings)
        ws.adapter  # creates the warehouse file
        return ws

    @classmethod
    def open(cls, path: str | Path) -> "Workspace":
        path = Path(path).resolve()
        settings_file = path / SETTINGS
        if not settings_file.exists():
            raise WorkspaceError(f"{path} is not a Tessera workspace (no {SETTINGS}); create one with: tessera init {path}")
        return cls(path, json.loads(settings_file.read_text()))

    @property
    def adapter(self) -> EngineAdapter:
        if self._adapter is None:
            self._adapter = self._connect()
        return self._adapter

    def _connect(self) -> EngineAdapter:
        return open_adapter(_engine_setting(self.settings), self.path)

    def close(self) -> None:
        if self._is_reader:
            if self._adapter is not None:
                self._adapter.close()
                self._adapter = None
            return
        if self._adapter is not None:
            self._adapter.close()
            self._adapter = None
        if self._lock_fh is not None:
            fcntl.flock(self._lock_fh, fcntl.LOCK_UN)
            self._lock_fh.close()
            self._lock_fh = None
            self._held = False
        self.store.close()

    # ------------------------------------------------------------------ ownership (the server)
    def hold(self, owner: str = "the server") -> None:
        """Own the workspace until :meth:`close`: take the write lock for good and open the warehouse.

        The server does this at its start: from then on it is the only writer (its jobs run one at
        a time, see :mod:`tessera.jobs`) and :meth:`writing` no longer takes the lock per write.

        Raises:
            BusyError: another process writes the workspace (a CLI run, another server).
        """
        fh = open(self.path / ".lock", "a+")
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            fh.close()
            raise BusyError(f"The workspace {self.path} is being written by {holder}; wait for it to finish "
                            "or stop it, then start the server again.") from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"{owner} (pid {os.getpid()})")
        fh.flush()
        self._lock_fh = fh
        self._held = True
        self.adapter  # opened once, kept open

    def reader(self) -> "Workspace":
        """This workspace for reading on the calling thread, beside a writer on another thread.

        It shares the metadata store and reads the warehouse through a connection of its own
        (:meth:`EngineAdapter.reader`), so it sees the last publication while a run builds the
        next one, and never waits for the writer. One reader per thread, kept for the next call.
        """
        if self._is_reader:
            return self
        reader = getattr(self._readers, "workspace", None)
        if reader is None:
            reader = Workspace.__new__(Workspace)
            reader.path, reader.settings, reader.store, reader.secrets = self.path, self.settings, self.store, self.secrets
            reader._adapter = self.adapter.reader()
            reader._lock_fh, reader._held, reader._is_reader = None, False, True
            reader._pinned = None
            reader._readers, reader._cache = self._readers, self._cache
            self._readers.workspace = reader
        return reader

    @contextmanager
    def pinned(self) -> Iterator["Workspace"]:
        """Read the store's state once for what runs inside (one request of the server), instead of
        once per cached thing it asks for: :attr:`config`, :meth:`cached_read`, :meth:`status`.
        What is read inside sees one state of the workspace; the next request sees the next."""
        if self._pinned is not None:  # already pinned by an outer read
            yield self
            return
        self._pinned = []
        try:
            yield self
        finally:
            self._pinned = None

    def _state(self) -> tuple[int, ...]:
        pinned = self._pinned
        if pinned is None:
            return self.store.read_state()
        if not pinned:
            pinned.append(self.store.read_state())
        return pinned[0]

    def __enter__(self) -> "Workspace":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @contextmanager
    def writing(self, wait: float | None = None) -> Iterator[None]:
        """Hold the workspace's write lock (one writer at a time).

        Args:
            wait: seconds to wait for another writer to finish (default ``TESSERA_LOCK_WAIT`` or
                10 s: the server's event loader holds the lock for a fraction of a second each
                second); 0 fails at once.
        """
        if self._held:
            yield  # the server owns the workspace: its writer queue is the only writer
            return
        if wait is None:
            wait = float(os.environ.get("TESSERA_LOCK_WAIT", "10"))
        lock_path = self.path / ".lock"
        fh = open(lock_path, "a+")
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() < deadline:
                    time.sleep(0.05)
                    continue
                fh.seek(0)
                holder = fh.read().strip() or "another process"
                fh.close()
                raise BusyError(
                    f"The workspace {self.path} is being written by {holder}; wait for it to finish or stop it."
                ) from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()}")
        fh.flush()
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
            fh.close()

    # ------------------------------------------------------------------ configuration
    @property
    def config(self) -> WorkspaceConfig:
        # Parsed once per applied version (validating it costs milliseconds, and every read asks).
        version = self._state()[0]
        cached = self._cache.get("config")
        if cached is not None and cached[0] == version:
            return cached[1]
        config = self._load_config()
        self._cache["config"] = (version, config)
        return config

    def cached_read(self, key, build):
        """``build()``, computed once per state of the workspace: the configuration version and
        the publications (see :meth:`MetadataStore.read_state`). Built again on the next call
        after an apply or a run publishes."""
        state = self._state()[:2]
        cached = self._cache.get(("read", key))
        if cached is not None and cached[0] == state:
            return cached[1]
        value = build()
        if len(self._cache) > 512:  # drafts of segments counted over a long session: start again
            self._cache.clear()
        self._cache[("read", key)] = (state, value)
        return value

    def forget_read(self, key) -> None:
        """Drop what :meth:`cached_read` keeps under ``key`` (it is built again at the next read)."""
        self._cache.pop(("read", key), None)

    def _load_config(self) -> WorkspaceConfig:
        objects = self.store.load_config()
        data: dict = {"connections": [], "sources": [], "datasets": [], "syncs": [], "segments": [], "dashboards": []}
        for kind, _name, spec in objects:
            if kind == "pipeline":
                data["pipeline"] = spec
            else:
                data[kind + "s"].append(spec)
        return WorkspaceConfig.model_validate(data)

    def connection(self, name: str):
        """The connection ``name`` with its secrets revealed, for a connector (never print it)."""
        conns = {c.name: c for c in self.config.connections}
        if name not in conns:
            raise ConfigError(f"unknown connection '{name}' (known: {', '.join(sorted(conns)) or 'none'})")
        return self.secrets.reveal(conns[name])

    def apply(self, config: WorkspaceConfig | str | Path | dict | None, *, prune: bool = False,
              expected_version: int | None = None) -> dict:
        """Replace the workspace configuration; return what changed per kind.

        Args:
            config: a WorkspaceConfig, a mapping, or the path of a YAML file.
            prune: accept a configuration that declares nothing (an empty or comment-only file),
                which removes every connection, source, dataset and sync; refused otherwise.
            expected_version: the version of the configuration this one was made from
                (:meth:`config_version`); refused with VersionConflict when another change came since.
        """
        if expected_version is not None:
            self._check_version(expected_version)
        config = self.validate_config(config, prune=prune)
        config = self.secrets.seal(config)
        changes = self._changes(config)
        if changes["added"] or changes["removed"] or changes["changed"]:
            with self.writing():
                self.store.save_config(self._objects(config), origin="apply")
        self.secrets.prune(config)
        return changes

    def validate_config(self, config: WorkspaceConfig | str | Path | dict | None, *,
                        prune: bool = False) -> WorkspaceConfig:
        """Check a configuration as :meth:`apply` does, without applying it; the checked configuration.

        Raises:
            ConfigError: every problem found, each with its line (YAML) and setting.
        """
        origin = str(config) if isinstance(config, (str, Path)) else None
        if isinstance(config, (str, Path)):
            config = load_yaml(config)
        elif isinstance(config, dict) or config is None:
            config = parse_config(config)
        self._check_write_keys(config)
        problems = column_problems(config, self.store) + dashboard_problems(config)
        if problems:
            raise ConfigError(problems)
        before = self.store.load_config()
        declared = config.connections or config.sources or config.datasets or config.syncs
        if before and not declared and not prune:
            raise ConfigError(
                f"the configuration declares no connection, source, dataset or sync (an empty or comment-only "
                f"file?); applying it would remove all {len(before)} object(s) of the workspace. Check the file, "
                "or pass --prune (prune=True) to remove them all", origin=origin)
        return config

    def parse_config_text(self, text: str) -> WorkspaceConfig:
        """A configuration given as YAML text, read like a file (problems with their line); relative
        local paths are taken from the workspace folder."""
        return load_yaml_text(text, self.path)

    def diff_config(self, config: WorkspaceConfig | str | Path | dict | None, *, prune: bool = False) -> dict:
        """What :meth:`apply` would change: ``added``, ``removed``, ``changed`` objects and ``text``,
        a unified diff of the YAML (secrets stay references: their values are never shown)."""
        import difflib

        config = self.secrets.seal(self.validate_config(config, prune=prune), store=False)
        changes = self._changes(config)
        before, after = self.export_config(), dump_yaml(config)
        changes["text"] = "".join(difflib.unified_diff(before.splitlines(keepends=True),
                                                       after.splitlines(keepends=True), "current", "proposed"))
        changes["version"] = self.config_version()
        return changes

    def config_version(self) -> int:
        """The version of the whole configuration: the id of its last applied change (0: none yet)."""
        return self.store.current_config_version()

    def config_objects(self) -> list[dict]:
        """Every configuration object with its kind, name, version (:func:`spec_version`), last change
        and definition (secrets as references, never their values)."""
        return [{"kind": o["kind"], "name": o["name"], "version": spec_version(o["spec"]),
                 "updated_at": o["updated_at"].isoformat() if hasattr(o["updated_at"], "isoformat") else o["updated_at"],
                 "spec": o["spec"]} for o in self.store.config_objects()]

    def config_object(self, kind: str, name: str) -> dict:
        """One configuration object (see :meth:`config_objects`).

        Raises:
            NotFoundError: no object of this kind has this name.
        """
        found = next((o for o in self.config_objects() if o["kind"] == kind and o["name"] == name), None)
        if found is None:
            known = ", ".join(sorted(o["name"] for o in self.config_objects() if o["kind"] == kind)) or "none"
            raise NotFoundError(f"unknown {kind} '{name}' ({KIND_PLURALS.get(kind, kind)}: {known})")
        return found

    def change_object(self, kind: str, name: str, spec: dict | None, *, expected_version: str | None = None,
                      create: bool = False, dry_run: bool = False) -> dict:
        """Create (``create``), change or remove (``spec`` None) one object of the configuration, then
        apply the whole configuration with every check of :meth:`apply`; returns what changed.

        Args:
            kind: connection, source, dataset, sync, segment, or pipeline (its settings).
            name: the object's name.
            spec: its definition as in the YAML.
            expected_version: the object's version the change was made from; VersionConflict when
                the object changed since.
            create: refuse (ConflictError) an object that exists already.
            dry_run: check everything, change nothing (returns the diff :meth:`diff_config` gives).
        """
        data = self.config.model_dump(mode="json", exclude_defaults=True, by_alias=True)
        if kind == "pipeline":  # one object: its settings (the pipeline's schedule, as_of)
            stored = next((s for k, _n, s in self.store.load_config() if k == "pipeline"), {})
            if expected_version is not None and spec_version(stored) != expected_version:
                raise VersionConflict(f"the pipeline settings changed since version {expected_version} (now "
                                      f"{spec_version(stored)}): read them again and send the new version")
            data["pipeline"] = spec or {}
        else:
            plural = KIND_PLURALS[kind]
            items = data.get(plural, [])
            position = next((i for i, o in enumerate(items) if o["name"] == name), None)
            if create:
                if position is not None:
                    raise ConflictError(f"{kind} '{name}' exists already: change it with PUT, or pick another name")
            else:
                current = self.config_object(kind, name)
                if expected_version is not None and current["version"] != expected_version:
                    raise VersionConflict(f"{kind} '{name}' changed since version {expected_version} (now "
                                          f"{current['version']}, {current['updated_at']}): read it again, redo "
                                          "the change and send it with the new version")
            if spec is not None:
                spec = {**spec, "name": name}
                if position is None:
                    items.append(spec)
                else:
                    items[position] = spec
            elif position is not None:
                items.pop(position)
            data[plural] = items
        # relative local paths are taken from the workspace folder, as for a configuration sent as text
        config = resolve_paths(parse_config(data, origin=f"{kind} '{name}'"), self.path)
        if dry_run:
            return self.diff_config(config, prune=True)
        return self.apply(config, prune=True)

    def check_config_version(self, expected: int) -> None:
        """Raise VersionConflict (409) unless ``expected`` is the configuration's current version."""
        self._check_version(expected)

    def _check_version(self, expected: int) -> None:
        current = self.config_version()
        if expected != current:
            raise VersionConflict(f"the configuration changed since version {expected} (now version {current}): "
                                  "read it again (GET /api/config), redo the change and send it with the new version")

    @staticmethod
    def _objects(config: WorkspaceConfig) -> list[tuple[str, str, dict]]:
        objects = []
        for kind, items in (("connection", config.connections), ("source", config.sources),
                            ("dataset", config.datasets), ("sync", config.syncs), ("segment", config.segments),
                            ("dashboard", config.dashboards)):
            for item in items:
                objects.append((kind, item.name, item.model_dump(mode="json", exclude_defaults=True, by_alias=True)))
        pipeline = config.pipeline.model_dump(mode="json", exclude_defaults=True, by_alias=True)
        if pipeline:
            objects.append(("pipeline", "pipeline", pipeline))
        return objects

    def _changes(self, sealed: WorkspaceConfig) -> dict:
        before = {(k, n): s for k, n, s in self.store.load_config()}
        after = {(k, n): s for k, n, s in self._objects(sealed)}
        return {
            "added": sorted(f"{k} {n}" for k, n in after.keys() - before.keys()),
            "removed": sorted(f"{k} {n}" for k, n in before.keys() - after.keys()),
            "changed": sorted(f"{k} {n}" for k, n in after.keys() & before.keys() if after[(k, n)] != before[(k, n)]),
        }

    def propose_config(self, folder: str | Path, *, apply: bool = False):
        """Propose a configuration for a folder of exports (see :mod:`tessera.setup`).

        Args:
            folder: the folder of exported files, read recursively.
            apply: write the proposal to ``workspace.yaml`` in the workspace folder and apply it.

        Returns:
            The :class:`tessera.setup.Proposal`, with its YAML, evidence and doubts.
        """
        proposal = propose_config(folder)
        if apply:
            target = self.path / "workspace.yaml"
            target.write_text(proposal.yaml, encoding="utf-8")
            self.apply(target)
        return proposal

    def _check_write_keys(self, config: WorkspaceConfig) -> None:
        """Two http connections with one write key could not tell whose events arrive."""
        seen: dict[str, str] = {}
        problems = []
        for i, conn in enumerate(config.connections):
            if conn.type != "http":
                continue
            try:
                key = self.secrets.reveal_value(conn.write_key, where=f"connections[{i}].write_key")
            except ConfigError:
                continue  # an environment variable not set here: checked where the server runs
            if key in seen:
                problems.append(f"connections[{i}] ({conn.name}).write_key: the same write key as connection "
                                f"'{seen[key]}'; give each http connection its own key")
            seen.setdefault(key, conn.name)
        if problems:
            raise ConfigError(problems)

    def export_config(self) -> str:
        """The configuration as YAML (round-trips through :meth:`apply`)."""
        return dump_yaml(self.config)

    # ------------------------------------------------------------------ runs
    def run(self, *, progress: Progress | None = None, import_files: bool = True,
            as_of: date | None = None, full: bool = False, for_reads: bool = False) -> RunResult:
        """Import new files, unify every dataset and publish the result at once.

        Args:
            progress: called with (step, label, done, total) as the run goes.
            import_files: import new files first (False: re-run on what is imported).
            as_of: the date scores, time windows and predictions are computed at (default: the
                workspace's ``pipeline.as_of`` setting, else today).
            full: rebuild and publish even when nothing changed since the last run (by default such
                a run keeps the published state as it is, see :meth:`Pipeline.inputs_digest`).
            for_reads: index the tables for reads and build the search indexes before they are
                published (a server's run: see :meth:`Pipeline.run`); ``RunResult.indexed`` lists them.

        Raises:
            RunError: the run failed; the previous published state is left in place.
        """
        config = self.config
        if not config.sources:
            raise ConfigError("the workspace has no source yet: declare some in YAML and run tessera apply")
        as_of = as_of or config.pipeline.as_of

        def work(pipeline: Pipeline, run_id: int):
            result = pipeline.run(run_id, import_files=import_files, as_of=as_of, full=full, for_reads=for_reads)
            counts = {"seconds": round(result.seconds, 3), "sources": result.sources, "datasets": result.datasets}
            if result.unchanged:
                counts["unchanged"] = True
            if result.warnings:  # the run's status stays "succeeded"; its counts say what to look at
                counts["warnings"], counts["refused_files"] = result.warnings, result.refused
            return result, counts

        return self._recorded_run("pipeline", None, config, progress, work)

    def _recorded_run(self, kind: str, target: str | None, config: WorkspaceConfig, progress, work):
        """Run ``work(pipeline, run_id) -> (result, counts)`` holding the write lock, recorded in
        the runs table as succeeded or failed (with the error)."""
        with self.writing():
            self.store.mark_stale_runs(psutil.pid_exists)
            run_id = self.store.start_run(kind, target, os.getpid())
            # pipeline.memory_limit and pipeline.time_limit bound the job (tessera.jobs.limits)
            limits = JobLimits(self.adapter, config.pipeline, progress, what=kind if kind == "import" else "run")
            pipeline = Pipeline(self.adapter, self.store, config, self.path / "archive", limits.progress,
                                reveal=self.secrets.reveal, salt=lambda: privacy_salt(self.secrets))
            try:
                with limits:
                    result, counts = work(pipeline, run_id)
            except BaseException as exc:
                # A job's progress callback carries its cancel flag (tessera.jobs.JobContext): an
                # engine statement interrupted by a cancel fails with the engine's error.
                cancel = getattr(progress, "cancelled", None)
                status = "cancelled" if cancel is not None and cancel.is_set() else "failed"
                reported = exc if status == "cancelled" else limits.explain(exc)
                text = str(reported) if isinstance(reported, TesseraError) else f"{type(exc).__name__}: {exc}"
                self.store.finish_run(run_id, status, error=text)
                if reported is not exc:
                    raise reported from exc
                raise
            self.store.finish_run(run_id, "succeeded", counts=counts)
            return result

    def import_sources(self, names: list[str] | None = None, *, progress: Progress | None = None,
                       retry_refused: bool = False) -> dict:
        """Import the new data of sources (all, or ``names``) into the raw layer, without a run.

        The next run unifies and publishes it. Returns the counts per source (with ``warnings``
        and ``files_refused`` for a source whose files were refused).

        Args:
            retry_refused: forget the files refused before, so they are read again.
        """
        config = self.config
        known = {s.name for s in config.sources}
        unknown = [n for n in names or [] if n not in known]
        if unknown:
            raise ConfigError(f"unknown source(s) {', '.join(unknown)} (known: {', '.join(sorted(known)) or 'none'})")
        def work(pipeline: Pipeline, _run_id: int):
            if retry_refused:
                from tessera.sources.importer import forget_refused

                for name in names or sorted(known):
                    forget_refused(self.store, name)
            pipeline.collect_garbage()
            totals, per_source = pipeline.import_sources(names)
            counts = {"sources": per_source, **totals}
            if pipeline.warnings:
                counts["warnings"], counts["refused_files"] = pipeline.warnings, pipeline.refused
            return per_source, counts

        return self._recorded_run("import", ",".join(names) if names else None, config, progress, work)

    def test_connection(self, name: str) -> list[str]:
        """Open connection ``name`` for real and check what its sources read.

        Returns the lines of what was verified; raises ConnectionFailed with a diagnosis
        (host unreachable, authentication refused, table or folder missing, permission denied).
        """
        conn = self.connection(name)
        sources = [s for s in self.config.sources if s.connection == name]
        return check_connection(conn, sources)

    def sync(self, names: list[str] | None = None, *, dry_run: bool = False) -> list:
        """Run syncs (all, or ``names``): send the dataset rows that changed to each destination.

        A failing destination does not stop the others: each result says what was inserted,
        updated, deleted and failed. ``dry_run`` computes the plan and sends nothing.
        """
        known = {s.name for s in self.config.syncs}
        unknown = [n for n in names or [] if n not in known]
        if unknown:
            raise ConfigError(f"unknown sync(s) {', '.join(unknown)} (known: {', '.join(sorted(known)) or 'none'})")
        return self._limited("sync", lambda: run_syncs(self, names, dry_run=dry_run))

    def _limited(self, what: str, work):
        """``work()`` bounded by pipeline.memory_limit and pipeline.time_limit (tessera.jobs.limits),
        like a run: past a limit it fails with a message naming the setting."""
        limits = JobLimits(self.adapter, self.config.pipeline, None, what=what)
        try:
            with limits:
                return work()
        except BaseException as exc:
            reported = limits.explain(exc)
            if reported is not exc:
                raise reported from exc
            raise

    def scheduler(self, *, interval: float = 15.0):
        """The scheduler of this workspace's cron schedules (see :mod:`tessera.schedule`)."""
        return Scheduler(self, interval=interval)

    def runs(self, limit: int = 20) -> list[dict]:
        return self.store.list_runs(limit)

    # ------------------------------------------------------------------ reading
    def datasets(self) -> list[str]:
        return [d.name for d in self.config.datasets]

    def table(self, name: str) -> ibis.Table:
        """A published dataset (or ``<dataset>__lineage``, ``__records``, ``__shared_values``, ``tessera_rejects``).

        Looked up once per publication (its schema is read from the engine): a table expression
        is immutable and runs on whichever connection executes it."""
        return self.cached_read(("table", name), lambda: self._published_table(name))

    def _published_table(self, name: str) -> ibis.Table:
        if self.adapter.published_target(name) is None:
            known = ", ".join(self.datasets()) or "none"
            raise NotFoundError(f"'{name}' is not published yet (datasets: {known}); run: tessera run")
        return self.adapter.table(name)

    def rejects(self, source: str | None = None) -> ibis.Table:
        t = self.table(REJECTS_VIEW)
        return t.filter(t.source == source) if source else t

    def describe(self, dataset: str) -> list[dict]:
        """The columns of a dataset: type, semantic field (declared or suggested) and merge rule."""
        ds = next((d for d in self.config.datasets if d.name == dataset), None)
        if ds is None:
            raise NotFoundError(f"unknown dataset '{dataset}' (datasets: {', '.join(self.datasets()) or 'none'})")
        declared = {c.name: c for c in ds.columns}
        stage_types = {}
        http = {c.name for c in self.config.connections if c.type == "http"}
        sources = {s.name: s for s in self.config.sources}
        for m in ds.mappings:
            src = sources.get(m.source)
            if src is not None and src.connection in http:
                stage_types[m.source] = {**EVENT_COLUMNS, **src.types}
            else:
                stage_types[m.source] = {**dict(self.store.get_source_schema(m.source)),
                                         **(dict(src.types) if src is not None else {})}
        # Once published, a column's type is the published one (a date rule, a declared type...).
        published = {}
        if self.adapter.published_target(dataset) is not None:
            from tessera.engine.types import type_name

            # (the table looked up once per publication: its schema of 60 columns costs 40 ms to read)
            published = {name: type_name(t) for name, t in self.table(dataset).schema().items()}
        out = []
        for spec in dataset_columns(ds, stage_types):
            spec.type = published.get(spec.name, spec.type)
            cfg = declared.get(spec.name)
            sources = {m.source: m.columns[spec.name] for m in ds.mappings if spec.name in m.columns}
            out.append({
                "column": spec.name, "type": spec.type, "semantic": spec.semantic,
                "semantic_from": "declared" if cfg and cfg.semantic else ("suggested" if spec.semantic else None),
                "merge": spec.merge if ds.deduplicate else None,
                "identity_key": any(k.column == spec.name for k in ds.identity_keys),
                "sources": sources,
            })
        for c in ds.computed:
            semantic = c.semantic or suggest_semantic(c.name)
            out.append({
                "column": c.name, "type": published.get(c.name) or c.type or "(expression)", "semantic": semantic,
                "semantic_from": "declared" if c.semantic else ("suggested" if semantic else None),
                "merge": None, "identity_key": False, "sources": {}, "computed": c.sql,
            })
        return out

    def source(self, name: str) -> dict:
        """One source of the catalog: its settings, columns with their inferred and declared types,
        record keys, relations, imported files and rejected rows.

        Raises:
            TesseraError: no source has this name.
        """
        src = self._source_config(name)
        conn = next((c for c in self.config.connections if c.name == src.connection), None)
        schema = self.store.get_source_schema(name)
        files = self.store.list_imported_files(name)
        rejects: list[dict] = []
        n_rejects = 0
        if self.adapter.published_target(REJECTS_VIEW) is not None:
            t = self.rejects(name)
            n_rejects = self.adapter.count(t)
            rejects = self.adapter.to_arrow(t.order_by(["file", "line"]).limit(10)).to_pylist()
        used_by = [d.name for d in self.config.datasets if any(m.source == name for m in d.mappings)]
        return {
            "name": name, "connection": src.connection, "connection_type": conn.type if conn else None,
            "what": src.pattern or src.table or src.query or "(collected events)",
            "record_keys": list(src.record_keys),
            "columns": [{"column": c, "inferred": t, "declared": src.types.get(c),
                         "normalize": [r.kind for r in src.normalize.get(c, [])]} for c, t in schema],
            "relations": [{"column": r.column, "to": r.to} for r in src.relations],
            "files": [{k: f[k] for k in ("name", "batch_id", "imported_at", "rows", "rejected", "status")}
                      for f in files],
            "rejects": rejects, "rejected_rows": n_rejects, "datasets": used_by,
            "on_duplicate_key": src.on_duplicate_key,
        }

    def preview_source(self, name: str, limit: int = 20) -> pa.Table:
        """The first ``limit`` staged rows of a source as the next run sees them: its imported data
        normalized, typed and checked (rejected rows left out), without running anything."""
        from tessera.sources.events import stage_events

        src = self._source_config(name)
        pipeline = Pipeline(self.adapter, self.store, self.config, self.path / "archive")
        if any(c.name == src.connection and c.type == "http" for c in self.config.connections):
            staged, _ = stage_events(self.adapter, src, extra_columns=[], extra_identifiers=[], tag="_tessera_preview_")
        else:
            staged, _, _ = pipeline._stage_batches(src, self.store.list_imported_files(name), None)
        staged = staged.order_by(["_tessera_batch", "_tessera_line"])
        return self.adapter.to_arrow(staged.limit(limit))

    def _source_config(self, name: str):
        src = next((s for s in self.config.sources if s.name == name), None)
        if src is None:
            known = ", ".join(s.name for s in self.config.sources) or "none"
            raise TesseraError(f"unknown source '{name}' (sources: {known})")
        return src

    def status(self) -> dict:
        """Published datasets with their row counts, and the last runs.

        Computed once per state of the store (configuration, publications, runs and their
        steps): a server answers it many times a second, a run changes it a few times."""
        state = self._state()
        cached = self._cache.get("status")
        if cached is None or cached[0] != state:
            pubs = []
            for name in self.datasets():
                latest = self.store.latest_publication(name)
                pubs.append({"dataset": name, "rows": latest["rows"] if latest else None,
                             "published_at": latest["published_at"] if latest else None,
                             "version": latest["version"] if latest else 0})
            cached = (state, {"path": str(self.path), "engine": self.adapter.name, "datasets": pubs,
                              "runs": self.runs(5)})
            self._cache["status"] = cached
        return dict(cached[1])  # callers add keys of their own (the server: its jobs)

    def profile(self, tessera_id: str, dataset: str | None = None, *, events: int = 50) -> dict:
        """The 360° profile of a unified record: attributes, source records, latest events
        (including events collected since the last run). See :mod:`tessera.profiles`."""
        return profile(self, tessera_id, dataset, events=events)

    def explain(self, tessera_id: str, dataset: str | None = None):
        """Why the source records of a unified record were merged (see :mod:`tessera.identity.explain`)."""
        dataset = dataset or next((d.name for d in self.config.datasets if d.deduplicate), None)
        if dataset is None:
            raise NotFoundError("no dataset has deduplication on: nothing to explain")
        ds = next((d for d in self.config.datasets if d.name == dataset), None)
        if ds is None:
            raise NotFoundError(f"unknown dataset '{dataset}' (datasets: {', '.join(self.datasets())})")
        exp = explain(self, ds, tessera_id)
        limited = {k.column: k.limit for k in ds.identity_keys if k.limit}
        if limited and exp.records:
            # Another unified record sharing a usable key value was kept apart by the key limits.
            unused = {(u["key"], u["value"]) for u in exp.unused}
            limits = ", ".join(f"{k}: at most {n}" for k, n in limited.items())
            lookups = self.cached_read(("explain_keys", ds.name), lambda: self._key_lookups(ds))
            for k in [k.column for k in ds.identity_keys]:
                stored = {str(r[k]) for r in exp.records if r.get(k) is not None
                          and str(r[k]).strip() and (k, str(r[k]).strip()) not in unused}
                if not stored or k not in lookups:
                    continue
                # One point read per value through the key's index (Workspace.index_for_reads), as
                # stored and trimmed: a scan of every record per key costs seconds at 1M records.
                found = {(r[TID], str(r["_v"]).strip()) for v in sorted(stored | {v.strip() for v in stored})
                         for r in self.adapter.fetch(lookups[k], v=v) if r[TID] != tessera_id}
                for other, value in sorted(found)[:20]:
                    exp.unused.append({"record": None, "key": k, "value": value,
                                       "reason": f"also on {other}, kept apart by the identity key limits ({limits})"})
        return exp

    def _key_lookups(self, ds) -> dict:
        """The records holding a value (``v``) of each identity key of ``ds``, compiled once per
        published state."""
        records = self.adapter.indexed_table(f"{ds.name}__records")
        out = {}
        for k in ds.identity_keys:
            if k.column not in records.columns:
                continue
            c = records[k.column]
            # A text column compared as it is, so that the engine can use its index.
            cond = c == param("v") if c.type().is_string() else c.cast("string") == param("v")
            out[k.column] = self.adapter.prepare(records.filter(cond).select(TID, _v=c).limit(1000))
        return out

    def build_search_index(self, dataset: str | None = None, *, missing_only: bool = False) -> list[str]:
        """Build the search index of each published deduplicated dataset (or of ``dataset``) from
        its published tables and publish it (a run publishes it itself: this is for a workspace
        published before it existed, or changed in the engine since). ``missing_only``: only
        where none is published. Returns the datasets indexed."""
        made = []
        with self.writing():
            pipeline = Pipeline(self.adapter, self.store, self.config, self.path / "archive")
            for ds in self.config.datasets:
                if not ds.deduplicate or (dataset is not None and ds.name != dataset):
                    continue
                data, records = (self.adapter.published_target(n) for n in (ds.name, f"{ds.name}__records"))
                view = search_view(ds.name)
                if data is None or (missing_only and self.adapter.published_target(view) is not None):
                    continue
                name = pipeline.build_search(ds.name, f"_tessera_search_{ds.name}_{uuid.uuid4().hex[:8]}",
                                             data, records)
                self.adapter.publish({view: name})
                made.append(ds.name)
            if made:
                pipeline.collect_garbage()  # the index it replaces
        return made

    def index_for_reads(self) -> list[str]:
        """Index the columns that reads find a customer by, on the engines that have indexes: the
        ``tessera_id`` of each deduplicated dataset and of its source records, the identity keys of
        its source records, the link column of the datasets linked to it (events, orders), and the
        segment members.
        Returns the ``view.column`` indexed now (the segment members by their table).

        The server does it after each run and at its start (a profile then reads a few index
        entries instead of scanning a million ids); an index is made once per published table (an
        incremental run patches the tables it keeps, and their indexes with them)."""
        from tessera.segments import MEMBERS

        config = self.config
        made = [f"{search_view(d)}.token" for d in self.build_search_index(missing_only=True)]
        with self.writing():
            published = {view: target for view, _ in read_index_columns(config)
                         if (target := self.adapter.published_target(view)) is not None}
            made += Pipeline(self.adapter, self.store, config, self.path / "archive").index_for_reads(published)
            if config.segments and self.adapter.exists(MEMBERS) and self.adapter.index(MEMBERS, TID):
                made.append(f"{MEMBERS}.{TID}")
        return made

    def collected_events(self, *, limit: int = 100, offset: int = 0, message_id: str | None = None,
                         user_id: str | None = None, rejected: bool = False) -> list[dict]:
        """The latest events loaded from the collection API (or the refused messages), newest first."""
        name = EVENTS_TABLE + ("_rejects" if rejected else "")
        if not self.adapter.exists(name):
            return []
        t = self.adapter.table(name)
        if message_id is not None and "message_id" in t.columns:
            t = t.filter(t.message_id == message_id)
        if user_id is not None and "user_id" in t.columns:
            t = t.filter(t.user_id == user_id)
        order = [ibis.desc(t.received_at), ibis.desc(t.log_offset)]
        if "message_id" in t.columns:
            order.append(t.message_id)
        t = t.order_by(order).limit(limit, offset=offset)
        return self.adapter.to_arrow(t).to_pylist()

    # ------------------------------------------------------------------ identity review and overrides
    def _deduplicated(self, dataset: str | None) -> DatasetConfig:
        """The named dataset, or the first deduplicated one."""
        dataset = dataset or next((d.name for d in self.config.datasets if d.deduplicate), None)
        if dataset is None:
            raise NotFoundError("no dataset has deduplication on: set deduplicate: true and identity_keys")
        ds = next((d for d in self.config.datasets if d.name == dataset), None)
        if ds is None:
            raise NotFoundError(f"unknown dataset '{dataset}' (datasets: {', '.join(self.datasets())})")
        return ds

    def identity_review(self, dataset: str | None = None, *, limit: int = 50) -> list[dict]:
        """The pairs of probabilistic matching waiting for a decision (see :mod:`tessera.identity.review`)."""
        from tessera.identity.review import review_queue

        return review_queue(self, self._deduplicated(dataset), limit=limit)

    def identity_decide(self, record_l: str, record_r: str, *, accept: bool, dataset: str | None = None,
                        user: str | None = None, note: str | None = None) -> dict:
        """Accept (merge from the next run on) or reject (never link) a pair of the review queue."""
        from tessera.identity.review import decide

        row = decide(self, self._deduplicated(dataset), record_l, record_r, accept=accept, user=user, note=note)
        self.store.audit("identity.review", actor=user, target=f"override {row['id']}",
                         details={"decision": "accept" if accept else "reject", "records": [record_l, record_r],
                                  "dataset": row["dataset"]})
        return row

    def identity_override(self, kind: str, records: list[str], *, dataset: str | None = None,
                          user: str | None = None, note: str | None = None) -> dict:
        """A manual rule kept across runs and re-imports: ``merge`` records, or ``split`` them off."""
        from tessera.identity.review import add_override

        row = add_override(self, self._deduplicated(dataset), kind, records, user=user, note=note)
        self.store.audit(f"identity.{kind}", actor=user, target=f"override {row['id']}",
                         details={"records": row["records"], "dataset": row["dataset"]})
        return row

    def identity_overrides(self, dataset: str | None = None) -> list[dict]:
        """The stored overrides and review decisions, oldest first."""
        return self.store.list_identity_overrides(dataset)

    def identity_remove_override(self, override_id: int, *, user: str | None = None) -> None:
        """Forget an override or a review decision (the next run no longer applies it)."""
        if not self.store.delete_identity_override(override_id):
            raise NotFoundError(f"no identity override {override_id}; list them with: tessera identity overrides")
        self.store.audit("identity.override_removed", actor=user, target=f"override {override_id}")

    def export_data(self, dataset: str, path: str | Path, fmt: str | None = None) -> Path:
        """Write a published dataset to CSV or Parquet; return the file written."""
        path = Path(path)
        fmt = (fmt or path.suffix.lstrip(".") or "csv").lower()
        if fmt not in ("csv", "parquet"):
            raise UsageError(f"unknown export format '{fmt}': use csv or parquet")
        t = self.export_table(dataset)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.adapter.export(t, str(path), fmt)
        return path

    def export_table(self, dataset: str) -> ibis.Table:
        """The rows an export of a published dataset holds (the file of :meth:`export_data`, the
        API's stream): the dataset's columns, and ``segments`` when segments are defined on it
        (the names of the segments each record belongs to, sorted, joined by ", ")."""
        t = self.table(dataset)
        if any(s.dataset == dataset for s in self.config.segments):
            t = self._with_segments_column(dataset, t)
        return t

    # ------------------------------------------------------------------ segments
    def _segment_context(self, as_of: date | None = None, config: WorkspaceConfig | None = None):
        """How segments read this workspace: published datasets, events datasets with the events
        collected since their publication, windows ending at ``as_of`` (default: the pipeline's
        ``as_of`` or today)."""
        from datetime import datetime, timezone

        from tessera.segments import Context
        from tessera.segments.related import is_events_dataset, with_pending_events

        config = config or self.config
        adapter = self.adapter

        def related(name: str, customer: str) -> ibis.Table:
            table = self.table(name)
            if not is_events_dataset(config, name):
                return table
            pub = self.store.latest_publication(name)
            since = datetime.fromisoformat(pub["published_at"]).astimezone(timezone.utc).replace(tzinfo=None) \
                if pub else None
            return with_pending_events(adapter, config, name, customer, table, since)

        return Context(adapter, config, as_of or config.pipeline.as_of or date.today(), self.table, related)

    def _segment_config(self, name: str, config: WorkspaceConfig | None = None):
        config = config or self.config
        seg = next((s for s in config.segments if s.name == name), None)
        if seg is None:
            known = ", ".join(s.name for s in config.segments) or "none"
            raise NotFoundError(f"unknown segment '{name}' (segments: {known}); declare it under segments: and "
                               "run tessera apply")
        return seg

    def segments(self) -> list[dict]:
        """The segments with their dataset, size, definition version and last refresh."""
        from tessera.segments import SIZES
        from tessera.segments.membership import VERSION_SCOPE

        config = self.config
        latest: dict[str, dict] = {}
        if config.segments:
            def sizes_query():
                if not self.adapter.exists(SIZES):
                    return None
                t = self.adapter.table(SIZES)
                ranked = t.mutate(_r=ibis.row_number().over(group_by="segment", order_by=ibis.desc("refreshed_at")))
                return self.adapter.prepare(ranked.filter(ranked._r == 0).drop("_r"))

            query = self.cached_read(("segment_sizes",), sizes_query)
            if query is None:  # no segment computed yet: looked for again at the next call
                self.forget_read(("segment_sizes",))
            for r in self.adapter.fetch(query) if query is not None else []:
                latest[r["segment"]] = r
        versions = self.store.list_states(VERSION_SCOPE)
        out = []
        for s in config.segments:
            last = latest.get(s.name, {})
            out.append({"name": s.name, "dataset": s.dataset, "description": s.description,
                        "conditions": len(s.conditions), "match": s.match, "size": last.get("size"),
                        "refreshed_at": last["refreshed_at"].isoformat() if last.get("refreshed_at") else None,
                        "version": (versions.get(s.name) or {}).get("version")})
        return out

    def segment(self, name: str) -> dict:
        """One segment: its definition (as in the YAML), the text of each condition and its size."""
        from tessera.segments import describe

        seg = self._segment_config(name)
        info = next(s for s in self.segments() if s["name"] == name)
        return {**info, "definition": seg.model_dump(mode="json", exclude_defaults=True, by_alias=True),
                "condition_texts": [describe(c) for c in seg.conditions]}

    def segment_count(self, definition, *, preview: int = 0, columns: list[str] | None = None,
                      _compiled: bool = False) -> dict:
        """The live count of a segment, saved or not, with the count after each top-level condition.

        Args:
            definition: a segment's name, or a draft (a SegmentConfig or a mapping as in the YAML;
                its ``name`` may be left out).
            preview: also ``preview`` of its records, as :meth:`segment_preview` gives them (the
                definition compiled once for both).
            columns: the columns of the preview.

        Returns:
            ``{"segment", "dataset", "records", "count", "match", "steps": [{"condition", "count"}]}``,
            and ``"preview": [...]`` when asked.
        """
        from pydantic import ValidationError

        from tessera.config.loader import segment_problems
        from tessera.config.models import SegmentConfig
        from tessera.segments.compile import compile_segment, prepare_count

        config = self.config
        if isinstance(definition, str):
            seg = self._segment_config(definition, config)
        else:
            if isinstance(definition, dict):
                try:
                    seg = SegmentConfig.model_validate({"name": "draft", **definition})
                except ValidationError as exc:
                    raise ConfigError([f"{'.'.join(str(p) for p in e['loc'])}: "
                                       f"{e['msg'].removeprefix('Value error, ')}" for e in exc.errors()],
                                      origin="segment draft") from None
            else:
                seg = definition
            others = [s for s in config.segments if s.name != seg.name]
            config = config.model_copy(update={"segments": [*others, seg]})
            problems = segment_problems(config, only=seg.name)
            if problems:
                raise ConfigError(problems, origin="segment draft")
        ctx = self._segment_context(config=config)
        if _compiled:
            return compile_segment(ctx, seg)
        # Compiled once per definition and state of the workspace: a marketer counts the same
        # draft again and again while changing another condition, and a saved segment's count
        # is asked by every page that shows it.
        key = ("segment_count", json.dumps(seg.model_dump(mode="json", by_alias=True), sort_keys=True, default=str),
               ctx.as_of.isoformat())
        wanted: list[str] = []
        if preview:
            dataset = self.table(seg.dataset)
            wanted = columns or [c for c in dataset.columns if not c.startswith("_")]
            unknown = [c for c in wanted if c not in dataset.columns]
            if unknown:
                raise UsageError(f"unknown column(s) {', '.join(unknown)} of dataset '{seg.dataset}'")

        def both():
            # the count and the preview of one compiled definition
            compiled = compile_segment(ctx, seg)
            shown = compiled.table.filter(compiled.where).select(*wanted).limit(int(preview))
            return prepare_count(self.adapter, compiled), self.adapter.prepare(shown)

        found = None
        try:
            if preview:
                plan, shown = self.cached_read((*key, "preview", int(preview), tuple(wanted)), both)
                rows = self.adapter.fetch(shown)  # never kept: the records of now
                if "tessera_id" in wanted:
                    rows.sort(key=lambda r: str(r["tessera_id"]))
                found = [{k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in r.items()} for r in rows]
            else:
                plan = self.cached_read(key, lambda: prepare_count(self.adapter, compile_segment(ctx, seg)))
            counted = self._run_count(seg, config, key, plan)
            return counted if found is None else {**counted, "preview": found}
        except Exception as exc:
            if (isinstance(exc, TesseraError) and not isinstance(exc, EngineError)) or self.adapter.stopped(exc):
                raise
            from tessera.segments.compile import explain_failure

            raise UsageError(f"Segment '{seg.name}': {explain_failure(ctx, seg, exc)}.") from exc

    def _run_count(self, seg, config, key, plan) -> dict:
        """Run a compiled count; the count itself is kept once per state of the workspace
        (configuration, publications, runs): over a million records with an aggregate of orders
        it costs seconds, and the same definition is counted by every view of its page."""
        from tessera.segments import event_segments
        from tessera.segments.compile import run_count

        if seg.name in event_segments(config):
            return run_count(self.adapter, plan)  # events collected since the last run count too
        state = self.store.read_state()
        kept = self._cache.get(("counted", key))
        if kept is None or kept[0] != state:
            kept = (state, run_count(self.adapter, plan))
            self._cache[("counted", key)] = kept
        return dict(kept[1])

    def segment_preview(self, definition, *, limit: int = 10, columns: list[str] | None = None) -> list[dict]:
        """``limit`` records for which a segment's definition holds now (saved or a draft, as for
        :meth:`segment_count`), with ``columns`` of its dataset (default: all but those starting
        with ``_``), sorted by ``tessera_id``: the first found, not the first of every member by
        id (a sort of a million records would cost more than the count)."""
        compiled = self.segment_count(definition, _compiled=True)
        t = compiled.table
        wanted = columns or [c for c in self.table(compiled.segment.dataset).columns if not c.startswith("_")]
        unknown = [c for c in wanted if c not in t.columns]
        if unknown:
            raise UsageError(f"unknown column(s) {', '.join(unknown)} of dataset '{compiled.segment.dataset}'")
        rows = self.adapter.to_arrow(t.filter(compiled.where).select(*wanted).limit(limit)).to_pylist()
        if "tessera_id" in wanted:
            rows.sort(key=lambda r: str(r["tessera_id"]))
        return [{k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in r.items()} for r in rows]

    def segment_members(self, name: str, *, limit: int = 100, columns: list[str] | None = None) -> list[dict]:
        """The current members of a segment (as of its last refresh) with their entry time and,
        beside them, ``columns`` of the dataset (default: every column not starting with ``_``)."""
        from tessera.segments import MEMBERS

        seg = self._segment_config(name)
        if not self.adapter.exists(MEMBERS):
            return []
        data = self.table(seg.dataset)
        wanted = columns or [c for c in data.columns if not c.startswith("_") and c != "tessera_id"]
        unknown = [c for c in wanted if c not in data.columns]
        if unknown:
            raise UsageError(f"unknown column(s) {', '.join(unknown)} of dataset '{seg.dataset}'")

        def queries():
            # The page of members first, then each member's columns by a point read through the
            # tessera_id index (Workspace.index_for_reads): a join would read every record.
            m = self.adapter.table(MEMBERS)
            page = m.filter(m.segment == param("seg")).select("tessera_id", "entered_at", "version")
            page = page.order_by([ibis.desc("entered_at"), "tessera_id"]).limit(int(limit))
            t = self.adapter.indexed_table(seg.dataset)
            key = t.tessera_id if t.tessera_id.type().is_string() else t.tessera_id.cast("string")
            row = t.filter(key == param("tid")).select(*wanted).limit(1)  # compared as it is: the index serves
            return self.adapter.prepare(page), self.adapter.prepare(row)

        page, row = self.cached_read(("segment_members", seg.dataset, tuple(wanted), int(limit)), queries)
        rows = []
        for member in self.adapter.fetch(page, seg=name):
            found = self.adapter.fetch(row, tid=member["tessera_id"])
            rows.append({**member, **(found[0] if found else dict.fromkeys(wanted))})
        return [{k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in r.items()} for r in rows]

    def segment_history(self, name: str, *, limit: int = 200) -> dict:
        """The size of a segment at each refresh, and its latest entries and exits (newest first)."""
        from tessera.segments import LOG, SIZES

        self._segment_config(name)
        iso = lambda rows: [{k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in r.items()}
                            for r in rows]  # noqa: E731
        def queries():
            out = {}
            if self.adapter.exists(SIZES):
                t = self.adapter.table(SIZES)
                out["sizes"] = self.adapter.prepare(t.filter(t.segment == param("seg")).order_by("refreshed_at"))
            if self.adapter.exists(LOG):
                t = self.adapter.table(LOG)
                when = ibis.coalesce(t.exited_at, t.entered_at)
                q = t.filter(t.segment == param("seg")).mutate(_at=when).order_by([ibis.desc("_at"), "tessera_id"])
                out["changes"] = self.adapter.prepare(q.limit(int(limit)).drop("_at"))
            return out

        prepared = self.cached_read(("segment_history", int(limit)), queries)
        if len(prepared) < 2:  # a table not made yet: looked for again at the next call
            self.forget_read(("segment_history", int(limit)))
        sizes = iso(self.adapter.fetch(prepared["sizes"], seg=name)) if "sizes" in prepared else []
        changes = iso(self.adapter.fetch(prepared["changes"], seg=name)) if "changes" in prepared else []
        return {"segment": name, "sizes": sizes, "changes": changes}

    def refresh_segments(self, names: list[str] | None = None, *, events_only: bool = False,
                         hold_lock: bool = True) -> list[dict]:
        """Recompute segment membership now (a run does it for every segment).

        Args:
            names: the segments to refresh (default: all).
            events_only: only the segments with a condition on an events dataset, with the events
                collected since the last run (what the event loader calls after each load).
            hold_lock: take the write lock (False: the caller holds it, like the event loader).
        """
        from dataclasses import asdict

        from tessera.segments import event_segments, refresh

        config = self.config
        for n in names or []:
            self._segment_config(n, config)
        todo = names if names is not None else [s.name for s in config.segments]
        if events_only:
            todo = [n for n in todo if n in event_segments(config)]
        if not todo:
            return []
        def work() -> list[dict]:
            return [asdict(r) for r in refresh(self._segment_context(config=config), self.store, todo)]

        if not hold_lock:
            return self._limited("segment refresh", work)
        with self.writing():
            return self._limited("segment refresh", work)

    def refresh_event_segments(self, *, hold_lock: bool = True) -> list[dict]:
        """Recompute the segments with event conditions, counting the events loaded since the last
        run; the event loader calls it after each load that appended events."""
        return self.refresh_segments(events_only=True, hold_lock=hold_lock)

    def save_segment(self, definition) -> dict:
        """Create or change one segment (a SegmentConfig or a mapping as in the YAML) and apply the
        configuration; returns what changed."""
        from tessera.config.models import SegmentConfig

        seg = definition if isinstance(definition, SegmentConfig) else SegmentConfig.model_validate(definition)
        config = self.config
        data = config.model_dump(mode="json", exclude_defaults=True, by_alias=True)
        segs = [s for s in data.get("segments", []) if s["name"] != seg.name]
        position = next((i for i, s in enumerate(config.segments) if s.name == seg.name), len(segs))
        segs.insert(position, seg.model_dump(mode="json", exclude_defaults=True, by_alias=True))
        data["segments"] = segs
        return self.apply(data)  # secrets stay references to the encrypted values

    def delete_segment(self, name: str) -> dict:
        """Remove a segment from the configuration (refused while a sync or a segment uses it)."""
        config = self.config
        self._segment_config(name, config)
        data = config.model_dump(mode="json", exclude_defaults=True, by_alias=True)
        data["segments"] = [s for s in data.get("segments", []) if s["name"] != name]
        return self.apply(data)

    def _with_segments_column(self, dataset: str, t: ibis.Table) -> ibis.Table:
        """``t`` with a ``segments`` column: the names of the segments each record belongs to,
        sorted and joined by ", " (empty when none)."""
        from tessera.segments import MEMBERS

        if not self.adapter.exists(MEMBERS) or "tessera_id" not in t.columns or "segments" in t.columns:
            return t
        names = [s.name for s in self.config.segments if s.dataset == dataset]
        m = self.adapter.table(MEMBERS)
        m = m.filter(m.segment.isin(names))
        per = m.group_by(_tessera_sid=m.tessera_id).agg(
            segments=m.segment.collect(distinct=True).sort().join(", "))
        out = t.left_join(per, t.tessera_id.cast("string") == per._tessera_sid).drop("_tessera_sid")
        return out.mutate(segments=out.segments.fill_null(""))

    def segment_memberships(self, tessera_id: str) -> list[dict]:
        """The segments a record belongs to, with the time it entered each."""
        from tessera.segments import MEMBERS

        if not self.config.segments or not self.adapter.exists(MEMBERS):
            return []
        m = self.adapter.table(MEMBERS)
        rows = self.adapter.to_arrow(m.filter(m.tessera_id == tessera_id).order_by("segment")).to_pylist()
        return [{"segment": r["segment"], "entered_at": r["entered_at"].isoformat() if r["entered_at"] else None,
                 "version": r["version"]} for r in rows]

    # ------------------------------------------------------------------ dashboards
    def analytics(self):
        """The dashboards of this workspace (:class:`tessera.analytics.Analytics`): the seven
        defaults and the configuration's own, run on the last publication."""
        from tessera.analytics import Analytics, Source
        from tessera.segments import MEMBERS

        config = self.config
        ctx = self._segment_context(config=config)
        adapter = self.adapter
        tables: dict = {}  # one schema read per dataset for the whole request

        def table(name: str) -> ibis.Table:
            if name not in tables:
                tables[name] = self.table(name)
            return tables[name]

        def members() -> ibis.Table | None:
            if MEMBERS not in tables:
                tables[MEMBERS] = adapter.table(MEMBERS) if adapter.exists(MEMBERS) else None
            return tables[MEMBERS]

        return Analytics(Source(adapter, config, ctx.as_of, table, ctx, members), str(self.path), self.store)

    def prepare_dashboards(self, progress=None, *, again: bool = False) -> dict | None:
        """Compute the dashboards of the current publications ahead of their first viewer (the
        server does it after each run); None when there was nothing to do (see
        :meth:`tessera.analytics.dashboards.Analytics.prepare`)."""
        return self.analytics().prepare(progress, again=again)

    def dashboards_need_preparing(self) -> bool:
        """Whether :meth:`prepare_dashboards` has work (a large workspace, results of older publications)."""
        return self.analytics().needs_preparing()

    def dashboards(self) -> list[dict]:
        """The dashboards: name, title, default or custom, number of questions, filters."""
        return self.analytics().list()

    def dashboard(self, name: str, filters: dict | None = None, *, later: bool = False) -> dict:
        """A dashboard with every question's result (see :meth:`run_question`) under ``filters``
        (``period``, ``store``, ``channel``, ``segment``); a question that cannot run on this
        workspace says why in ``unavailable``. ``later``: the ready-made analyses are left for
        :meth:`run_question` (marked ``later``)."""
        from tessera.analytics import parse_filters

        a = self.analytics()
        return a.run_dashboard(name, parse_filters(filters, a.src.as_of), later=later)

    def run_question(self, question, filters: dict | None = None) -> dict:
        """One question, saved (``(dashboard, name)``) or a draft (a mapping as in the YAML):
        ``{"columns", "rows", "spec", "filters": {"applied", "ignored"}, ...}``."""
        from tessera.analytics import parse_filters

        a = self.analytics()
        return a.run(self._question(a, question), parse_filters(filters, a.src.as_of))

    def question_csv(self, question, filters: dict | None = None):
        """Every row of a question's result as CSV bytes, streamed (no row cap)."""
        from tessera.analytics import parse_filters

        a = self.analytics()
        return a.csv(self._question(a, question), parse_filters(filters, a.src.as_of))

    def question_picture(self, question, fmt: str = "png", filters: dict | None = None) -> bytes:
        """A question's chart as PNG or SVG, drawn on the server."""
        from tessera.analytics import parse_filters

        a = self.analytics()
        return a.picture(self._question(a, question), fmt, parse_filters(filters, a.src.as_of))

    def dashboard_filter_values(self) -> dict:
        """The choices of the dashboards' filters (stores, channels, segments, the orders' period)."""
        return self.analytics().filter_values()

    @staticmethod
    def _question(a, question):
        from tessera.analytics import validate_question

        if isinstance(question, tuple):
            q, lacking = a.question(*question)
            if lacking:
                from tessera.analytics import Unavailable

                raise Unavailable(f"dashboard '{question[0]}' question '{question[1]}': {lacking}")
            return q
        return question if not isinstance(question, dict) else validate_question(question)

    def save_dashboard(self, definition, *, expected_version: str | None = None) -> dict:
        """Create or change one custom dashboard (a DashboardConfig or a mapping as in the YAML) and
        apply the configuration; returns what changed.

        Args:
            definition: the dashboard as in the YAML.
            expected_version: the dashboard's version the change was made from; VersionConflict when
                it changed since (or NotFoundError when it was deleted).
        """
        from tessera.config.models import DashboardConfig

        d = definition if isinstance(definition, DashboardConfig) else DashboardConfig.model_validate(definition)
        config = self.config
        if expected_version is not None:
            self._check_dashboard_version(config, d.name, expected_version)
        data = config.model_dump(mode="json", exclude_defaults=True, by_alias=True)
        items = [x for x in data.get("dashboards", []) if x["name"] != d.name]
        position = next((i for i, x in enumerate(config.dashboards) if x.name == d.name), len(items))
        items.insert(position, d.model_dump(mode="json", exclude_defaults=True, by_alias=True))
        data["dashboards"] = items
        return self.apply(data)

    def delete_dashboard(self, name: str, *, expected_version: str | None = None) -> dict:
        """Remove a custom dashboard from the configuration (the defaults cannot be removed);
        ``expected_version`` as for :meth:`save_dashboard`."""
        from tessera.analytics import NAMES

        config = self.config
        if name in NAMES:
            raise UsageError(f"'{name}' is a default dashboard; it cannot be deleted")
        if not any(d.name == name for d in config.dashboards):
            raise NotFoundError(f"unknown dashboard '{name}' (custom dashboards: "
                                f"{', '.join(d.name for d in config.dashboards) or 'none'})")
        if expected_version is not None:
            self._check_dashboard_version(config, name, expected_version)
        data = config.model_dump(mode="json", exclude_defaults=True, by_alias=True)
        data["dashboards"] = [x for x in data.get("dashboards", []) if x["name"] != name]
        return self.apply(data)

    @staticmethod
    def _check_dashboard_version(config: WorkspaceConfig, name: str, expected: str) -> None:
        current = next((d for d in config.dashboards if d.name == name), None)
        if current is None:
            raise NotFoundError(f"dashboard '{name}' was deleted since version {expected}: create it again "
                                "(POST /api/dashboards) if you still want it")
        version = spec_version(current.model_dump(mode="json", exclude_defaults=True, by_alias=True))
        if version != expected:
            raise VersionConflict(f"dashboard '{name}' changed since version {expected} (now {version}): read it "
                                  "again, redo the change and send it with the new version")

    # ------------------------------------------------------------------ privacy
    def erase(self, customer: str, *, dataset: str | None = None, actor: str | None = None,
              event_log=None) -> dict:
        """Erase a customer everywhere, now (see :mod:`tessera.privacy.erase`); the receipt.

        Args:
            customer: a ``tessera_id``, or an identity value (e-mail, phone, customer id...).
            dataset: the customer dataset (default: every deduplicated dataset is searched).
            actor: who asked, for the audit log.
            event_log: called with the erasure to remove the customer's messages from the event
                log (the collector's :func:`tessera.collect.scrub.scrub_log`), when it is given.

        Returns:
            The receipt (also in the audit log, action ``privacy.erase``): the customer's ids,
            the identifiers by kind, and each place with the rows removed.
        """
        def syncs(job) -> None:
            if job.dataset and job.tessera_ids:
                for marked in mark_erased(self, job.dataset, job.tessera_ids):
                    job.note(f"sync {marked['sync']} (a delete is sent at its next run)", marked["keys"])

        from tessera.analytics.dashboards import forget_results

        with self.writing():
            try:
                return erase_customer(self, customer, dataset=dataset, actor=actor, before_delete=[syncs],
                                      after_delete=[event_log] if event_log is not None else [])
            finally:
                # cached and prepared charts may have counted the customer, the order facts hold them
                forget_results(self.store, self.adapter)

    def export_customer(self, customer: str, path: str | Path | None = None, fmt: str | None = None, *,
                        dataset: str | None = None, actor: str | None = None) -> dict:
        """Everything held on a customer (see :mod:`tessera.privacy.export`), audited.

        Args:
            customer: a ``tessera_id`` or an identity value.
            path: write the export there: ``.json``, or ``.zip`` (one CSV file per section).
            fmt: ``json`` or ``zip`` (default: from the suffix of ``path``).

        Returns:
            The export document (with ``file`` when it was written).
        """
        doc = privacy_export.collect(self, customer, dataset=dataset,
                                     syncs=lambda ds, ids: customer_state(self, ds, ids))
        written = privacy_export.write(doc, path, fmt) if path is not None else None
        subject = f"customer {', '.join(doc['tessera_ids'])}" if doc["tessera_ids"] else "an identifier"
        request = self.store.add_privacy_request("export", subject, actor)
        details = {"request": request, "sections": privacy_export.counts(doc),
                   "file": written.name if written else None}
        self.store.finish_privacy_request(request, "done", details)
        self.store.audit("privacy.export", actor=actor, target=subject, details=details)
        if written is not None:
            doc["file"] = str(written)
        return doc

    def suppressions(self, limit: int = 100) -> dict:
        """The suppression list: its size per kind and the latest entries (hash prefixes only)."""
        return suppression_listing(self.adapter, limit)

    def privacy_requests(self, limit: int = 100) -> list[dict]:
        """The erase and export requests with their receipts, newest first."""
        return self.store.list_privacy_requests(limit)

    def consent_history(self, tessera_id: str, dataset: str | None = None) -> dict:
        """A customer's current consent per channel and its history (see :mod:`tessera.privacy.consent`)."""
        dataset = dataset or next((d.name for d in self.config.datasets if d.deduplicate), None)
        if dataset is None:
            return {"current": {}, "history": []}
        return consent_history.history(self.adapter, dataset, tessera_id)

    def consent_query(self, dataset: str, tessera_id):
        """The query of a customer's consent changes, newest first, for :meth:`consent_of_rows`
        (``tessera_id`` may be a bound parameter); None while the workspace has no consent history."""
        return consent_history.history_query(self.adapter, dataset, tessera_id)

    @staticmethod
    def consent_of_rows(rows: list[dict]) -> dict:
        """:meth:`consent_history`'s answer from the rows of :meth:`consent_query`."""
        return consent_history.history_of_rows(rows)

    def consent_granted(self, dataset: str, channel: str):
        """The ``tessera_id`` of the customers whose current consent for ``channel`` is granted, or
        None when the history holds nothing for it (syncs then use the opt-in column)."""
        return consent_history.granted(self.adapter, dataset, channel)
