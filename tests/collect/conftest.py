"""Fixtures of the event collection tests (helpers in collect_helpers.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from collect_helpers import Server, make_workspace


@pytest.fixture
def make_server(tmp_path):
    """Start servers on workspaces; every one still running is stopped at the end of the test."""
    started: list[Server] = []

    def start(workspace: Path, **kwargs) -> Server:
        server = Server(workspace, tmp_path / f"server-{len(started)}.log", **kwargs)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory):
    """One server for the tests of a module that only add events of their own (unique ids)."""
    base = tmp_path_factory.mktemp("collect")
    server = Server(make_workspace(base / "ws"), base / "server.log")
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch):
    # The clients use requests, which honours proxy variables: loopback must be reached directly.
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    yield
