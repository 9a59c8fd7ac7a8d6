"""A ``tessera serve`` of a workspace in a child process, for the benchmarks that read through it."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(ws_dir: Path, *, wait_s: float = 120) -> tuple[subprocess.Popen, str, str]:
    """Start ``tessera serve`` on ``ws_dir`` (a free loopback port, no schedules) and wait until it
    answers; returns (the process, its URL, the local credential of its server file). The process
    is stopped when it does not answer in ``wait_s`` seconds."""
    import httpx

    url = f"http://127.0.0.1:{free_port()}"
    server = subprocess.Popen([sys.executable, "-m", "tessera.cli.main", "-w", str(ws_dir), "serve", "--port",
                               url.rsplit(":", 1)[1], "--log-level", "warning", "--no-schedules"], cwd=ROOT,
                              stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if (ws_dir / "server.json").exists():
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    return server, url, json.loads((ws_dir / "server.json").read_text())["token"]
            except httpx.HTTPError:
                pass
        time.sleep(0.1)
    server.terminate()
    server.wait(timeout=300)
    raise SystemExit("the server did not start")
