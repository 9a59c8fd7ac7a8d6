"""Fixtures of the database source tests."""

from __future__ import annotations

import pytest
from db_helpers import workspace_config

from tessera.workspace import Workspace


@pytest.fixture
def db_workspace(make_workspace, tmp_path):
    """``db_workspace(connection, source, columns, *, warehouse=None, name="customers", path=None)``:
    a workspace of the shared factory (tests/conftest.py) with one database connection ``crm``,
    one source and a ``contacts`` dataset (``tmp_path / "ws"`` unless ``path`` is given)."""

    def make(connection: dict, source: dict, columns: dict, *, warehouse: str | None = None,
             name: str = "customers", path=None) -> Workspace:
        return make_workspace(workspace_config(connection, source, columns, name), warehouse=warehouse,
                              path=path or tmp_path / "ws")

    return make
