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
import json
import os
import time
from datetime import date
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import ibis
import psutil

from tessera.config.events import EVENT_COLUMNS
from tessera.config.loader import dump_yaml, load_yaml, parse_config
from tessera.config.models import WorkspaceConfig
from tessera.connectors import check_connection
from tessera.datasets.build import dataset_columns
from tessera.engine.base import EngineAdapter
from tessera.engine.connect import open_adapter
from tessera.errors import ConfigError, TesseraError, WorkspaceError
from tessera.identity.explain import explain
from tessera.normalize.semantic import suggest_semantic
from tessera.pipeline import REJECTS_VIEW, Pipeline, Progress, RunResult
from tessera.profiles import profile
from tessera.schedule import Scheduler
from tessera.secrets import SecretBox, create_key_file
from tessera.store import MetadataStore
from tessera.syncs.runner import run_syncs

SETTINGS = "workspace.json"


def _engine_setting(settings: dict) -> str:
    return os.environ.get("TESSERA_WAREHOUSE") or settings.get("warehouse") or "duckdb"


class Workspace:
    """A Tessera workspace: configuration, runs and published datasets."""

    def __init__(self, path: Path, settings: dict):
        self.path = path
        self.settings = settings
        url = os.environ.get("TESSERA_METADATA_URL") or settings.get("metadata_url") or \
            f"sqlite:///{path / 'metadata.sqlite'}"
        self.store = MetadataStore(url)
        self.store.upgrade()
        self._adapter: EngineAdapter | None = None
        self._lock_fh = None
        self.secrets = SecretBox(path, self.store)

    # ------------------------------------------------------------------ lifecycle
    @classmethod
    def init(cls, path: str | Path, *, warehouse: str | None = None, metadata_url: str | None = None) -> "Workspace":
        """Create a workspace folder (idempotent on an existing workspace).

        Args:
            path: the folder to create.
            warehouse: ``duckdb`` (default), ``spark`` or a PostgreSQL URL.
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
        settings = {"version": 1, "warehouse": warehouse or "duckdb"}
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
        if self._adapter is not None:
            self._adapter.close()
            self._adapter = None
        self.store.close()

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
                raise WorkspaceError(
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
        objects = self.store.load_config()
        data: dict = {"connections": [], "sources": [], "datasets": [], "syncs": []}
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

    def apply(self, config: WorkspaceConfig | str | Path | dict) -> dict:
        """Replace the workspace configuration; return what changed per kind.

        Args:
            config: a WorkspaceConfig, a mapping, or the path of a YAML file.
        """
        if isinstance(config, (str, Path)):
            config = load_yaml(config)
        elif isinstance(config, dict):
            config = parse_config(config)
        self._check_write_keys(config)
        config = self.secrets.seal(config)
        before = {(k, n): s for k, n, s in self.store.load_config()}
        objects = []
        for kind, items in (("connection", config.connections), ("source", config.sources),
                            ("dataset", config.datasets), ("sync", config.syncs)):
            for item in items:
                objects.append((kind, item.name, item.model_dump(mode="json", exclude_defaults=True, by_alias=True)))
        pipeline = config.pipeline.model_dump(mode="json", exclude_defaults=True, by_alias=True)
        if pipeline:
            objects.append(("pipeline", "pipeline", pipeline))
        after = {(k, n): s for k, n, s in objects}
        changes = {
            "added": sorted(f"{k} {n}" for k, n in after.keys() - before.keys()),
            "removed": sorted(f"{k} {n}" for k, n in before.keys() - after.keys()),
            "changed": sorted(f"{k} {n}" for k, n in after.keys() & before.keys() if after[(k, n)] != before[(k, n)]),
        }
        if changes["added"] or changes["removed"] or changes["changed"]:
            with self.writing():
                self.store.save_config(objects, origin="apply")
        self.secrets.prune(config)
        return changes

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
            as_of: date | None = None) -> RunResult:
        """Import new files, unify every dataset and publish the result at once.

        Args:
            progress: called with (step, label, done, total) as the run goes.
            import_files: import new files first (False: re-run on what is imported).
            as_of: the date scores and time windows are computed at (default: today).

        Raises:
            RunError: the run failed; the previous published state is left in place.
        """
        config = self.config
        if not config.sources:
            raise ConfigError("the workspace has no source yet: declare some in YAML and run tessera apply")
        def work(pipeline: Pipeline, run_id: int):
            result = pipeline.run(run_id, import_files=import_files, as_of=as_of)
            counts = {"seconds": round(result.seconds, 3), "sources": result.sources, "datasets": result.datasets}
            return result, counts

        return self._recorded_run("pipeline", None, config, progress, work)

    def _recorded_run(self, kind: str, target: str | None, config: WorkspaceConfig, progress, work):
        """Run ``work(pipeline, run_id) -> (result, counts)`` holding the write lock, recorded in
        the runs table as succeeded or failed (with the error)."""
        with self.writing():
            self.store.mark_stale_runs(psutil.pid_exists)
            run_id = self.store.start_run(kind, target, os.getpid())
            pipeline = Pipeline(self.adapter, self.store, config, self.path / "archive", progress,
                                reveal=self.secrets.reveal)
            try:
                result, counts = work(pipeline, run_id)
            except TesseraError as exc:
                self.store.finish_run(run_id, "failed", error=str(exc))
                raise
            except BaseException as exc:
                self.store.finish_run(run_id, "failed", error=f"{type(exc).__name__}: {exc}")
                raise
            self.store.finish_run(run_id, "succeeded", counts=counts)
            return result

    def import_sources(self, names: list[str] | None = None, *, progress: Progress | None = None) -> dict:
        """Import the new data of sources (all, or ``names``) into the raw layer, without a run.

        The next run unifies and publishes it. Returns the counts per source.
        """
        config = self.config
        known = {s.name for s in config.sources}
        unknown = [n for n in names or [] if n not in known]
        if unknown:
            raise ConfigError(f"unknown source(s) {', '.join(unknown)} (known: {', '.join(sorted(known)) or 'none'})")
        def work(pipeline: Pipeline, _run_id: int):
            pipeline.collect_garbage()
            totals, per_source = pipeline.import_sources(names)
            return per_source, {"sources": per_source, **totals}

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
        return run_syncs(self, names, dry_run=dry_run)

    def scheduler(self, *, interval: float = 15.0):
        """The scheduler of this workspace's cron schedules (see :mod:`tessera.schedule`)."""
        return Scheduler(self, interval=interval)

    def runs(self, limit: int = 20) -> list[dict]:
        return self.store.list_runs(limit)

    # ------------------------------------------------------------------ reading
    def datasets(self) -> list[str]:
        return [d.name for d in self.config.datasets]

    def table(self, name: str) -> ibis.Table:
        """A published dataset (or ``<dataset>__lineage``, ``__records``, ``__shared_values``, ``tessera_rejects``)."""
        if self.adapter.published_target(name) is None:
            known = ", ".join(self.datasets()) or "none"
            raise TesseraError(f"'{name}' is not published yet (datasets: {known}); run: tessera run")
        return self.adapter.table(name)

    def rejects(self, source: str | None = None) -> ibis.Table:
        t = self.table(REJECTS_VIEW)
        return t.filter(t.source == source) if source else t

    def describe(self, dataset: str) -> list[dict]:
        """The columns of a dataset: type, semantic field (declared or suggested) and merge rule."""
        ds = next((d for d in self.config.datasets if d.name == dataset), None)
        if ds is None:
            raise TesseraError(f"unknown dataset '{dataset}' (datasets: {', '.join(self.datasets()) or 'none'})")
        declared = {c.name: c for c in ds.columns}
        stage_types = {}
        http = {c.name for c in self.config.connections if c.type == "http"}
        sources = {s.name: s for s in self.config.sources}
        for m in ds.mappings:
            src = sources.get(m.source)
            if src is not None and src.connection in http:
                stage_types[m.source] = {**EVENT_COLUMNS, **src.types}
            else:
                stage_types[m.source] = dict(self.store.get_source_schema(m.source))
        out = []
        for spec in dataset_columns(ds, stage_types):
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
                "column": c.name, "type": c.type or "(expression)", "semantic": semantic,
                "semantic_from": "declared" if c.semantic else ("suggested" if semantic else None),
                "merge": None, "identity_key": False, "sources": {}, "computed": c.sql,
            })
        return out

    def status(self) -> dict:
        """Published datasets with their row counts, and the last runs."""
        pubs = []
        for name in self.datasets():
            latest = self.store.latest_publication(name)
            pubs.append({"dataset": name, "rows": latest["rows"] if latest else None,
                         "published_at": latest["published_at"] if latest else None,
                         "version": latest["version"] if latest else 0})
        return {"path": str(self.path), "engine": self.adapter.name, "datasets": pubs, "runs": self.runs(5)}

    def profile(self, tessera_id: str, dataset: str | None = None, *, events: int = 50) -> dict:
        """The 360° profile of a unified record: attributes, source records, latest events
        (including events collected since the last run). See :mod:`tessera.profiles`."""
        return profile(self, tessera_id, dataset, events=events)

    def explain(self, tessera_id: str, dataset: str | None = None):
        """Why the source records of a unified record were merged (see :mod:`tessera.identity.explain`)."""
        dataset = dataset or next((d.name for d in self.config.datasets if d.deduplicate), None)
        if dataset is None:
            raise TesseraError("no dataset has deduplication on: nothing to explain")
        ds = next((d for d in self.config.datasets if d.name == dataset), None)
        if ds is None:
            raise TesseraError(f"unknown dataset '{dataset}' (datasets: {', '.join(self.datasets())})")
        return explain(self, ds, tessera_id)

    def export_data(self, dataset: str, path: str | Path, fmt: str | None = None) -> Path:
        """Write a published dataset to CSV or Parquet; return the file written."""
        path = Path(path)
        fmt = (fmt or path.suffix.lstrip(".") or "csv").lower()
        if fmt not in ("csv", "parquet"):
            raise TesseraError(f"unknown export format '{fmt}': use csv or parquet")
        t = self.table(dataset)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.adapter.export(t, str(path), fmt)
        return path

