"""Fixtures of the database source tests."""

from __future__ import annotations

import pytest

from tessera.workspace import Workspace


@pytest.fixture
def workspaces():
    """Closes the workspaces a test opens."""
    opened: list[Workspace] = []

    def keep(ws: Workspace) -> Workspace:
        opened.append(ws)
        return ws

    yield keep
    for ws in opened:
        ws.close()
