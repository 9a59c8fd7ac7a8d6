"""The server and its jobs: ``tessera serve``, ``tessera jobs list | show | cancel``."""

from __future__ import annotations

import typer
from rich.markup import escape
from rich.table import Table

from tessera.cli.common import app, console, server, ws_path
from tessera.cli.forward import run_in_server
from tessera.errors import UsageError, WorkspaceError


@app.command()
def serve(host: str = typer.Option("127.0.0.1", help="Address to listen on (0.0.0.0: every interface)."),
          port: int = typer.Option(8080, help="TCP port."),
          schedules: bool = typer.Option(True, "--schedules/--no-schedules",
                                         help="Start the scheduled imports, runs and syncs."),
          access_log: bool = typer.Option(False, help="Log every request."),
          loader_interval: float = typer.Option(1.0, help="Seconds between two loads of collected events."),
          log_level: str = typer.Option("info", help="critical, error, warning, info or debug.")) -> None:
    """Serve the workspace: the REST API (/api), the event collection API (/v1) and the schedules.

    While it runs, the server owns the workspace: other tessera commands on it are sent to it.
    A --host other than loopback needs an admin first (tessera users create-admin).
    """
    from tessera.api.server import check_exposure
    from tessera.api.server import serve as serve_workspace  # uvicorn is loaded only to serve
    from tessera.workspace import Workspace

    path = ws_path()
    running = server()
    if running is not None:
        raise WorkspaceError(f"a server already serves {path.resolve()} at {running.url} (pid {running.pid})")
    Workspace.open(path).close()
    check_exposure(path, host)
    console.print(f"Serving {path.resolve()} on http://{host}:{port} (web app at /, REST API at /api, events at /v1)")
    serve_workspace(path, host=host, port=port, access_log=access_log, schedules=schedules,
                    loader_interval=loader_interval, log_level=log_level, cli_runner=run_in_server)


jobs_app = typer.Typer(help="Jobs of the server's writer queue: runs, imports, syncs, apply.", no_args_is_help=True)
app.add_typer(jobs_app, name="jobs")


def _client():
    client = server()
    if client is None:
        raise UsageError(f"no server runs on {ws_path().resolve()}: jobs exist while one runs (tessera serve)")
    return client


@jobs_app.command("list")
def jobs_list(limit: int = typer.Option(20, help="Jobs to show.")) -> None:
    """List the latest jobs of the running server, newest first."""
    jobs = _client().call("GET", "/api/jobs", params={"limit": limit})
    t = Table(title="Jobs")
    for col in ("job", "kind", "state", "step", "created", "error"):
        t.add_column(col, no_wrap=col == "job")
    for j in jobs:
        step = (j.get("progress") or {}).get("step") or ""
        t.add_row(str(j["id"]), j["kind"], j["state"], step, j["created_at"][:19], escape((j.get("error") or "")[:80]))
    console.print(t)


@jobs_app.command("show")
def jobs_show(job_id: int = typer.Argument(..., help="Job id.")) -> None:
    """Show a job: state, progress per step and log."""
    j = _client().call("GET", f"/api/jobs/{job_id}")
    console.print(f"Job {j['id']} ({j['kind']}): {j['state']}", highlight=False)
    for s in (j.get("progress") or {}).get("steps", []):
        console.print(f"  {s['step']:<8} {s['label']:<24} {s['done']}/{s['total']}", markup=False, highlight=False)
    for line in j.get("log") or []:
        console.print(f"  {line}", markup=False, highlight=False)
    if j.get("error"):
        console.print(f"Error: {j['error']}", markup=False, highlight=False)


@jobs_app.command("cancel")
def jobs_cancel(job_id: int = typer.Argument(..., help="Job id.")) -> None:
    """Cancel a queued or running job (the last publication is left in place)."""
    j = _client().call("POST", f"/api/jobs/{job_id}/cancel")
    console.print(f"Job {j['id']}: {j['state']}" + (" (stops at its next step)" if j["state"] == "running" else ""),
                  highlight=False)
