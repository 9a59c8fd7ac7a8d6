"""What every command of the CLI shares: the app, the consoles, the workspace, the server.

A command opens its workspace with :func:`open_workspace`. When a server runs on the workspace
(``server.json``), the server owns it: writes are sent there as jobs (:func:`follow_job` prints
their progress bars), and read commands are answered by the server itself, which runs the same
command on a reader of its workspace (:func:`forward`).
"""

from __future__ import annotations

import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

from tessera.errors import BusyError, TesseraError, WorkspaceError

if TYPE_CHECKING:
    from tessera.workspace import Workspace

# The workspace, the engines and the HTTP client are imported by the commands that use them, so
# that ``tessera --help`` and the commands' own help load only the CLI (tests/test_cli_startup.py).

app = typer.Typer(help="Tessera, the open-source Customer Data Platform.", no_args_is_help=True,
                  pretty_exceptions_enable=False, add_completion=False)
console = Console()
err = Console(stderr=True)
STATE: dict = {"debug": False, "workspace": None, "reader": None}

WorkspaceOpt = typer.Option(
    None, "--workspace", "-w", help="Workspace folder (default: $TESSERA_WORKSPACE or the current folder)."
)


@app.callback()
def _main(debug: bool = typer.Option(False, "--debug", help="Show tracebacks on errors."),
          workspace: Optional[Path] = WorkspaceOpt) -> None:
    STATE["debug"] = debug
    if STATE.get("reader") is None:
        STATE["workspace"] = workspace


def ws_path() -> Path:
    return Path(STATE.get("workspace") or os.environ.get("TESSERA_WORKSPACE") or ".")


@contextmanager
def open_workspace() -> Iterator[Workspace]:
    """The workspace of the command: the server's reader when the server runs the command, else opened here."""
    if STATE.get("reader") is not None:
        yield STATE["reader"]
        return
    from tessera.workspace import Workspace

    with Workspace.open(ws_path()) as ws:
        yield ws


def progress_bars() -> tuple[Progress, Callable[[str, str, int, int], None]]:
    bar = Progress(TextColumn("[bold]{task.description:<8}"), TextColumn("{task.fields[label]:<24}"), BarColumn(),
                   TaskProgressColumn(), TimeElapsedColumn(), console=console, transient=False)
    tasks: dict[str, int] = {}

    def update(step: str, label: str, done: int, total: int) -> None:
        if step not in tasks:
            tasks[step] = bar.add_task(step, total=max(total, 1), label=label)
        bar.update(tasks[step], completed=done, total=max(total, 1), label=label)

    return bar, update


# ---------------------------------------------------------------------- the running server
class ServerClient:
    """The REST API of the server that owns the workspace, with its local credential."""

    def __init__(self, info: dict):
        self.url = info["url"].rstrip("/")
        self.pid = info["pid"]
        import httpx

        self._http = httpx.Client(base_url=self.url, timeout=60,
                                  headers={"Authorization": f"Bearer {info['token']}"}, trust_env=False)

    def call(self, method: str, path: str, **kwargs) -> dict | list:
        import httpx

        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise WorkspaceError(f"the server of this workspace (pid {self.pid}, {self.url}) does not answer ({exc}); "
                                 "stop it, or wait for it to start") from None
        body = response.json() if response.headers.get("content-type", "").startswith("application/json") else {}
        if response.status_code >= 400:
            error = TesseraError(body.get("error") or f"the server answered {response.status_code}")
            error.code, error.status = body.get("code", "error"), response.status_code
            raise error
        return body


def server() -> ServerClient | None:
    """The server that owns the workspace, if one runs (None inside the server itself)."""
    if STATE.get("reader") is not None:
        return None
    from tessera.api.owner import read_server_file

    info = read_server_file(ws_path())
    return ServerClient(info) if info else None


def follow_job(client: ServerClient, kind: str, params: dict, *, bars: bool = True) -> dict:
    """Queue a job on the server and show its progress until it ends; returns the finished job.

    Raises:
        TesseraError: the job failed or was cancelled (its message).
    """
    job = client.call("POST", "/api/jobs", json={"kind": kind, "params": params})
    console.print(f"Job {job['id']} ({kind}) sent to the server at {client.url}", highlight=False)
    bar, update = progress_bars()
    shown_queue = False
    with (bar if bars else _nothing()):
        while True:
            job = client.call("GET", f"/api/jobs/{job['id']}")
            if job["state"] == "queued" and not shown_queue:
                console.print("Waiting for the job before it to finish ...")
                shown_queue = True
            for step in (job.get("progress") or {}).get("steps", []):
                if bars:
                    update(step["step"], step["label"], step["done"], step["total"])
            if job["state"] not in ("queued", "running"):
                break
            time.sleep(0.2)
    if job["state"] != "succeeded":
        error = (BusyError if job["state"] == "interrupted" else TesseraError)(
            job.get("error") or f"job {job['id']} {job['state']}")
        error.result = job.get("result")
        raise error
    return job


@contextmanager
def _nothing():
    yield
