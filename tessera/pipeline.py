"""One run of the pipeline: import, stage, unify, publish.

Every table a run builds carries the run's prefix (``_tessera_r<id>_``) and stays invisible
until the publication step re-points the published names at them, all at once. A run that
fails or is killed leaves the previous publication in place; its work tables are dropped by
the next run.
"""

from __future__ import annotations

import hashlib
import json
import logging
import queue
import re
import time
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import date
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import ibis
import ibis.expr.operations as ops

from tessera.config.environment import rows_threshold
from tessera.config.models import DATABASE_CONNECTIONS, WorkspaceConfig
from tessera.datasets.build import (
    DatasetBuilder,
    dataset_dependencies,
    dataset_order,
    enriched,
    expression_failed,
    relation_target,
    value_error,
)
from tessera.datasets.incremental import BUILT_STATE, Previous
from tessera.datasets.search import SEARCH_TABLE, TID, create_search_table, search_view
from tessera.engine.base import Compiled, EngineAdapter, Patch, param
from tessera.engine.types import type_name
from tessera.enrich.runner import Enricher
from tessera.errors import RunError, TesseraError
from tessera.identity.review import overrides_by_dataset
from tessera.privacy import consent as consent_history
from tessera.privacy.suppression import has_suppressions, purge_batch
from tessera.segments.related import event_links, links_to
from tessera.sources.database import import_database_source
from tessera.sources.events import EVENTS_TABLE, stage_events
from tessera.sources.importer import PARSE_REJECTS, REFUSED_STATE, import_source, raw_table
from tessera.sources.items import derive_items
from tessera.sources.staging import Batch, latest_of, nested_path, stage, typed_rows, union_all

REJECTS_VIEW = "tessera_rejects"
RUN_TABLE = re.compile(r"^_tessera_r(\d+)_")
# the staged rows and rejects of one imported batch, kept from run to run (see _stage_batches)
STAGED_TABLE = re.compile(r"^_tessera_staged(rej)?_(.+)_(\d+)_([0-9a-f]{12})$")
RAW_TABLE = re.compile(r"^_tessera_raw_(.+)_(\d+)$")

Progress = Callable[[str, str, int, int], None]  # (step, label, done, total)
# metadata store state: the digest of the last published run's inputs, its publication and counts
INPUTS_STATE = ("pipeline_inputs", "last")
# bumped when a change of the pipeline's code changes what a run publishes from the same inputs
INPUTS_FORMAT = 1


@dataclass
class RunResult:
    run_id: int
    status: str
    steps: list[dict] = field(default_factory=list)
    sources: dict[str, dict] = field(default_factory=dict)
    datasets: dict[str, dict] = field(default_factory=dict)
    seconds: float = 0.0
    # what the user should know though the run succeeded: refused files, links left out...
    warnings: list[str] = field(default_factory=list)
    refused: list[dict] = field(default_factory=list)  # {"source", "file", "reason", "kept"}
    unchanged: bool = False  # nothing new since the last run: its publication was kept as it is
    indexed: list[str] = field(default_factory=list)  # view.column indexed for reads before publication


log = logging.getLogger("tessera.pipeline")

SEARCH_RUN_ROWS = 200_000
SEARCH_RUN_VARIABLE = "TESSERA_SEARCH_INDEX_RUN_ROWS"
#: a source's typed rows over a placeholder batch (the expression and its SQL text), by what staging
#: reads besides the batch and the batch table's columns: built and compiled once a process, the
#: text filled for each new batch (a run after a new file would build and compile the same large
#: normalization query again)
_TYPED_SQL: dict[tuple, tuple[ibis.Table, str]] = {}
_RAW_PLACEHOLDER = "_tessera_raw_placeholder"


class _Beside:
    """Tables of a run that nothing reads for a while (its rejects and search indexes until the
    publication, the consent history not at all): on an engine that runs queries side by side
    (:meth:`EngineAdapter.side_by_side`), written by threads of their own while the run goes on,
    waited for where they are read. Else each is written where the run always wrote it
    (:meth:`now` at once, :meth:`early` not until asked)."""

    def __init__(self, workers: int):
        self.workers = workers
        # (the run's own thread is one of the queries at once)
        self.pool = ThreadPoolExecutor(workers - 1, thread_name_prefix="tessera-beside") if workers > 1 else None
        self.jobs: dict[str, object] = {}

    def now(self, key: str, fn: Callable) -> None:
        """``fn`` started beside the run, or called now."""
        if self.pool:
            self.jobs[key] = self.pool.submit(fn)
        else:
            self.jobs[key] = Future()
            self.jobs[key].set_result(fn())

    def early(self, key: str, fn: Callable) -> None:
        """``fn`` started beside the run, or left to :meth:`result`."""
        if self.pool:
            self.jobs[key] = self.pool.submit(fn)

    def result(self, key: str, fn: Callable):
        """What ``key``'s function returned (waited for; its exception raised here), or ``fn()``."""
        job = self.jobs.pop(key, None)
        return fn() if job is None else job.result()

    def close(self) -> None:
        """Every job waited for (a failed run leaves no query running); their failures are the
        run's to report where they are read."""
        if self.pool:
            self.pool.shutdown(wait=True)
        self.jobs.clear()


def _staged_names(source: str, batch: int, digest: str) -> tuple[str, str]:
    """The kept staged rows and rejects of batch ``batch`` of ``source`` staged under ``digest``."""
    return f"_tessera_staged_{source}_{batch}_{digest}", f"_tessera_stagedrej_{source}_{batch}_{digest}"


def search_index_run_rows() -> int:
    """The size of a customer dataset from which a run leaves its search index to the server
    (``TESSERA_SEARCH_INDEX_RUN_ROWS``, default 200,000; 0: never built by a run)."""
    return rows_threshold(SEARCH_RUN_VARIABLE, SEARCH_RUN_ROWS, "the server builds every search index after a run")


def read_index_columns(config: WorkspaceConfig) -> list[tuple[str, str]]:
    """(view, column) that reads find a customer by: the ``tessera_id`` of each deduplicated dataset
    and of its source records, the identity keys of its source records (``/api/customers``), the
    link column of the datasets linked to it (events; orders, tickets on the 360 page)."""
    wanted: list[tuple[str, str]] = []
    for ds in config.datasets:
        if not ds.deduplicate:
            continue
        wanted += [(ds.name, TID), (f"{ds.name}__records", TID)]
        wanted += [(f"{ds.name}__records", k.column) for k in ds.identity_keys]
        wanted += [(events_ds, link) for events_ds, link, _pairs, _conn in event_links(config, ds.name)]
        wanted += [(d.name, link) for d in config.datasets
                   if d.name != ds.name and (link := links_to(config, d.name, ds.name))]
    return wanted


class Pipeline:
    def __init__(self, adapter: EngineAdapter, store, config: WorkspaceConfig, archive_dir: Path,
                 progress: Progress | None = None, reveal: Callable | None = None,
                 salt: Callable[[], str | None] | None = None):
        self.adapter = adapter
        self.store = store
        self.config = config
        self.archive_dir = archive_dir
        self.progress = progress or (lambda *a: None)
        self.reveal = reveal or (lambda conn: conn)  # the connection with its secrets, for connectors
        self.salt = salt or (lambda: None)  # the privacy salt (tessera.privacy.suppression), from the secrets
        self.warnings: list[str] = []
        self.refused: list[dict] = []
        self.kept_stages: set[str] = set()  # the staged batches this run used
        self.views: list[str] = []  # the views this run made to read its work (dropped before it ends)
        # per source read from kept batches: batch id -> its staged table, and the rows staged
        self.staged_batches: dict[str, dict[int, str]] = {}
        self.staged_rows: dict[str, int] = {}

    def import_sources(self, names: list[str] | None = None) -> tuple[dict, dict[str, dict]]:
        """Import the new data of the sources (all, or ``names``): files, database rows, events.

        Returns the totals and the counts per source.
        """
        conns = {c.name: c for c in self.config.connections}
        todo = [s for s in self.config.sources if names is None or s.name in names]
        totals = {"files_new": 0, "files_skipped": 0, "files_refused": 0, "rows_read": 0, "rows_rejected": 0}
        per_source: dict[str, dict] = {}
        salt = self.salt() if has_suppressions(self.adapter) else None
        if salt is not None:
            totals["rows_suppressed"] = 0
        for i, src in enumerate(todo):
            self.progress("import", src.name, i, len(todo))
            conn = conns[src.connection]
            if src.items_of is not None:
                continue  # made from its parent's batches, below
            if conn.type == "http":
                continue  # events arrive through the collection API, not by import
            before = {f["batch_id"] for f in self.store.list_imported_files(src.name)} if salt else set()
            if conn.type in DATABASE_CONNECTIONS:
                res = import_database_source(self.adapter, self.store, src, self.reveal(conn))
            else:
                res = import_source(self.adapter, self.store, src, self.reveal(conn), self.archive_dir)
            per_source[src.name] = {"files_new": res.files_new, "files_skipped": res.files_skipped,
                                    "rows_read": res.rows, "rejected_on_read": res.rejected}
            if salt is not None:
                # Rows of erased customers are dropped from the new batches (tessera.privacy.suppression).
                suppressed = sum(purge_batch(self.adapter, self.config, src, raw_table(src.name, f["batch_id"]), salt)
                                 for f in self.store.list_imported_files(src.name) if f["batch_id"] not in before
                                 and self.adapter.exists(raw_table(src.name, f["batch_id"])))
                per_source[src.name]["rows_suppressed"] = suppressed
                totals["rows_suppressed"] += suppressed
            refused = getattr(res, "refused", [])
            if refused:
                per_source[src.name]["files_refused"] = len(refused)
                totals["files_refused"] += len(refused)
                self.refused += [{"source": src.name, **r} for r in refused]
            if getattr(res, "warnings", None):
                per_source[src.name]["warnings"] = list(res.warnings)
                self.warnings += res.warnings
            totals["files_new"] += res.files_new
            totals["files_skipped"] += res.files_skipped
            totals["rows_read"] += res.rows
            totals["rows_rejected"] += res.rejected
        sources = {s.name: s for s in self.config.sources}
        for child in self.config.sources:
            if child.items_of is None or child.items_of.source not in sources:
                continue
            if names is not None and child.name not in names and child.items_of.source not in names:
                continue
            made, rows, rejected = derive_items(self.adapter, self.store, sources[child.items_of.source], child)
            per_source[child.name] = {"files_new": made, "files_skipped": 0, "rows_read": rows,
                                      "rejected_on_read": rejected}
            totals["rows_read"] += rows
            totals["rows_rejected"] += rejected
        self.progress("import", "done", len(todo), len(todo))
        return totals, per_source

    # ------------------------------------------------------------------ helpers
    def _step(self, result: RunResult, name: str, fn, *, seconds: float | None = None):
        """Step ``name`` of the run: ``fn`` called, its counts and its time recorded (``seconds``:
        the time of a step that ran beside the others, which ``fn`` only waits for)."""
        t0 = time.perf_counter()
        counts = fn() or {}
        seconds = time.perf_counter() - t0 if seconds is None else seconds
        self.store.add_step(result.run_id, name, seconds, counts)
        result.steps.append({"step": name, "seconds": round(seconds, 3), **counts})
        return counts

    def _search_index(self, name: str, b, tag: str, *, whole: bool = False) -> tuple[str | None, list[Patch]]:
        """The search index a run publishes for the deduplicated dataset ``name`` built as ``b``:
        rebuilt whole, or, when the run patches the last publication's tables in place, the last
        index with the tokens of the unified records resolved again replaced (a patch of its own).

        A dataset of :func:`search_index_run_rows` rows or more rebuilt whole gets no index from a
        run made without the server (None: the last one is withdrawn, it would find the customers
        of the last publication): the server builds it at its start (:meth:`Workspace.index_for_reads`),
        so that such a run is not slowed by an index only the web app's search reads (about ten
        seconds at a million). A run of the server (``whole``) builds it whatever the size."""
        prev = self.adapter.published_target(search_view(name))
        part = next((p for p in b.patches if p.key == TID), None)  # the unified records replaced
        if prev is None or part is None or not self.adapter.exists(prev):
            if not whole and b.counts.get("rows", 0) >= search_index_run_rows():
                return None, []
            return self.build_search(name, f"{tag}search_{name}", b.table, b.records), []
        # Computed now, from the run's views (the patches change what they read once applied).
        gone = self.adapter.create_table(f"{tag}search_gone_{name}", part.remove.select(TID).union(
            part.add.select(TID), distinct=True))
        records = self.adapter.table(b.records)
        self.build_search(name, f"{tag}search_part_{name}", part.add,
                          records.filter(records[TID].isin(gone[TID])))
        return prev, [Patch(prev, TID, gone, self.adapter.table(f"{tag}search_part_{name}"))]

    def build_search(self, dataset: str, name: str, data: str | ibis.Table,
                     records: str | ibis.Table | None) -> str:
        """Create the search index ``name`` of the customer dataset ``dataset`` from its unified
        table ``data`` and its source records ``records`` (see :mod:`tessera.datasets.search`)."""
        from tessera.segments.related import _semantics

        ds = next(d for d in self.config.datasets if d.name == dataset)
        return create_search_table(self.adapter, name, self.adapter.table(data) if isinstance(data, str) else data,
                                   self.adapter.table(records) if isinstance(records, str) else records,
                                   _semantics(self.config, dataset), [k.column for k in ds.identity_keys])

    def index_for_reads(self, tables: dict[str, str]) -> list[str]:
        """Index the columns reads find a customer by (:func:`read_index_columns`) in ``tables``
        (view -> the table it shows or is to show); the ``view.column`` indexed now."""
        made = []
        for view, column in read_index_columns(self.config):
            target = tables.get(view)
            if target is None or not self.adapter.exists(target) or column not in self.adapter.table(target).columns:
                continue
            try:
                if self.adapter.index(target, column):
                    made.append(f"{view}.{column}")
            except TesseraError as exc:  # reads work without it, slower; the server tries again after
                log.warning("%s.%s was not indexed for reads (%s)", view, column, exc)
        return made

    def collect_garbage(self) -> None:
        """Drop work tables of runs that never published and raw batches never recorded."""
        published = set(self.adapter.published_targets().values())
        recorded = {(f["source"], f["batch_id"]) for f in self.store.list_imported_files()}
        # the unified tables before enrichment the next run builds on (see _previous_builds)
        built = self.store.get_state(*BUILT_STATE) or {}
        published |= {t["data"] for t in built.get("datasets", {}).values()}
        for name in self.adapter.list_tables():
            if ((RUN_TABLE.match(name) or SEARCH_TABLE.match(name)) and name not in published) \
                    or name.startswith("_tessera_syncw_"):
                self.adapter.drop_table(name)  # a run's or a killed sync's work tables
            m = RAW_TABLE.match(name)
            if m and (m.group(1), int(m.group(2))) not in recorded:
                self.adapter.drop_table(name)

    # ------------------------------------------------------------------ run
    def inputs_digest(self, day: date) -> str:
        """A digest of everything a run publishes from: the configuration, the imported batches (each
        with its content digest), the collected events' watermark, the identity overrides and the
        day scores and segments are computed at. Equal digests give equal publications."""
        files = sorted((f["source"], f["batch_id"], f["sha256"]) for f in self.store.list_imported_files())
        overrides = [(o["dataset"], o["kind"], list(o["records"])) for o in self.store.list_identity_overrides()]
        events = None
        # Event sources and the behaviour conditions of segments read the collected events.
        if self.adapter.exists(EVENTS_TABLE):
            t = self.adapter.table(EVENTS_TABLE)
            # The collected events are only appended (or erased): their count and latest arrival move.
            events = self.adapter.to_arrow(t.aggregate(n=t.count(), last=t.received_at.max())).to_pylist()
        payload = json.dumps([INPUTS_FORMAT, self.config.model_dump(mode="json"), files, overrides, events,
                              day.isoformat()], sort_keys=True, default=str)
        return hashlib.sha256(payload.encode()).hexdigest()

    def config_digest(self) -> str:
        """A digest of what decides how records are unified: the configuration and the identity overrides."""
        overrides = [(o["dataset"], o["kind"], list(o["records"])) for o in self.store.list_identity_overrides()]
        return hashlib.sha256(json.dumps([INPUTS_FORMAT, type(self.adapter).__name__,
                                          self.config.model_dump(mode="json"), overrides],
                                         sort_keys=True, default=str).encode()).hexdigest()

    def _previous_builds(self, config_digest: str) -> dict[str, Previous]:
        """The tables the last publication built per dataset when it was built under the same
        configuration and is still in place (an incremental run starts from them)."""
        built = self.store.get_state(*BUILT_STATE) or {}
        if built.get("config") != config_digest:
            return {}
        out = {}
        for name, t in built.get("datasets", {}).items():
            if self.adapter.published_target(f"{name}__records") != t["records"]:
                continue  # published by another way since (or dropped): build it whole
            shared = t.get("shared")
            if not (self.adapter.exists(t["records"]) and self.adapter.exists(t["data"])) or (
                    shared and self.adapter.published_target(f"{name}__shared_values") != shared):
                continue
            stages = t.get("stages")
            out[name] = Previous(t["records"], t["data"], shared,
                                 {src: {int(b): n for b, n in pairs} for src, pairs in stages.items()}
                                 if stages is not None else None)
        return out

    def _last_inputs(self, digest: str) -> dict | None:
        """The state of the last published run when it had the same inputs and its publication is
        still in place, else None."""
        last = self.store.get_state(*INPUTS_STATE)
        if not last or last.get("digest") != digest:
            return None
        for view, target in last.get("published", {}).items():
            if self.adapter.published_target(view) != target or not self.adapter.exists(target):
                return None
        return last

    def run(self, run_id: int, *, import_files: bool = True, as_of: date | None = None,
            full: bool = False, for_reads: bool = False) -> RunResult:
        """Import, stage, unify, enrich and publish; with nothing new since the last published run
        (same inputs digest, see :meth:`inputs_digest`) the publication is kept as it is, and after
        new records only the unified records they touch are resolved again
        (:mod:`tessera.datasets.incremental`); ``full`` rebuilds everything.

        ``for_reads`` (a server's run): the tables it publishes are indexed for reads before they
        are published (:func:`read_index_columns`), and every search index is built by the run.
        On DuckDB an index made on a table that readers read slows each of their reads while it is
        built (tens of milliseconds a read at a million rows); the server would make them right
        after the run anyway."""
        result = RunResult(run_id, "running")
        t0 = time.perf_counter()
        tag = f"_tessera_r{run_id}_"
        self.collect_garbage()

        def do_import():
            totals, per_source = self.import_sources()
            result.sources.update(per_source)
            return totals

        if import_files:
            self._step(result, "import", do_import)
        self.adapter.fit_memory()  # the engine's memory (Spark: its settings) scaled to the data imported

        inputs = self.inputs_digest(as_of or date.today())
        last = None if full else self._last_inputs(inputs)
        if last is not None:
            def keep():
                for name, counts in last.get("sources", {}).items():
                    result.sources.setdefault(name, {}).update(counts)
                result.datasets.update(last.get("datasets", {}))
                return {"unchanged": 1, "published": len(last.get("datasets", {}))}

            self._step(result, "unchanged", keep)
            result.unchanged = True
            result.warnings, result.refused = list(self.warnings), list(self.refused)
            result.status = "succeeded with warnings" if result.warnings else "succeeded"
            result.seconds = time.perf_counter() - t0
            return result
        published: dict[str, str] = {}
        beside = _Beside(self.adapter.side_by_side())

        stages: dict[str, str] = {}
        stage_types: dict[str, dict[str, str]] = {}
        reject_parts: list[ibis.Table] = []
        # sources without any data because every file they had was refused -> why; the datasets
        # they feed (and those that depend on them) are not rebuilt this run
        no_data: dict[str, str] = {}
        skipped: dict[str, str] = {}

        def do_stage():
            files = self.store.list_imported_files()
            staged_total = 0
            conn_types = {c.name: c.type for c in self.config.connections}
            # rows refused by the parser, per (source, batch): read at the first source that has batches
            parse_counts: dict[tuple[str, int], int] | None = None
            parse_rejects: bool | None = None
            if beside.pool:
                ahead = [src for src in self.config.sources if conn_types.get(src.connection) != "http"
                         and not self._no_data(src, files, {})]
                if len(ahead) > 1:
                    self._stage_side_by_side(ahead, files, tag, beside.workers)
            for i, src in enumerate(self.config.sources):
                self.progress("stage", src.name, i, len(self.config.sources))

                def typed_table(t, n=f"{tag}typed_{src.name}", src=src, i=i, temp=True):
                    try:
                        return self.adapter.create_table(n, t, temp=temp)
                    except Exception as exc:
                        # the source's filter is the one user expression of staging
                        if src.filter and value_error(self.adapter, exc):
                            raise expression_failed(f"Source '{src.name}', filter", f"sources[{i}] ({src.name}).filter",
                                                    src.filter, exc) from exc
                        raise

                why = self._no_data(src, files, no_data)
                if why:
                    no_data[src.name] = why
                    continue
                if conn_types.get(src.connection) == "http":
                    # Events are read from the collected events table, not from imported batches.
                    staged, rejects = stage_events(self.adapter, src, extra_columns=self._needed_columns(src.name),
                                                   extra_identifiers=self._relation_targets(src.name), tag=tag,
                                                   materialize=typed_table)
                    batch_ids = []
                else:
                    staged, rejects, batch_ids = self._stage_batches(src, files, typed_table)
                # A source read from one kept batch is staged already: no copy; one read from several
                # (the latest version of each record) is a view where views cost nothing until read.
                name = _stored(staged) or f"{tag}stage_{src.name}"
                if _stored(staged):
                    staged_t = staged
                elif len(batch_ids) > 1 and self.adapter.cheap_views:
                    staged_t = self.adapter.create_view(name, staged)
                    self.views.append(name)
                else:
                    staged_t = self.adapter.create_table(name, staged, temp=True)
                stages[src.name] = name
                stage_types[src.name] = {c: type_name(staged_t.schema()[c]) for c in staged_t.columns}
                rej = rejects if _stored(rejects) else self.adapter.create_table(f"{tag}rejects_{src.name}", rejects,
                                                                                  temp=True)
                n_ok = self.adapter.count(staged_t)
                n_rej = self.adapter.count(rej)
                n_parse = 0
                if batch_ids and parse_rejects is None:  # (looked up once for every source)
                    parse_rejects = self.adapter.exists(PARSE_REJECTS)
                if batch_ids and parse_rejects:
                    pr = self.adapter.table(PARSE_REJECTS)
                    if parse_counts is None:  # counted once for every source (one query, not one each)
                        per_batch = pr.group_by(["source", "batch"]).agg(n=ibis._.count())
                        parse_counts = {(r["source"], r["batch"]): r["n"]
                                        for r in self.adapter.to_arrow(per_batch).to_pylist()}
                    n_parse = sum(parse_counts.get((src.name, b), 0) for b in batch_ids)
                    reject_parts.append(pr.filter((pr.source == src.name) & pr.batch.isin(batch_ids)))
                reject_parts.append(rej)
                total = n_ok + n_rej + n_parse
                rate = (n_rej + n_parse) / total if total else 0.0
                if rate > src.max_reject_rate:
                    raise RunError(
                        f"Source '{src.name}': {n_rej + n_parse} of {total} rows rejected ({rate:.1%}), above "
                        f"max_reject_rate {src.max_reject_rate:.1%}. Nothing was published; see "
                        f"'tessera rejects' after fixing, or raise max_reject_rate."
                    )
                result.sources.setdefault(src.name, {}).update(staged=n_ok, rejected=n_rej + n_parse)
                # The typed rows (every column of the batch, normalized) are read by the staged rows
                # and rejects alone, stored by now: their memory goes back before the next source.
                typed = f"{tag}typed_{src.name}"
                if name != typed and _stored(rej) != typed:
                    self.adapter.drop_table(typed)  # (if made)
                self.staged_rows[src.name] = n_ok
                staged_total += n_ok
            self.progress("stage", "done", len(self.config.sources), len(self.config.sources))
            for name in self.adapter.list_tables():
                if STAGED_TABLE.match(name) and name not in self.kept_stages:
                    self.adapter.drop_table(name)  # a batch no longer read, or staged under other settings
            skipped.update(self._skipped_datasets(no_data))
            for name, why in skipped.items():
                self.warnings.append(f"Dataset '{name}' was not rebuilt by this run (its last publication, if any, "
                                     f"stays): {why}")
            if reject_parts:
                all_rejects = reject_parts[0]
                for p in reject_parts[1:]:
                    all_rejects = all_rejects.union(p, distinct=False)
                beside.now("rejects", lambda: self.adapter.create_table(
                    f"{tag}rejects", all_rejects.order_by(["source", "file", "line"])))
            return {"rows_staged": staged_total,
                    "rows_rejected": sum(v.get("rejected", 0) for v in result.sources.values())}

        config_digest = self.config_digest()
        builder = DatasetBuilder(self.adapter, self.config, stages, tag, stage_types,
                                 overrides=overrides_by_dataset(self.store),
                                 previous={} if full else self._previous_builds(config_digest),
                                 staged_batches=self.staged_batches, staged_rows=self.staged_rows)
        bases: dict[str, dict] = {}

        def do_datasets():
            totals = {"records": 0, "unified": 0, "duplicates_merged": 0}
            order = [ds for ds in dataset_order(self.config) if ds.name not in skipped]
            # (what the metadata says, read in this thread)
            known = {ds.name: (self.adapter.published_target(f"{ds.name}__records"),
                               len(self.store.list_publications(ds.name))) for ds in order}

            def build(ds):
                return builder.build(ds, previous_lineage=known[ds.name][0], generation=known[ds.name][1])

            def search_early(name: str, b) -> None:
                if b.shared:  # (the search index reads the unified records, not the enrichment)
                    beside.early(f"search {name}", lambda: self._search_index(name, b, tag, whole=for_reads))

            side = self._build_side_by_side(order, builder, build, beside, search_early) if beside.pool else None
            for i, ds in enumerate(order):
                if side is None:
                    self.progress("unify", ds.name, i, len(order))
                built = build(ds) if side is None else side[ds.name]
                result.datasets[ds.name] = built.counts
                if built.table != built.records:  # a deduplicated dataset
                    bases[ds.name] = {"records": built.target(built.records), "data": built.target(built.table),
                                      "shared": built.shared}
                    sources = [m.source for m in ds.mappings]
                    if all(s in self.staged_batches for s in sources):  # the batches it read
                        bases[ds.name]["stages"] = {s: sorted(self.staged_batches[s].items()) for s in sources}
                for k in totals:
                    totals[k] += built.counts.get(k, 0)
            self.progress("unify", "done", len(order), len(order))
            return totals

        def do_enrich():
            enricher = Enricher(self.adapter, self.config, builder.built, tag,
                                as_of or self.config.pipeline.as_of or date.today())
            todo = [ds for ds in self.config.datasets if enriched(ds) and ds.name not in skipped]
            for i, ds in enumerate(todo):
                self.progress("enrich", ds.name, i, len(todo))
                result.datasets[ds.name].update(enricher.enrich(ds))
            self.progress("enrich", "done", len(todo), len(todo))
            return {"enriched": len(todo)}

        def do_publish():
            views = {}
            patches = []
            self.progress("publish", "search index" if for_reads else "", 0, 1)
            if for_reads:  # the search indexes and indexes for reads: the scaled limit was for the build
                self.adapter.unfit_memory()
            for name, b in builder.built.items():
                views[name] = b.target(b.table)
                views[f"{name}__records"] = b.target(b.records)
                views[f"{name}__lineage"] = b.target(b.records)
                patches += b.patches
                if b.shared:
                    views[f"{name}__shared_values"] = b.shared
                if b.matches:
                    views[f"{name}__matches"] = b.matches
                if b.shared:  # a deduplicated dataset: its customers are searched as you type
                    views[search_view(name)], patch = beside.result(
                        f"search {name}", lambda name=name, b=b: self._search_index(name, b, tag, whole=for_reads))
                    patches += patch
            if reject_parts:
                beside.result("rejects", lambda: None)
                views[REJECTS_VIEW] = f"{tag}rejects"
            if for_reads:  # the tables patched in place keep the indexes they have
                self.progress("publish", "indexes for reads", 0, 1)
                fresh = {v: t for v, t in views.items() if t is not None and t != self.adapter.published_target(v)}
                result.indexed = self.index_for_reads(fresh)
            self.adapter.publish(views, patches)
            # (a withdrawn name is not part of what the run published: see _last_inputs)
            published.update({v: t for v, t in views.items() if t is not None})
            for name, b in builder.built.items():
                self.store.record_publication(name, run_id, b.target(b.table), b.counts.get("rows", 0))
            self.store.set_state(*BUILT_STATE, {"config": config_digest, "datasets": bases})
            drop_views()
            self.collect_garbage()
            self.progress("publish", "done", 1, 1)
            return {"published": len(builder.built)}

        def drop_views():
            """Drop the views through which this run read the tables it patches (before the tables
            they read are collected)."""
            for b in builder.built.values():
                for view in b.stored:
                    self.adapter.drop_table(view)
            while self.views:
                self.adapter.drop_table(self.views.pop())

        try:
            self._step(result, "stage", do_stage)
            self._step(result, "unify", do_datasets)
            if any(enriched(ds) and ds.name not in skipped for ds in self.config.datasets):
                self._step(result, "enrich", do_enrich)
            self._step(result, "publish", do_publish)
            def do_consent():
                t = time.perf_counter()
                return consent_history.refresh(self.adapter, self.config), time.perf_counter() - t

            # (the segments do not read the consent history: written beside them where queries run
            # side by side, else after them; the step's time is its own)
            beside.early("consent", do_consent)
            segments = self._segments_of_built(skipped)
            if segments:
                def do_segments():
                    self.progress("segments", "", 0, len(segments))
                    counts = self.refresh_segments(as_of or date.today(), segments)
                    self.progress("segments", "done", len(segments), len(segments))
                    return counts

                self._step(result, "segments", do_segments)
            consent, took = beside.result("consent", do_consent)
            self._step(result, "consent", lambda: consent, seconds=took)
        except BaseException as exc:
            beside.close()
            if not published:
                try:
                    drop_views()
                except Exception:  # noqa: BLE001 - the run's failure is the one to report
                    pass
            if isinstance(exc, TesseraError) or not isinstance(exc, Exception):
                raise
            # an engine failure: keep the message, the previous state stays
            raise RunError(f"The run failed: {exc}. The last published state is unchanged.") from exc
        beside.close()
        self.store.set_state(*INPUTS_STATE, json.loads(json.dumps({
            "digest": inputs, "run_id": run_id, "published": published, "datasets": result.datasets,
            "sources": {n: {k: c[k] for k in ("staged", "rejected") if k in c} for n, c in result.sources.items()},
        }, default=str)))
        result.warnings, result.refused = list(self.warnings), list(self.refused)
        result.status = "succeeded with warnings" if result.warnings else "succeeded"
        result.seconds = time.perf_counter() - t0
        return result

    def refresh_segments(self, as_of: date, names: list[str] | None = None) -> dict:
        """Recompute the membership of every segment (or of ``names``) on the datasets just
        published (entries and exits are logged, see :mod:`tessera.segments.membership`)."""
        from tessera.segments import Context, refresh

        ctx = Context(self.adapter, self.config, as_of, self.adapter.table)
        done = refresh(ctx, self.store, names)
        counts = {"segments": len(done), "members": sum(r.size for r in done),
                  "entered": sum(r.entered for r in done), "exited": sum(r.exited for r in done)}
        skipped = {r.segment: r.skipped for r in done if r.skipped}
        self.warnings += [f"Segment '{r.segment}' was not refreshed: {r.skipped}" for r in done if r.failed]
        if skipped:
            # A segment that cannot be computed this run (a score column missing...) keeps its members.
            counts["skipped"] = skipped
        return counts

    def _no_data(self, src, files: list[dict], no_data: dict[str, str]) -> str | None:
        """Why ``src`` has no data for this run because its files were refused (None: it has data,
        or it lacks data for another reason, reported when it is staged)."""
        if src.items_of is not None:
            parent = no_data.get(src.items_of.source)
            return f"its parent source '{src.items_of.source}' has no data" if parent else None
        if any(f["source"] == src.name for f in files):
            return None
        refused = self.store.get_state(REFUSED_STATE, src.name, {}) or {}
        if not refused:
            return None
        names = sorted({r["name"] for r in refused.values()})
        shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
        return (f"source '{src.name}' has no data: its file(s) were refused ({shown}); fix or replace them and "
                f"run again, or run: tessera import {src.name} --retry-refused")

    def _skipped_datasets(self, no_data: dict[str, str]) -> dict[str, str]:
        """The datasets this run cannot rebuild, with why: those fed by a source without data, and
        those that need one of them (a relation, an aggregate, the orders or events of scores)."""
        if not no_data:
            return {}
        sources = {s.name: s for s in self.config.sources}
        skipped: dict[str, str] = {}
        for ds in self.config.datasets:
            for m in ds.mappings:
                if m.source in no_data:
                    skipped[ds.name] = no_data[m.source]
                    break
        changed = True
        while changed:
            changed = False
            for ds in self.config.datasets:
                if ds.name in skipped:
                    continue
                needs = set()
                for m in ds.mappings:
                    for rel in sources[m.source].relations:
                        needs.add(relation_target(self.config, rel)[2])
                needs |= {a.from_ for a in ds.aggregates} if ds.aggregates else set()
                if ds.scores is not None:
                    needs |= {d for d in (ds.scores.orders, ds.scores.order_items) if d}
                    # the orders, order lines and events of scores are datasets related to this one
                    needs |= {d.name for d in self.config.datasets for m in d.mappings
                              for rel in sources[m.source].relations
                              if relation_target(self.config, rel)[2] == ds.name}
                lost = sorted((needs - {ds.name}) & set(skipped))
                if lost:
                    skipped[ds.name] = f"it needs dataset '{lost[0]}', which was not rebuilt"
                    changed = True
        return skipped

    def _segments_of_built(self, skipped: dict[str, str]) -> list[str]:
        """The segments to refresh: those whose datasets were all rebuilt by this run."""
        if not skipped:
            return [s.name for s in self.config.segments]
        from tessera.segments.related import behaviour_datasets

        keep = []
        for seg in self.config.segments:
            if seg.dataset in skipped or any(d in skipped for d in behaviour_datasets(self.config, seg)):
                self.warnings.append(f"Segment '{seg.name}' was not refreshed: its dataset was not rebuilt")
                continue
            keep.append(seg.name)
        return keep

    def _build_side_by_side(self, order: list, builder: DatasetBuilder, build: Callable, beside: _Beside,
                            on_built: Callable = lambda name, built: None) -> dict:
        """Each dataset of ``order`` built by ``build`` as soon as the datasets its relations point
        to have their lineage (which is all it reads of them: :attr:`DatasetBuilder.on_lineage`),
        side by side with those building (``beside.workers`` at once): the name -> what ``build``
        returned, each passed to ``on_built`` as it ends. The first failure in ``order`` is raised
        once every build started has ended."""
        deps = dataset_dependencies(self.config)
        names = {ds.name for ds in order}
        waiting = {ds.name: deps[ds.name] & names for ds in order}
        by_name = {ds.name: ds for ds in order}
        events: queue.SimpleQueue = queue.SimpleQueue()  # (name, "lineage" | "done")
        ready: set[str] = set()
        done: dict = {}
        failed: dict[str, BaseException] = {}
        running: set[str] = set()
        builder.on_lineage = lambda name: events.put((name, "lineage"))
        try:
            with ThreadPoolExecutor(beside.workers, thread_name_prefix="tessera-build") as pool:
                while waiting or running:
                    if not failed:
                        for name in [n for n, d in waiting.items() if d <= ready]:
                            self.progress("unify", name, len(order) - len(waiting), len(order))
                            del waiting[name]
                            running.add(name)
                            pool.submit(build, by_name[name]).add_done_callback(
                                lambda job, name=name: events.put((name, job)))
                    if not running:
                        break  # (a dataset waits for one that failed)
                    name, what = events.get()
                    if what == "lineage":
                        ready.add(name)
                        continue
                    running.discard(name)
                    ready.add(name)
                    if what.exception() is not None:
                        failed[name] = what.exception()
                    else:
                        done[name] = what.result()
                        on_built(name, done[name])
        finally:
            builder.on_lineage = None
        if failed:
            raise failed[next(ds.name for ds in order if ds.name in failed)]
        return done

    def _batch_plan(self, src, files: list[dict]):
        """(batches, their tables, the source's schema, staging options, the staging digest) of a
        source read from imported batches."""
        mine = sorted((f for f in files if f["source"] == src.name), key=lambda f: f["batch_id"])
        strategy = src.import_strategy
        if src.items_of is not None:  # a child source follows its parent's strategy
            strategy = next((s.import_strategy for s in self.config.sources if s.name == src.items_of.source),
                            strategy)
        if strategy == "full" and mine:
            mine = mine[-1:]
        schema = self.store.get_source_schema(src.name)
        if not mine:  # (a source whose files were all refused is left out before: see _no_data)
            what = f"its pattern '{src.pattern}'" if src.pattern else f"its {'table' if src.table else 'query'}"
            raise RunError(f"Source '{src.name}' has no imported data yet (no imported file or table): check "
                           f"{what} and its connection '{src.connection}' (tessera connections test "
                           f"{src.connection}).")
        missing = [c for c in self._needed_columns(src.name) if c not in dict(schema)
                   and nested_path(c, dict(schema)) is None]
        if missing:
            raise RunError(f"Source '{src.name}': column(s) {', '.join(missing)} used in the "
                           f"configuration are not in its files (columns: {', '.join(c for c, _ in schema)}).")
        batches = [Batch(raw_table(src.name, f["batch_id"]), f["batch_id"], _naive_utc(f["imported_at"]))
                   for f in mine]
        tables = [self.adapter.table(b.table) for b in batches]
        options = dict(dialect=self.adapter.dialect, extra_columns=self._needed_columns(src.name),
                       extra_identifiers=self._relation_targets(src.name),
                       add_sql_columns=self.adapter.add_sql_columns)
        # Staging is per batch but for the choice of each record's latest version: each batch is
        # staged once and kept (under a digest of what staging reads besides the batch), so a run
        # after a new file stages that file alone.
        digest = hashlib.sha256(json.dumps([INPUTS_FORMAT, type(self.adapter).__name__, src.model_dump(mode="json"),
                                            schema, options["extra_columns"], options["extra_identifiers"]],
                                           sort_keys=True, default=str).encode()).hexdigest()[:12]
        return batches, tables, schema, options, digest

    def _stage_batches(self, src, files: list[dict], typed_table) -> tuple[ibis.Table, ibis.Table, list[int]]:
        """(staged rows, rejects, batch ids) of a source read from imported batches."""
        batches, tables, schema, options, digest = self._batch_plan(src, files)
        staged_parts, reject_parts = [], []
        if typed_table is None:
            # A preview: the batches the last run staged under the same settings are read as kept,
            # the others staged in the query (nothing is kept).
            for b, t in zip(batches, tables):
                name, rej_name = _staged_names(src.name, b.batch, digest)
                if self.adapter.exists(name) and self.adapter.exists(rej_name):
                    staged_parts.append(self.adapter.table(name))
                    reject_parts.append(self.adapter.table(rej_name))
                else:
                    staged, rejects = stage(src, [b], [t], schema, **options)
                    staged_parts.append(staged)
                    reject_parts.append(rejects)
            # a stored batch's types are the engine's (a timestamp's precision): the others follow them
            stored = [i for i, p in enumerate(staged_parts) if _stored(p)]
            if stored and len(stored) < len(staged_parts):
                typed, rej_typed = staged_parts[stored[0]].schema(), reject_parts[stored[0]].schema()
                staged_parts = [p.cast(typed) for p in staged_parts]
                reject_parts = [p.cast(rej_typed) for p in reject_parts]
            return latest_of(staged_parts), union_all(reject_parts), [b.batch for b in batches]
        kept = set(self.adapter.list_tables())  # (one listing, not a lookup per batch)
        for b, t in zip(batches, tables):
            name, rej_name = _staged_names(src.name, b.batch, digest)
            if not (name in kept and rej_name in kept):
                self._stage_batch(src, b, t, schema, digest, options, typed_table)
            self.kept_stages.update((name, rej_name))
            self.staged_batches.setdefault(src.name, {})[b.batch] = name
            staged_parts.append(self.adapter.table(name))
            reject_parts.append(self.adapter.table(rej_name))
        staged = latest_of(staged_parts)
        return staged, union_all(reject_parts), [b.batch for b in batches]

    def _stage_batch(self, src, b: Batch, t: ibis.Table, schema, digest: str, options: dict, typed_table) -> None:
        """Batch ``b`` (table ``t``) of ``src`` staged and kept: its staged rows and its rejects
        stored under the names of :func:`_staged_names`. Engine work alone (no metadata): the
        batches of different sources may be staged side by side (:meth:`_stage_side_by_side`)."""
        name, rej_name = _staged_names(src.name, b.batch, digest)
        duplicates: list[bool] = []
        typed: list[ibis.Table] = []
        # Where a stored table can be narrowed in place, the typed rows are stored (not
        # kept in memory) in the staged rows' layout: with no duplicate record key, they
        # become the staged rows (their rejects deleted, the reasons dropped), no copy.
        keep = self.adapter.narrows_in_place

        def any_rows(d: ibis.Table) -> bool:
            duplicates.append(self.adapter.count(d.limit(1)) > 0)
            return duplicates[-1]

        def any_true(t: ibis.Table, column: str) -> bool:
            duplicates.append(self.adapter.any_true(_stored(t), column))
            return duplicates[-1]

        # where statistics of the stored files answer, the duplicate keys are flagged in the
        # typed rows (in their query) and asked of the flag, not queried after
        check = dict(any_true=any_true) if self.adapter.answers_from_statistics else dict(any_rows=any_rows)

        def materialize(rows: ibis.Table | Compiled) -> ibis.Table:
            typed.append(typed_table(rows, temp=not keep))
            return typed[-1]

        staged, rejects = stage(src, [b], [t], schema, materialize=materialize, **check, **options,
                                typed=self._typed_query(src, b, t, schema, digest, options,
                                                        flagged="any_true" in check))
        if (duplicates == [False] and len(typed) == 1 and _stored(typed[0])
                and self.adapter.known_all_null(_stored(typed[0]), "_reason")):
            # no reason on any typed row and no duplicate key (known from the files'
            # statistics where the engine keeps them): no rejects, no query for them
            rejects = rejects.schema().to_pyarrow().empty_table()
        self.adapter.create_table(rej_name, rejects)
        if keep and duplicates == [False] and len(typed) == 1 and _stored(typed[0]):
            self.adapter.narrow_table(_stored(typed[0]), name, staged.columns, unless="_reason")
        else:
            self.adapter.create_table(name, staged)

    def _stage_side_by_side(self, sources: list, files: list[dict], tag: str, workers: int) -> None:
        """The batches not yet staged of ``sources`` (imported batches, each source's in order)
        staged ``workers`` sources at a time, each source in a thread of its own, before the run's
        staging step reads them as kept (:meth:`_stage_batches`). Planned here (the metadata read
        in this thread), staged there (the engine's work alone). A source whose planning or
        staging fails here is left to that step, which stages it again and reports the failure as
        it does for any source."""
        kept = set(self.adapter.list_tables())
        todo = []
        for src in sources:
            try:
                batches, tables, schema, options, digest = self._batch_plan(src, files)
            except RunError:
                continue
            missing = [(b, t) for b, t in zip(batches, tables)
                       if not all(n in kept for n in _staged_names(src.name, b.batch, digest))]
            if missing:
                todo.append((src, missing, schema, options, digest))

        def stage_source(item) -> None:
            src, missing, schema, options, digest = item

            def typed_table(rows, temp=True, n=f"{tag}typed_{src.name}"):
                return self.adapter.create_table(n, rows, temp=temp)

            try:
                for b, t in missing:
                    self._stage_batch(src, b, t, schema, digest, options, typed_table)
            except Exception as exc:  # (reported by the staging step, which stages the source again)
                log.debug("Source %s not staged ahead: %s", src.name, exc)

        if len(todo) > 1:
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="tessera-stage") as pool:
                list(pool.map(stage_source, todo))

    def _typed_query(self, src, b: Batch, t: ibis.Table, schema, digest: str, options: dict, *,
                     flagged: bool) -> Compiled | None:
        """The typed rows of batch ``b`` (table ``t``) of ``src``, written from the source's template
        (see ``_TYPED_SQL``; compiled at the source's first batch in the process). None for a source
        with a filter, read against its batch: its rows are built and compiled as they are."""
        if src.filter:
            return None
        key = (digest, flagged, tuple((c, str(typ)) for c, typ in t.schema().items()))
        known = _TYPED_SQL.get(key)
        if known is None:
            placeholder = typed_rows(src, Batch(_RAW_PLACEHOLDER, b.batch, param("importedat")),
                                     ibis.table(t.schema(), name=_RAW_PLACEHOLDER), schema,
                                     dialect=options["dialect"], extra_columns=options["extra_columns"],
                                     extra_identifiers=options["extra_identifiers"], flagged=flagged)
            if len(_TYPED_SQL) >= 64:
                _TYPED_SQL.clear()
            known = _TYPED_SQL[key] = (placeholder, self.adapter.template(placeholder))
        # (the placeholder's expression gives the columns)
        return self.adapter.fill(known[1], known[0], {_RAW_PLACEHOLDER: b.table}, importedat=b.imported_at)

    def _relation_targets(self, source: str) -> list[str]:
        """Columns of ``source`` that relations of other sources point at."""
        cols = []
        for src in self.config.sources:
            for rel in src.relations:
                obj, col = rel.to.split(".")
                if obj == source:
                    cols.append(col)
        return cols

    def _needed_columns(self, source: str) -> list[str]:
        cols: list[str] = []
        for ds in self.config.datasets:
            for m in ds.mappings:
                if m.source == source:
                    cols += [c for c in m.columns.values() if c not in cols]
        for ds in self.config.datasets:
            for m in ds.mappings:
                src = next(s for s in self.config.sources if s.name == m.source)
                for rel in src.relations:
                    obj, col = rel.to.split(".")
                    if obj == source and col not in cols:
                        cols.append(col)
        return cols


def _stored(table: ibis.Table) -> str | None:
    """The name of the stored table ``table`` reads as it is, or None for a query."""
    op = table.op()
    return op.name if isinstance(op, ops.DatabaseTable) else None


def _naive_utc(iso: str) -> str:
    """An ISO time in UTC without its offset, readable as TIMESTAMP by every engine."""
    return re.sub(r"(Z|[+-]\d\d:\d\d)$", "", iso).replace("T", " ")

