"""Cron-like schedules of source imports, pipeline runs and syncs.

A job is due when its cron schedule fired since it last started. The scheduler starts due jobs
one after the other through the :class:`~tessera.workspace.Workspace` facade; a job whose
previous start is still running (in this process or another one, as the runs table says) is
not started twice: it is skipped until that run ends. Runs missed while nothing was scheduling
are not made up one by one: a job that missed several fire times starts once, then follows its
schedule again.

The state (when each job last fired) lives in the metadata store, scope ``schedule``, so a
restarted server does not run everything again. A schedule seen for the first time starts at its
next fire time, not at once.

Times are the server's local time, like cron.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from dataclasses import dataclass
from datetime import datetime

import psutil
from croniter import croniter

from tessera.errors import TesseraError

log = logging.getLogger("tessera.schedule")
SCOPE = "schedule"


@dataclass
class Job:
    kind: str  # import | run | sync
    target: str | None  # the source or sync; None for the pipeline
    cron: str

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.target or ''}"

    @property
    def label(self) -> str:
        return {"import": f"import {self.target}", "run": "pipeline run", "sync": f"sync {self.target}"}[self.kind]

    @property
    def run_kind(self) -> str:
        """The kind of the runs this job records in the runs table."""
        return {"import": "import", "run": "pipeline", "sync": "sync"}[self.kind]


def jobs_of(config) -> list[Job]:
    """Every scheduled job of a configuration."""
    out = []
    if config.pipeline.schedule:
        out.append(Job("run", None, config.pipeline.schedule))
    out += [Job("import", s.name, s.schedule) for s in config.sources if s.schedule]
    out += [Job("sync", s.name, s.schedule) for s in config.syncs if s.schedule]
    return out


def _now() -> datetime:
    return datetime.now().astimezone().replace(microsecond=0)


class Scheduler:
    """Starts the due jobs of one workspace. ``tick()`` once, or ``start()`` a background thread."""

    def __init__(self, workspace, *, interval: float = 15.0, jobs=None):
        self.ws = workspace
        self.interval = interval
        self.jobs = jobs  # the server's writer queue (tessera.jobs.JobQueue); None: run in this thread
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._busy: set[str] = set()

    # ------------------------------------------------------------------ state
    def _state(self, job: Job, now: datetime) -> datetime:
        """The last fire time of a job (first sight: now, so that it waits for its next fire time)."""
        value = self.ws.store.get_state(SCOPE, job.key)
        if value and value.get("cron") == job.cron:
            return datetime.fromisoformat(value["fired"])
        self.ws.store.set_state(SCOPE, job.key, {"cron": job.cron, "fired": now.isoformat()})
        return now

    def next_runs(self, now: datetime | None = None) -> list[dict]:
        """Each job with its next fire time, whether it is due and how its last start went."""
        now = now or _now()
        out = []
        for job in jobs_of(self.ws.config):
            fired = self._state(job, now)
            following = croniter(job.cron, fired).get_next(datetime)
            value = self.ws.store.get_state(SCOPE, job.key) or {}
            out.append({
                "job": job.label, "kind": job.kind, "target": job.target, "schedule": job.cron,
                "next_run": (following if following > now else croniter(job.cron, now).get_next(datetime)).isoformat(),
                "due": following <= now, "running": self._running(job),
                "last_started": value.get("started"), "last_status": value.get("status"),
            })
        return sorted(out, key=lambda j: j["next_run"])

    def _running(self, job: Job) -> bool:
        if job.key in self._busy:
            return True
        for run in self.ws.store.list_runs(50):
            if run["status"] == "running" and run["kind"] == job.run_kind and (run["target"] or None) == job.target \
                    and run.get("pid") and psutil.pid_exists(run["pid"]):
                return True
        return False

    # ------------------------------------------------------------------ running
    def tick(self, now: datetime | None = None) -> list[dict]:
        """Start every due job once; return what each did (started, skipped because running...)."""
        now = now or _now()
        done = []
        for job in jobs_of(self.ws.config):
            fired = self._state(job, now)
            due_at = croniter(job.cron, fired).get_next(datetime)
            if due_at > now:
                continue
            if self._running(job):
                done.append({"job": job.label, "status": "skipped", "reason": "still running"})
                continue
            # The latest fire time not after now: missed fire times are not made up one by one.
            latest = croniter(job.cron, now).get_prev(datetime)
            self.ws.store.set_state(SCOPE, job.key, {"cron": job.cron, "fired": latest.isoformat(),
                                                     "started": _now().isoformat(), "status": "running"})
            done.append(self._execute(job, latest))
        return done

    def _execute(self, job: Job, fired: datetime) -> dict:
        self._busy.add(job.key)
        status, detail = "succeeded", ""
        try:
            if self.jobs is not None:
                status, detail = self._through_queue(job)
            elif job.kind == "run":
                result = self.ws.run()
                detail = f"run {result.run_id}"
            elif job.kind == "import":
                counts = self.ws.import_sources([job.target])
                detail = f"{counts.get(job.target, {}).get('rows_read', 0)} rows read"
            else:
                results = self.ws.sync([job.target])
                failed = [r for r in results if getattr(r, "status", "succeeded") != "succeeded"]
                status = "failed" if failed else "succeeded"
                detail = "; ".join(str(r) for r in results)
        except TesseraError as exc:
            status, detail = "failed", str(exc)
        except Exception as exc:  # a scheduler never dies of one job
            log.exception("scheduled %s failed", job.label)
            status, detail = "failed", f"{type(exc).__name__}: {exc}"
        finally:
            self._busy.discard(job.key)
        value = self.ws.store.get_state(SCOPE, job.key) or {}
        value.update({"status": status, "finished": _now().isoformat(), "detail": detail[:500]})
        self.ws.store.set_state(SCOPE, job.key, value)
        log.info("scheduled %s: %s %s", job.label, status, detail)
        return {"job": job.label, "status": status, "detail": detail, "fired": fired.isoformat()}

    def _through_queue(self, job: Job) -> tuple[str, str]:
        params = {"run": {}, "import": {"sources": [job.target]}, "sync": {"syncs": [job.target]}}[job.kind]
        queued = self.jobs.submit(job.kind, params, requested_by="schedule")
        done = self.jobs.wait(queued["id"])
        if done["state"] != "succeeded":
            return "failed", f"job {done['id']} {done['state']}: {done.get('error') or ''}"
        if job.kind == "sync":
            failed = [r for r in done.get("result") or [] if isinstance(r, dict) and r.get("status", "succeeded")
                      != "succeeded"]
            return ("failed" if failed else "succeeded"), f"job {done['id']}"
        return "succeeded", f"job {done['id']}"

    def loop(self) -> None:
        """Tick until :meth:`stop`; used by the server's background thread and ``tessera schedule run --loop``."""
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception:  # e.g. the metadata store briefly unavailable: try again next tick
                log.exception("scheduler tick failed")
            finally:
                if self.jobs is None:
                    self.ws.close()  # release the warehouse between ticks: the CLI may need it
            self._stop.wait(self.interval)

    def start(self) -> threading.Thread:
        self._thread = threading.Thread(target=self.loop, name="tessera-scheduler", daemon=True)
        self._thread.start()
        return self._thread

    def stop(self, timeout: float | None = None) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)


class SchedulerService:
    """The scheduler as a service of the server: due imports, runs and syncs become jobs of the
    server's writer queue (``owner.jobs``), so they never meet another writer."""

    def __init__(self, owner, *, interval: float = 15.0):
        self.owner = owner
        self.interval = interval
        self.scheduler: Scheduler | None = None

    async def start(self) -> None:
        self.scheduler = Scheduler(self.owner.workspace, interval=self.interval, jobs=self.owner.jobs)
        self.scheduler.start()

    async def stop(self) -> None:
        if self.scheduler is not None:
            self.scheduler._stop.set()
            # A job in progress finishes first (a run publishes or leaves the last good state).
            await asyncio.to_thread(self.scheduler.stop, 600)
