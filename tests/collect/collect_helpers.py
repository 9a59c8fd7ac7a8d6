"""Helpers of the event collection tests: workspaces with an http connection, real servers, reads.

A server is a real process (``python -m tessera.api.server``) on 127.0.0.1 and a free port;
tests talk to it with the stock Segment and RudderStack clients or with httpx. Waits are
bounded polls, never sleeps of a guessed length.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import httpx

from tessera.errors import WorkspaceError
from tessera.workspace import Workspace

WRITE_KEY = "wk_test"
ROOT = Path(__file__).resolve().parents[2]


def wait_for(condition: Callable[[], object], *, timeout: float = 60.0, interval: float = 0.05, what: str = "it"):
    """Poll ``condition`` until it returns something truthy (returned), or fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A collection server process serving one workspace."""

    def __init__(self, workspace: Path, log_path: Path, loader_interval: float = 0.2):
        self.workspace = workspace
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._log = open(log_path, "ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tessera.api.server", "--workspace", str(workspace), "--port", str(self.port),
             "--loader-interval", str(loader_interval)],
            cwd=ROOT, stdout=self._log, stderr=subprocess.STDOUT,
        )
        self.log_path = log_path
        wait_for(self._up, timeout=60, what=f"the server to start (log: {log_path})")

    def _up(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"the server exited with {self.process.returncode}:\n{self.log_path.read_text()}")
        try:
            return httpx.get(f"{self.url}/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def health(self) -> dict:
        return httpx.get(f"{self.url}/health", timeout=10).json()

    def wait_loaded(self, timeout: float = 60.0) -> dict:
        """Wait until everything in the log is in the warehouse."""
        def loaded():
            status = self.health()["collect"]
            return status if status["loaded_offset"] >= status["log_end"] else None

        return wait_for(loaded, timeout=timeout, what="the loader to load the log")

    def loader(self):
        """The loader child process (psutil), once it runs."""
        import psutil

        def find():
            for child in psutil.Process(self.process.pid).children():
                try:
                    if child.status() == psutil.STATUS_ZOMBIE:
                        continue
                    command = " ".join(child.cmdline())
                except psutil.NoSuchProcess:
                    continue
                if "multiprocessing.spawn" in command and "resource_tracker" not in command:
                    return child
            return None

        return wait_for(find, what="the loader process")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs (the loader child, orphaned, finishes on its own)."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()
        self._log.close()


def make_workspace(path: Path, connections: list[dict] | None = None) -> Path:
    ws = Workspace.init(path)
    ws.apply({"connections": connections or [{"name": "web", "type": "http", "write_key": WRITE_KEY}]})
    ws.close()
    return path


def query_warehouse(workspace: Path, fn: Callable, timeout: float = 60.0):
    """Run ``fn(adapter)`` holding the workspace write lock (as the loader does), retrying while busy."""
    def attempt():
        try:
            ws = Workspace.open(workspace)
            try:
                with ws.writing():
                    try:
                        return (fn(ws.adapter),)
                    finally:
                        ws.close()
            finally:
                ws.close()
        except WorkspaceError:
            return None

    return wait_for(attempt, timeout=timeout, what="the workspace to be free")[0]


def events(workspace: Path) -> list[dict]:
    """Every row of ``_tessera_events`` (none when the table does not exist yet)."""
    def read(adapter):
        if not adapter.exists("_tessera_events"):
            return []
        return adapter.to_arrow(adapter.table("_tessera_events")).to_pylist()

    return query_warehouse(workspace, read)


def rejects(workspace: Path) -> list[dict]:
    def read(adapter):
        if not adapter.exists("_tessera_events_rejects"):
            return []
        return adapter.to_arrow(adapter.table("_tessera_events_rejects")).to_pylist()

    return query_warehouse(workspace, read)


def by_id(rows: list[dict]) -> dict[str, dict]:
    return {r["message_id"]: r for r in rows}
