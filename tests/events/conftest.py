"""Fixtures of the event tests (helpers in event_helpers.py); workspaces come from
``make_workspace`` in tests/conftest.py, on every engine (the ``engine`` fixture)."""

from __future__ import annotations

import pytest


@pytest.fixture
def make_workspace(make_workspace, engine):
    """The shared factory, on the engine of the test (every event test runs on every engine)."""
    return make_workspace
