"""Helpers of the event collection tests: workspaces with an http connection, real servers, reads.

A server is a real process (``tessera serve``) on 127.0.0.1 and a free port; tests talk to it
with the stock Segment and RudderStack clients or with httpx. While it runs it owns the
workspace, so the tests read the warehouse through its API with its local credential. Waits are
bounded polls, never sleeps of a guessed length.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Callable

import httpx

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
            [sys.executable, "-m", "tessera.cli.main", "-w", str(workspace), "serve", "--port", str(self.port),
             "--loader-interval", str(loader_interval)],
            cwd=ROOT, stdout=self._log, stderr=subprocess.STDOUT,
        )
        self.log_path = log_path
        wait_for(self._up, timeout=60, what=f"the server to start (log: {log_path})")
        self.token = json.loads((workspace / "server.json").read_text())["token"]

    def _up(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"the server exited with {self.process.returncode}:\n{self.log_path.read_text()}")
        try:
            return httpx.get(f"{self.url}/health", timeout=2).status_code == 200 and \
                (self.workspace / "server.json").exists()
        except httpx.HTTPError:
            return False

    def api(self, method: str, path: str, **kwargs) -> httpx.Response:
        """A REST API request with the server's local credential (what the CLI sends)."""
        return httpx.request(method, f"{self.url}{path}", headers={"Authorization": f"Bearer {self.token}"},
                             timeout=60, **kwargs)

    def health(self) -> dict:
        return httpx.get(f"{self.url}/health", timeout=10).json()

    def wait_loaded(self, timeout: float = 60.0) -> dict:
        """Wait until everything in the log is in the warehouse."""
        def loaded():
            status = self.health()["collect"]
            return status if status["loaded_offset"] >= status["log_end"] else None

        return wait_for(loaded, timeout=timeout, what="the loader to load the log")

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
        """SIGKILL: no shutdown code runs; the next start loads what the log holds."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()
        self._log.close()


def make_workspace(path: Path, connections: list[dict] | None = None) -> Path:
    ws = Workspace.init(path)
    ws.apply({"connections": connections or [{"name": "web", "type": "http", "write_key": WRITE_KEY}]})
    ws.close()
    return path


_TIMES = {"timestamp", "original_timestamp", "sent_at", "received_at"}


def _server_of(workspace: Path) -> tuple[str, str] | None:
    try:
        info = json.loads((Path(workspace) / "server.json").read_text())
        return info["url"], info["token"]
    except (OSError, ValueError):
        return None


def _read(workspace: Path, rejected: bool) -> list[dict]:
    """Collected events (or refused messages): through the server's API while one owns the workspace."""
    server = _server_of(workspace)
    if server is not None:
        url, token = server
        rows, page = [], 10_000
        while True:  # the API answers pages of at most 10,000 rows, newest first
            response = httpx.get(f"{url}/api/events", params={"limit": page, "offset": len(rows), "rejected": rejected},
                                 headers={"Authorization": f"Bearer {token}"}, timeout=60)
            assert response.status_code == 200, response.text
            rows += response.json()
            if len(response.json()) < page:
                break
        for row in rows:
            for key in _TIMES & row.keys():
                if isinstance(row[key], str):
                    row[key] = datetime.fromisoformat(row[key])
        return rows
    with Workspace.open(workspace) as ws:
        return ws.collected_events(limit=10_000_000, rejected=rejected)


def events(workspace: Path) -> list[dict]:
    """Every row of ``_tessera_events`` (none when the table does not exist yet)."""
    return _read(workspace, False)


def rejects(workspace: Path) -> list[dict]:
    return _read(workspace, True)


def by_id(rows: list[dict]) -> dict[str, dict]:
    return {r["message_id"]: r for r in rows}


def apply_through(server: Server, config: dict) -> dict:
    """Apply a configuration as a job of the server that owns the workspace; the finished job."""
    job = server.api("POST", "/api/jobs", json={"kind": "apply", "params": {"config": config}}).json()
    done = server.api("GET", f"/api/jobs/{job['id']}", params={"wait": 30}).json()
    assert done["state"] == "succeeded", done
    return done
