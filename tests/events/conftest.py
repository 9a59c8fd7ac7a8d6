"""Fixtures of the event tests (helpers in event_helpers.py)."""

from __future__ import annotations

import textwrap

import pytest

from tessera.workspace import Workspace


@pytest.fixture
def make_workspace(tmp_path, engine):
    """``make_workspace(config_yaml, files={name: text})``: a workspace with ``config`` applied."""
    made = []

    def make(config: str, files: dict[str, str] | None = None) -> Workspace:
        data = tmp_path / "data"
        data.mkdir(exist_ok=True)
        for name, text in (files or {}).items():
            (data / name).write_text(text)
        (tmp_path / "workspace.yaml").write_text(textwrap.dedent(config))
        ws = Workspace.init(tmp_path / f"ws{len(made)}", warehouse=engine)
        ws.apply(tmp_path / "workspace.yaml")
        made.append(ws)
        return ws

    yield make
    for ws in made:
        ws.close()

