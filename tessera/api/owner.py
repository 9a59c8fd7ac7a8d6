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

import json
import logging
import os
import secrets
from datetime import date
from pathlib import Path
from typing import Any, Callable, TypeVar

import psutil

from tessera.errors import NotFoundError, UsageError
from tessera.jobs import JobContext, JobQueue
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
        self.jobs = JobQueue(self.workspace.store, {
            "run": self._run, "import": self._import, "sync": self._sync, "apply": self._apply,
            "sync_reset": self._sync_reset,
        }, on_cancel=self.workspace.adapter.interrupt)
        self._started = False

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        interrupted = self.jobs.start()
        if interrupted:
            log.warning("%d job(s) of a previous server were interrupted: %s", len(interrupted), interrupted)
        self._started = True

    def stop(self) -> None:
        if self._started:
            self.jobs.stop(timeout=600)  # a running job finishes: a run publishes or leaves the last state
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

    # ------------------------------------------------------------------ reading
    def read(self, fn: Callable[[Workspace], T]) -> T:
        """``fn(workspace)`` on a reader of the workspace (call it from a worker thread)."""
        return fn(self.workspace.reader())

    # ------------------------------------------------------------------ jobs
    def _run(self, params: dict, ctx: JobContext) -> Any:
        as_of = params.get("as_of")
        return self.workspace.run(progress=ctx, import_files=bool(params.get("import_files", True)),
                                  as_of=date.fromisoformat(as_of) if as_of else None)

    def _import(self, params: dict, ctx: JobContext) -> Any:
        return self.workspace.import_sources(params.get("sources") or None, progress=ctx)

    def _sync(self, params: dict, ctx: JobContext) -> Any:
        ctx.check()
        return self.workspace.sync(params.get("syncs") or None, dry_run=bool(params.get("dry_run", False)))

    def _sync_reset(self, params: dict, ctx: JobContext) -> Any:
        name = params.get("sync")
        if name not in {s.name for s in self.workspace.config.syncs}:
            raise NotFoundError(f"unknown sync '{name}'")
        reset_sync(self.workspace, name)
        return {"sync": name, "reset": True}

    def _apply(self, params: dict, ctx: JobContext) -> Any:
        ctx.check()
        if params.get("path"):
            return self.workspace.apply(Path(params["path"]))
        if isinstance(params.get("config"), dict):
            return self.workspace.apply(params["config"])
        raise UsageError("an apply job needs 'path' (a YAML file on the server's machine) or 'config' (a mapping)")


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
