"""Run the server of a workspace with uvicorn (uvloop + httptools).

    python -m tessera.collect.server --workspace DIR --port 8080

One worker process, which owns the workspace while it runs: it opens the warehouse and the
metadata store once, runs every write as a job of one writer queue, and serves reads beside it
(:mod:`tessera.api.owner`). The event log has one writer, and one process with group commit keeps
up with tens of thousands of events per second (see ``bench/bench_collect.py``); the loader is a
thread with a warehouse connection of its own. SIGINT/SIGTERM stop the server cleanly: requests
in flight are answered, the running job finishes, the log is synced, and the loader loads what
is left before it ends. A server killed with SIGKILL leaves the last publication intact; the
next start marks its unfinished jobs ``interrupted``.
"""

from __future__ import annotations

import argparse
import ipaddress
import sys
from pathlib import Path

import uvicorn

from tessera.api.app import create_app
from tessera.collect.loader import configure_logging, log_directory
from tessera.collect.log import check_free
from tessera.errors import TesseraError, UsageError
from tessera.users import Users
from tessera.workspace import Workspace


SWITCH_INTERVAL = 0.0005  # seconds; see serve()


def is_loopback(host: str) -> bool:
    """Whether ``host`` is reachable from this machine only (127.0.0.0/8, ::1, localhost)."""
    if host.strip().lower() in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_exposure(workspace_path: str | Path, host: str) -> None:
    """Refuse to listen beyond this machine while nobody can sign in as admin.

    Raises:
        UsageError: ``host`` is not a loopback address and the workspace has no admin.
    """
    if is_loopback(host):
        return
    with Workspace.open(workspace_path) as ws:
        has_admin = Users(ws.store).has_admin()
    if not has_admin:
        raise UsageError(f"--host {host} opens the server beyond this machine, and the workspace has no admin yet: "
                         "create one first with: tessera users create-admin --email you@example.com --password-stdin "
                         "(or serve on 127.0.0.1)")


def serve(workspace_path: str | Path, host: str = "127.0.0.1", port: int = 8080, workers: int = 1, *,
          log_level: str = "info", access_log: bool = False, loader_interval: float = 1.0,
          schedules: bool = True, cli_runner=None) -> None:
    """Serve a workspace: the event collection API at ``/v1``, the REST API at ``/api``, the schedules.

    Args:
        workspace_path: the workspace folder.
        host: the address to listen on (``0.0.0.0`` for every interface).
        port: the TCP port.
        workers: must be 1: one process owns the event log (it takes a lock on it).
        log_level: uvicorn's log level (critical, error, warning, info, debug).
        access_log: log every request (costs throughput).
        loader_interval: seconds between two loads of collected events into the warehouse.
        schedules: start the due scheduled imports, runs and syncs (see :mod:`tessera.schedule`).
        cli_runner: answers the read commands of a CLI on this workspace (``POST /api/cli``);
            ``tessera serve`` passes it.

    Raises:
        WorkspaceError: the folder is not a workspace.
        ValueError: ``workers`` is not 1.
    """

    if workers != 1:
        raise ValueError(f"workers={workers}: the server runs one worker process, which owns the event log "
                         "(one process with group commit takes tens of thousands of events per second)")
    check_exposure(workspace_path, host)
    configure_logging(log_level)
    check_free(log_directory(Path(workspace_path).resolve()))  # a second server on the workspace stops here
    # Readers, the event loader and a run's Python steps share one interpreter lock: a thread that
    # waits for it gets it after at most this interval (5 ms by default). A read takes and gives
    # back the lock a dozen times (each engine call releases it), so during a run the default
    # interval alone added tens of milliseconds to a read.
    sys.setswitchinterval(SWITCH_INTERVAL)
    shown = "127.0.0.1" if host in ("0.0.0.0", "", "::") else host
    app = create_app(workspace_path, loader_interval=loader_interval, schedules=schedules,
                     url=f"http://{shown}:{port}", cli_runner=cli_runner)
    uvicorn.run(app, host=host, port=port, loop="uvloop", http="httptools", log_level=log_level,
                access_log=access_log, server_header=False, timeout_graceful_shutdown=30)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tessera.collect.server", description=serve.__doc__.splitlines()[0])
    parser.add_argument("--workspace", "-w", required=True, help="the workspace folder")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", "-p", type=int, default=8080, help="TCP port (default 8080)")
    parser.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    parser.add_argument("--access-log", action="store_true", help="log every request")
    parser.add_argument("--loader-interval", type=float, default=1.0,
                        help="seconds between two loads of events into the warehouse (default 1)")
    parser.add_argument("--no-schedules", action="store_true", help="do not start the scheduled jobs")
    args = parser.parse_args(argv)
    try:
        serve(args.workspace, args.host, args.port, log_level=args.log_level, access_log=args.access_log,
              loader_interval=args.loader_interval, schedules=not args.no_schedules)
    except TesseraError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
