"""Fixtures of the web app's tests: one demo workspace built once per test session (a small demo
company, run once), copied for each server that owns it; users of each role."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import pytest

from tessera.users import Users
from tessera.workspace import Workspace

from web_helpers import DEMO_SIZE, EMAILS, PASSWORDS


@pytest.fixture(scope="session")
def demo_template(tmp_path_factory) -> Path:
    """A demo workspace (run once, with a user per role); copy it before serving it."""
    from tessera.demo.generator import generate

    path = tmp_path_factory.mktemp("web-demo") / "ws"
    with Workspace.init(path) as ws:
        generate(path / "company", size=DEMO_SIZE, seed=7)
        ws.apply(path / "company" / "workspace.yaml")
        ws.run()
        users = Users(ws.store)
        for role, email in EMAILS.items():
            users.create(email, role, PASSWORDS[role], by="test")
    return path


@pytest.fixture
def copy_demo(demo_template, tmp_path_factory):
    """``copy_demo()``: a fresh copy of the demo workspace, to be owned by one server."""

    def copy() -> Path:
        target = tmp_path_factory.mktemp("web-ws") / "ws"
        shutil.copytree(demo_template, target)
        return target

    return copy


@pytest.fixture(scope="module")
def web(demo_template, tmp_path_factory):
    """The server application on a copy of the demo workspace (module-wide), and a sign-in helper."""
    from fastapi.testclient import TestClient

    from tessera.api.app import create_app

    path = tmp_path_factory.mktemp("web-ws") / "ws"
    shutil.copytree(demo_template, path)
    app = create_app(path, collect=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        with TestClient(app) as anonymous:
            yield Web(app, anonymous, path)


class Web:
    def __init__(self, app, anonymous, path: Path):
        self.app, self.anonymous, self.path = app, anonymous, path
        self._clients: dict[str, object] = {}

    def client(self, role: str | None = None, *, fresh: bool = False):
        """A client signed in as ``role`` (None: anonymous); its ``csrf`` attribute is the form token."""
        from fastapi.testclient import TestClient

        if role is None:
            return self.anonymous
        if role in self._clients and not fresh:
            return self._clients[role]
        client = TestClient(self.app)
        answer = client.post("/login", data={"email": EMAILS[role], "password": PASSWORDS[role], "next": "/"},
                             follow_redirects=False)
        assert answer.status_code == 303, answer.text
        client.csrf = self.app.state.sessions.read(client.cookies.get("tessera_session"))["c"]
        if not fresh:
            self._clients[role] = client
        return client
