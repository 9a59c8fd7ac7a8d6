"""The writer queue: every write of a server-owned workspace is a job run by one thread.

While ``tessera serve`` runs, it owns the workspace (the warehouse file and the metadata store).
Runs, imports, syncs and ``apply`` are *jobs*: each has an id, a kind, a state (queued, running,
succeeded, failed, cancelled, interrupted), progress (step, label, done, total), a log and a
result. One thread runs them one after the other, so two writers never meet; reads are served
beside it from the last published state. A second run asked while one runs waits in the queue.

A job is recorded in the metadata store (table ``jobs``) when it is queued and at each change of
state; its progress is written at most a few times a second. A server killed while a job ran
leaves it ``running`` in the store: the next start marks it ``interrupted``
(:meth:`JobQueue.start`), and the run it was doing leaves the previous publication in place.

Cancelling a queued job removes it from the queue; cancelling a running job stops it at its next
progress report, or at once when the engine can interrupt the statement it runs (``on_cancel``).

Examples:
    >>> queue = JobQueue(store, {"run": lambda params, ctx: ws.run(progress=ctx.progress)})  # doctest: +SKIP
    >>> job = queue.submit("run", {})                                                          # doctest: +SKIP
    >>> queue.wait(job["id"])["state"]                                                         # doctest: +SKIP
    'succeeded'
"""

from __future__ import annotations

import logging
import os
import queue as _queue
import threading
import time
from dataclasses import asdict, is_dataclass
from datetime import datetime, timezone
from typing import Any, Callable

from tessera.errors import JobCancelled, NotFoundError, TesseraError, UsageError

log = logging.getLogger("tessera.jobs")

FINAL_STATES = frozenset({"succeeded", "failed", "cancelled", "interrupted"})
PROGRESS_WRITE_S = 0.3  # progress is written to the store at most this often
LOG_LINES = 200  # a job keeps its last lines of log

Handler = Callable[[dict, "JobContext"], Any]


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _jsonable(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return _jsonable(asdict(value))
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if hasattr(value, "to_dict"):
        return _jsonable(value.to_dict())
    return str(value)


class JobContext:
    """What a running job reports to, and asks whether it was cancelled."""

    def __init__(self, queue: "JobQueue", job_id: int):
        self._queue = queue
        self.job_id = job_id
        self.cancelled = threading.Event()
        self.steps: dict[str, dict] = {}
        self.lines: list[str] = []
        self._written = 0.0

    def progress(self, step: str, label: str, done: int, total: int) -> None:
        """The progress callback of runs, imports and syncs; raises JobCancelled once cancelled."""
        self.check()
        self.steps[step] = {"step": step, "label": label, "done": int(done), "total": int(total)}
        self.steps["_current"] = {"step": step}
        now = time.monotonic()
        if now - self._written >= PROGRESS_WRITE_S or done >= total:
            self._written = now
            self._queue._save_progress(self)

    __call__ = progress  # a context is itself a progress callback that knows its cancel flag

    def log(self, line: str) -> None:
        self.lines.append(f"{_now().strftime('%H:%M:%S')} {line}")
        del self.lines[:-LOG_LINES]

    def check(self) -> None:
        if self.cancelled.is_set():
            raise JobCancelled(f"job {self.job_id} was cancelled; the last publication is left in place")

    def snapshot(self) -> dict:
        current = self.steps.get("_current", {}).get("step")
        steps = [v for k, v in self.steps.items() if k != "_current"]
        return {"step": current, "steps": steps}


class JobQueue:
    """One writer thread running the jobs of one workspace in order.

    Args:
        store: the workspace's metadata store (jobs are recorded there).
        handlers: job kind -> ``handler(params, context)``; its return value (a dataclass, a dict,
            a list) becomes the job's result.
        on_cancel: called when a running job is cancelled, e.g. to interrupt the engine's statement.
        on_end: called with the finished job (its final state, result, error), e.g. to audit it.
    """

    def __init__(self, store, handlers: dict[str, Handler], *, on_cancel: Callable[[], None] | None = None,
                 on_end: Callable[[dict], None] | None = None):
        self.store = store
        self.handlers = dict(handlers)
        self.on_cancel = on_cancel
        self.on_end = on_end
        self._pending: _queue.Queue[int | None] = _queue.Queue()
        self._running: JobContext | None = None
        self._cancel_requested: set[int] = set()
        self._lock = threading.Lock()
        self._done = threading.Condition(self._lock)
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> list[int]:
        """Mark the jobs left by a previous server as interrupted, then start the writer thread.

        Returns the ids of the interrupted jobs.
        """
        interrupted = self.store.interrupt_jobs(
            "the server stopped before this job finished (killed or crashed); the last publication is intact")
        if interrupted:
            log.warning("jobs %s of a previous server were marked interrupted", interrupted)
        self._thread = threading.Thread(target=self._loop, name="tessera-writer", daemon=True)
        self._thread.start()
        return interrupted

    def stop(self, timeout: float | None = None) -> None:
        """Let the running job finish, cancel the queued ones, end the writer thread."""
        for job in self.store.list_jobs(1000, states=("queued",)):
            self.cancel(job["id"], reason="the server stopped before this job started")
        self._pending.put(None)
        if self._thread is not None:
            self._thread.join(timeout)

    # ------------------------------------------------------------------ asking
    def submit(self, kind: str, params: dict | None = None, *, requested_by: str | None = None) -> dict:
        """Queue a job; returns it (state ``queued``)."""
        if kind not in self.handlers:
            raise UsageError(f"unknown job kind '{kind}' (kinds: {', '.join(sorted(self.handlers))})")
        job = self.store.add_job(kind, params or {}, requested_by=requested_by, server_pid=os.getpid())
        self._pending.put(job["id"])
        return self._public(job)

    def get(self, job_id: int) -> dict:
        job = self.store.get_job(job_id)
        if job is None:
            raise NotFoundError(f"no job {job_id}: list the jobs with GET /api/jobs")
        return self._public(job)

    def list(self, limit: int = 50) -> list[dict]:
        return [self._public(j) for j in self.store.list_jobs(limit)]

    def cancel(self, job_id: int, *, reason: str = "cancelled on request") -> dict:
        """Cancel a queued job at once, or a running one at its next step; a finished job is left as it is."""
        with self._lock:
            job = self.store.get_job(job_id)
            if job is None:
                raise NotFoundError(f"no job {job_id}: list the jobs with GET /api/jobs")
            if job["state"] == "queued":
                self._cancel_requested.add(job_id)
                job = self.store.update_job(job_id, state="cancelled", finished_at=_now(), error=reason,
                                            error_code="cancelled")
                self._done.notify_all()
            elif job["state"] == "running" and self._running is not None and self._running.job_id == job_id:
                self._running.cancelled.set()
                self._running.log(reason)
                if self.on_cancel is not None:
                    try:
                        self.on_cancel()
                    except Exception:  # noqa: BLE001 - the flag stops the job at its next step anyway
                        log.exception("could not interrupt the engine for job %s", job_id)
        return self._public(job)

    def wait(self, job_id: int, timeout: float | None = None) -> dict:
        """Block until the job is in a final state (or the timeout passes); returns it."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            while True:
                job = self.store.get_job(job_id)
                if job is None:
                    raise NotFoundError(f"no job {job_id}")
                if job["state"] in FINAL_STATES:
                    return self._public(job)
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return self._public(job)
                self._done.wait(0.5 if left is None else min(left, 0.5))

    @property
    def busy(self) -> bool:
        return self._running is not None

    # ------------------------------------------------------------------ the writer thread
    def _loop(self) -> None:
        while True:
            job_id = self._pending.get()
            if job_id is None:
                return
            with self._lock:
                if job_id in self._cancel_requested:
                    self._cancel_requested.discard(job_id)
                    continue
                job = self.store.get_job(job_id)
                if job is None or job["state"] != "queued":
                    continue
                ctx = JobContext(self, job_id)
                self._running = ctx
                self.store.update_job(job_id, state="running", started_at=_now())
            self._execute(job, ctx)

    def _execute(self, job: dict, ctx: JobContext) -> None:
        state, result, error, code = "succeeded", None, None, None
        started = time.monotonic()
        ctx.log(f"{job['kind']} started")
        try:
            result = _jsonable(self.handlers[job["kind"]](job["params"] or {}, ctx))
        except BaseException as exc:  # noqa: BLE001 - a job's failure is its result, the thread goes on
            if ctx.cancelled.is_set():
                state, code = "cancelled", "cancelled"
                error = f"job {job['id']} was cancelled; the last publication is left in place"
            elif isinstance(exc, TesseraError):
                state, code, error = "failed", exc.code, str(exc)
            else:
                log.exception("job %s (%s) failed", job["id"], job["kind"])
                state, code, error = "failed", "internal_error", f"{type(exc).__name__}: {exc}"
            result = _jsonable(getattr(exc, "result", None))
            if not isinstance(exc, Exception):
                raise
        finally:
            ctx.log(f"{job['kind']} {state if error is None else state + ': ' + error.splitlines()[0]}"
                    f" in {time.monotonic() - started:.2f} s")
            with self._lock:
                finished = self.store.update_job(job["id"], state=state, result=result, error=error,
                                                 error_code=code, finished_at=_now(), progress=ctx.snapshot(),
                                                 log=ctx.lines)
                self._running = None
                # Before any waiter sees the end (waiters read under this lock): whoever was told
                # the job ended finds its audit line.
                if self.on_end is not None:
                    try:
                        self.on_end(finished)
                    except Exception:  # noqa: BLE001 - the job is done; its audit line is best effort
                        log.exception("could not record the end of job %s", job["id"])
                self._done.notify_all()

    def _save_progress(self, ctx: JobContext) -> None:
        try:
            self.store.update_job(ctx.job_id, progress=ctx.snapshot(), log=ctx.lines)
        except Exception:  # noqa: BLE001 - progress is best effort; the job goes on
            log.exception("could not record the progress of job %s", ctx.job_id)

    def _public(self, job: dict) -> dict:
        """A job as the API shows it (live progress for the running one)."""
        out = {k: job.get(k) for k in ("id", "kind", "params", "state", "progress", "log", "result", "error",
                                      "error_code", "requested_by", "created_at", "started_at", "finished_at")}
        running = self._running
        if running is not None and running.job_id == job["id"] and job["state"] == "running":
            out["progress"] = running.snapshot()
            out["log"] = list(running.lines)
        for key in ("created_at", "started_at", "finished_at"):
            if isinstance(out[key], datetime):
                out[key] = out[key].isoformat()
        return out
