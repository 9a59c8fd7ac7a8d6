"""The server owns its workspace: one open warehouse and metadata store, one writer queue.

:class:`WorkspaceOwner` opens the workspace once when the server starts and keeps it open until
it stops. Writes (runs, imports, syncs, apply) are jobs of its :class:`~tessera.jobs.JobQueue`;
reads run on the calling thread through :meth:`Workspace.reader`, which sees the last
publication and never waits for the writer.

The server writes ``server.json`` into the workspace (mode 0600): its address, its process id
and a *local credential*, a random token that the CLI of the same user sends as
``Authorization: Bearer ...``. The CLI finds a running server with :func:`find_server` and sends
its commands there; with no server, it works in-process.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import queue
import secrets
import threading
from datetime import date
from pathlib import Path
from typing import Any, Callable, TypeVar

import psutil

from tessera.api.answers import Answers
from tessera.collect.scrub import scrub_log
from tessera.errors import BusyError, NotFoundError, TesseraError, UsageError, error_classes
from tessera.jobs import JobContext, JobQueue
from tessera.segments import event_segments
from tessera.segments.related import event_links
from tessera.syncs import reset_sync
from tessera.workspace import Workspace

log = logging.getLogger("tessera.server")

SERVER_FILE = "server.json"
T = TypeVar("T")


class WorkspaceOwner:
    """The open workspace of a running server, its writer queue and its local credential.

    Raises:
        WorkspaceError: the folder is not a workspace.
        BusyError: another process writes the workspace (a CLI run, another server).
    """

    def __init__(self, path: str | Path):
        self.path = Path(path).resolve()
        self.workspace = Workspace.open(self.path)
        try:
            self.workspace.hold("the server")
        except BaseException:
            self.workspace.close()
            raise
        self.local_token = "tsl_" + secrets.token_urlsafe(32)
        #: answers of point reads (profiles) kept while nothing they show changes
        self.answers = Answers()
        handlers = {
            "run": self._run, "import": self._import, "sync": self._sync, "apply": self._apply,
            "sync_reset": self._sync_reset, "segments_refresh": self._segments_refresh,
            "segment_save": self._segment_save, "segment_delete": self._segment_delete,
            "privacy_erase": self._privacy_erase,
            "config_change": self._config_change,
            "dashboard_save": self._dashboard_save, "dashboard_delete": self._dashboard_delete,
            "dashboards_prepare": self._dashboards_prepare,
        }
        self.jobs = JobQueue(self.workspace.store, {kind: self._changing(fn) for kind, fn in handlers.items()},
                             on_cancel=self.workspace.adapter.interrupt, on_end=self._job_ended)
        # The customer of an erase job, by the job's reference: an e-mail or a phone is never
        # written into the jobs table nor the audit log (the receipt names the tessera_id).
        self._erase_subjects: dict[str, str] = {}
        self._started = False
        self._event_refresh_queued = False
        self._reads: ReadThreads | None = None
        self._reads_lock = threading.Lock()

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        try:
            self._index()  # a run made without the server left its tables without the readers' indexes
        except TesseraError as exc:
            log.warning("the published tables were not indexed for reads (%s); profiles read them unindexed", exc)
        interrupted = self.jobs.start()
        if interrupted:
            log.warning("%d job(s) of a previous server were interrupted: %s", len(interrupted), interrupted)
        self._started = True
        self._queue_dashboards()  # a run made without the server: its dashboards are computed now

    def _index(self) -> list[str]:
        made = self.workspace.index_for_reads()
        if made:
            log.info("indexed for reads: %s", ", ".join(made))
        return made

    def stop(self) -> None:
        if self._started:
            self.jobs.stop(timeout=600)  # a running job finishes: a run publishes or leaves the last state
        if self._reads is not None:
            self._reads.stop()
            self._reads = None
        remove_server_file(self.path, os.getpid())
        self.workspace.close()

    def write_server_file(self, url: str) -> Path:
        """Tell the CLI of this user where the server listens and how to prove it is the same user."""
        target = self.path / SERVER_FILE
        tmp = target.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump({"url": url, "pid": os.getpid(), "token": self.local_token}, fh)
        os.replace(tmp, target)
        return target

    def submit(self, kind: str, params: dict, *, by: str | None, client: str | None = None) -> dict:
        """Queue a job asked by ``by`` (recorded in the audit log); the job, queued."""
        job = self.jobs.submit(kind, params, requested_by=by)
        self.workspace.store.audit(f"job.{kind}.submitted", actor=by, target=f"job {job['id']}",
                                   details={"kind": kind, "params": _audited_params(params)}, client=client)
        return job

    def _changing(self, handler: Callable[[dict, JobContext], Any]) -> Callable[[dict, JobContext], Any]:
        """``handler``, after which the kept answers of point reads are not given again: when a
        job returns (or fails), before its end is recorded, whatever it changed in the warehouse
        is what the next read sees (an erased customer is gone)."""
        def job(params: dict, ctx: JobContext) -> Any:
            try:
                return handler(params, ctx)
            finally:
                self.answers.changed()

        return job

    def events_loaded(self, _load=None) -> None:
        """After an event load: profiles show the events collected since the last run, so their
        kept answers are not given again when events feed a customer dataset."""
        try:
            config = self.workspace.config
            shown = any(event_links(config, d.name) for d in config.datasets if d.deduplicate)
        except Exception:  # noqa: BLE001 - a configuration being changed: forget the answers to be sure
            shown = True
        if shown:
            self.answers.changed()

    def _job_ended(self, job: dict) -> None:
        """The audit line of a finished job: its state, error, and for ``apply`` the configuration diff."""
        details: dict[str, Any] = {"kind": job["kind"], "state": job["state"]}
        if job.get("error"):
            details["error"] = job["error"]
        if job["kind"] in ("apply", "config_change") and isinstance(job.get("result"), dict):
            details["diff"] = job["result"]
        elif isinstance(job.get("result"), dict):
            details["result"] = {k: v for k, v in job["result"].items() if isinstance(v, (int, float, str, bool))}
        self.workspace.store.audit(f"job.{job['kind']}.finished", actor=job.get("requested_by"),
                                   target=f"job {job['id']}", details=details)

    # ------------------------------------------------------------------ reading
    def read(self, fn: Callable[[Workspace], T]) -> T:
        """``fn(workspace)`` on a reader of the workspace (call it from a worker thread)."""
        reader = self.workspace.reader()
        with reader.pinned():  # one look at the store's state per read, not one per cached thing
            return fn(reader)

    async def read_soon(self, fn: Callable[[Workspace], T]) -> T:
        """``fn(workspace)`` on a reader, in one of the server's reading threads (from the event
        loop): what the hottest routes (status, profiles) use instead of ``asyncio.to_thread``."""
        pool = self._reads
        if pool is None:
            with self._reads_lock:
                if self._reads is None:
                    self._reads = ReadThreads(READ_THREADS)
                pool = self._reads
        return await pool.run(self.read, fn)

    # ------------------------------------------------------------------ jobs
    def _run(self, params: dict, ctx: JobContext) -> Any:
        as_of = params.get("as_of")
        # The tables the run publishes are indexed for reads before they are published: an index
        # made on a table that profiles read slows each of their reads while it is built.
        result = self.workspace.run(progress=ctx, import_files=bool(params.get("import_files", True)),
                                    as_of=date.fromisoformat(as_of) if as_of else None,
                                    full=bool(params.get("full", False)), for_reads=True)
        if result.indexed:
            ctx.log(f"indexed for reads before publication: {', '.join(result.indexed)}")
        # After the run: what is left to index (segment members), and the dashboards, computed by
        # a job of their own.
        self._index_after(ctx)
        self._queue_dashboards()
        return result

    def _queue_dashboards(self) -> None:
        """Queue the dashboards' preparation when the workspace is large enough for a first view to
        be slow and its kept results are of older publications."""
        try:
            needed = self.workspace.dashboards_need_preparing()
        except TesseraError as exc:  # dashboards are then computed when viewed
            log.warning("the dashboards were not prepared (%s)", exc)
            return
        if needed:
            self.jobs.submit("dashboards_prepare", {}, requested_by="the server")

    def _dashboards_prepare(self, params: dict, ctx: JobContext) -> Any:
        ctx.check()
        return self.workspace.prepare_dashboards(ctx) or {"dashboards": 0}

    def _index_after(self, ctx: JobContext) -> None:
        # No cancel check here: what was published stays published, with or without its index.
        try:
            made = self._index()
            if made:
                ctx.log(f"indexed for reads: {', '.join(made)}")
        except TesseraError as exc:  # reads work without the index, slower
            log.warning("the published tables were not indexed for reads (%s)", exc)

    def _import(self, params: dict, ctx: JobContext) -> Any:
        return self.workspace.import_sources(params.get("sources") or None, progress=ctx,
                                             retry_refused=bool(params.get("retry_refused", False)))

    def _sync(self, params: dict, ctx: JobContext) -> Any:
        ctx.check()
        return self.workspace.sync(params.get("syncs") or None, dry_run=bool(params.get("dry_run", False)))

    def _segments_refresh(self, params: dict, ctx: JobContext) -> Any:
        ctx.check()
        if params.get("events_only"):
            self._event_refresh_queued = False  # events loaded from now on need a refresh of their own
            return self.workspace.refresh_event_segments()
        result = self.workspace.refresh_segments(params.get("segments") or None)
        self._index_after(ctx)
        return result

    def _segment_save(self, params: dict, ctx: JobContext) -> Any:
        return self.workspace.save_segment(params["definition"])

    def _segment_delete(self, params: dict, ctx: JobContext) -> Any:
        return self.workspace.delete_segment(params["name"])

    def _dashboard_save(self, params: dict, ctx: JobContext) -> Any:
        return self.workspace.save_dashboard(params["definition"], expected_version=params.get("expected_version"))

    def _dashboard_delete(self, params: dict, ctx: JobContext) -> Any:
        return self.workspace.delete_dashboard(params["name"], expected_version=params.get("expected_version"))

    def refresh_event_segments_soon(self, _load=None) -> None:
        """After an event load: queue one refresh of the segments with event conditions, unless one
        is queued already (loads every second would otherwise queue a refresh each)."""
        if self._event_refresh_queued:
            return
        try:
            if not event_segments(self.workspace.config):
                return
        except Exception:  # noqa: BLE001 - a configuration being changed: the next load tries again
            return
        self._event_refresh_queued = True
        self.jobs.submit("segments_refresh", {"events_only": True}, requested_by="event loader")

    def run_job(self, kind: str, params: dict, *, requested_by: str | None = None, timeout: float = 600) -> Any:
        """Queue a job and wait for its end; its result, or its error raised with its code."""
        by = str(requested_by) if requested_by is not None else None  # an email, or a Principal of the API
        job = self.jobs.wait(self.submit(kind, params, by=by)["id"], timeout)
        if job["state"] == "succeeded":
            return job["result"]
        if job["state"] in ("queued", "running"):
            raise BusyError(f"job {job['id']} ({kind}) is still {job['state']}: follow it with GET /api/jobs/{job['id']}")
        raise job_error(job)

    def erase(self, customer: str, *, dataset: str | None = None, requested_by: str | None = None,
              timeout: float = 600) -> dict:
        """Erase a customer as a job of the writer queue; its receipt (see :meth:`Workspace.erase`)."""
        ref = secrets.token_hex(8)
        self._erase_subjects[ref] = customer
        try:
            return self.run_job("privacy_erase", {"customer_ref": ref, "dataset": dataset},
                                requested_by=requested_by, timeout=timeout)
        finally:
            self._erase_subjects.pop(ref, None)

    def _privacy_erase(self, params: dict, ctx: JobContext) -> Any:
        ctx.check()
        customer = self._erase_subjects.get(params.get("customer_ref") or "")
        if customer is None:
            raise UsageError("this erase job lost its customer (the server restarted): ask for the erase again")
        actor = (self.jobs.store.get_job(ctx.job_id) or {}).get("requested_by")
        return self.workspace.erase(customer, dataset=params.get("dataset"), actor=actor,
                                    event_log=scrub_log(self.path))

    def _sync_reset(self, params: dict, ctx: JobContext) -> Any:
        name = params.get("sync")
        if name not in {s.name for s in self.workspace.config.syncs}:
            raise NotFoundError(f"unknown sync '{name}'")
        reset_sync(self.workspace, name)
        return {"sync": name, "reset": True}

    def _apply(self, params: dict, ctx: JobContext) -> Any:
        ctx.check()
        prune = bool(params.get("prune", False))
        expected = params.get("expected_version")
        if expected is not None and (isinstance(expected, bool) or not isinstance(expected, int)):
            raise UsageError("expected_version: give the configuration's version as a number (GET /api/config)")
        if params.get("path"):
            return self.workspace.apply(Path(params["path"]), prune=prune, expected_version=expected)
        if isinstance(params.get("config"), dict):
            return self.workspace.apply(params["config"], prune=prune, expected_version=expected)
        if isinstance(params.get("yaml"), str):
            config = self.workspace.parse_config_text(params["yaml"])
            return self.workspace.apply(config, prune=prune, expected_version=expected)
        raise UsageError("an apply job needs 'path' (a YAML file on the server's machine), 'config' (a mapping) "
                         "or 'yaml' (the configuration's text)")

    def _config_change(self, params: dict, ctx: JobContext) -> Any:
        """One object of the configuration created, changed or removed, then the whole configuration
        applied with every check of apply (see :meth:`Workspace.change_object`)."""
        ctx.check()
        return self.workspace.change_object(params["kind"], params["name"], params.get("spec"),
                                            expected_version=params.get("expected_version"),
                                            create=bool(params.get("create", False)))


#: threads of :meth:`WorkspaceOwner.read_soon` (asyncio's default pool has as many on two cores)
READ_THREADS = 6


class ReadThreads:
    """Threads that run reads handed over by the event loop, each with its reader of the workspace.

    A read handed to ``asyncio.to_thread`` costs the event loop's thread about 30 µs of
    bookkeeping (a concurrent future, its lock, its chaining to an asyncio future); here a read
    is one put on a queue and one callback back into the loop, about 4 µs. On two cores shared
    by 20 readers, the event loop's thread is what a status read waits for.
    """

    def __init__(self, n: int):
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._threads = [threading.Thread(target=self._work, name=f"tessera-read-{i}", daemon=True)
                         for i in range(n)]
        for t in self._threads:
            t.start()

    def run(self, fn: Callable[..., T], *args: Any) -> "asyncio.Future[T]":
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._queue.put((loop, future, fn, args))
        return future

    def stop(self) -> None:
        for _ in self._threads:
            self._queue.put(None)

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            loop, future, fn, args = item
            if future.cancelled():  # the client went away while the read waited
                continue
            try:
                result = fn(*args)
            except BaseException as exc:  # noqa: BLE001 - handed to the awaiting request
                _settle_soon(loop, future, None, exc)
            else:
                _settle_soon(loop, future, result, None)


def _settle_soon(loop, future, result, error) -> None:
    try:
        loop.call_soon_threadsafe(_settle, future, result, error)
    except RuntimeError:  # the loop was closed (the server stopped): nobody waits
        pass


def _settle(future, result, error) -> None:
    if future.cancelled():
        return
    if error is None:
        future.set_result(result)
    else:
        future.set_exception(error)


def _audited_params(params: dict) -> dict:
    """A job's parameters as the audit log keeps them: a configuration given inline (which may hold
    secrets) is named, not copied; its diff is recorded when the job ends."""
    out = dict(params or {})
    if isinstance(out.get("config"), dict):
        out["config"] = f"(a configuration given inline: {', '.join(sorted(map(str, out['config']))) or 'empty'})"
    if isinstance(out.get("yaml"), str):
        out["yaml"] = f"(a configuration given as YAML: {len(out['yaml'])} characters)"
    if isinstance(out.get("spec"), dict):
        out["spec"] = f"(the definition of {out.get('kind')} {out.get('name')}: see the diff)"
    return out


def job_error(job: dict) -> TesseraError:
    """The error of a failed or cancelled job, with the code and HTTP status of its class."""
    by_code = {cls.code: cls for cls in reversed(error_classes()) if 'code' in vars(cls) or cls is TesseraError}
    cls = by_code.get(job.get("error_code") or "", TesseraError)
    error = TesseraError.__new__(cls)
    Exception.__init__(error, job.get("error") or f"job {job['id']} {job['state']}")
    if job.get("error_code") and cls is TesseraError:
        error.code = job["error_code"]
    return error


def read_server_file(path: str | Path) -> dict | None:
    """The running server of a workspace (``url``, ``pid``, ``token``), or None."""
    file = Path(path) / SERVER_FILE
    try:
        data = json.loads(file.read_text())
    except (OSError, ValueError):
        return None
    pid = data.get("pid")
    if not isinstance(pid, int) or not psutil.pid_exists(pid) or not data.get("url") or not data.get("token"):
        return None  # a server that was killed left its file: nobody listens
    return data


def remove_server_file(path: str | Path, pid: int) -> None:
    file = Path(path) / SERVER_FILE
    try:
        if json.loads(file.read_text()).get("pid") == pid:
            file.unlink()
    except (OSError, ValueError):
        pass
