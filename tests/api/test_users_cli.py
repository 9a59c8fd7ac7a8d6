"""``tessera users``, ``tessera tokens`` and ``tessera audit``: in-process, and beside a running server
(whose API then takes the users and tokens the CLI made)."""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tessera.cli.common import STATE, console, err
from tessera.cli.forward import LOCAL, _invoke, command_of, normalize_argv
from tessera.cli.main import app  # noqa: F401 - registers every command
from tessera.workspace import Workspace

ROOT = Path(__file__).resolve().parents[2]
TESSERA = [sys.executable, "-m", "tessera.cli.main"]


def tessera_process(*args, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    """The tessera command in a process of its own (as a user types it)."""
    proc = subprocess.run([*TESSERA, *map(str, args)], cwd=ROOT, capture_output=True, text=True, input=stdin,
                          timeout=300, env={**os.environ, "COLUMNS": "200"})
    if check:
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


@pytest.fixture
def tessera(capsys, monkeypatch):
    """The tessera command in this process (the commands of users, tokens and audit run here anyway)."""
    monkeypatch.setattr(console, "width", 200)
    monkeypatch.setattr(err, "width", 200)

    def run(*args, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
        argv = normalize_argv([str(a) for a in args])
        assert command_of(argv).split(" ")[0] in LOCAL  # never sent to a server
        capsys.readouterr()
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin or ""))
        saved = dict(STATE)
        try:
            code = _invoke(argv)
        finally:
            STATE.clear()
            STATE.update(saved)
        out = capsys.readouterr()
        proc = subprocess.CompletedProcess(argv, code, out.out, out.err)
        if check:
            assert code == 0, out.out + out.err
        return proc

    return run


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def served(tmp_path):
    """A workspace served by ``tessera serve`` on loopback; yields (workspace, url)."""
    ws = tmp_path / "ws"
    Workspace.init(ws).close()
    port = free_port()
    log = open(tmp_path / "server.log", "ab")
    proc = subprocess.Popen([*TESSERA, "-w", str(ws), "serve", "--port", str(port), "--no-schedules"], cwd=ROOT,
                            stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "NO_PROXY": "127.0.0.1"})
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            assert proc.poll() is None, (tmp_path / "server.log").read_text()
            try:
                if httpx.get(f"{url}/health", timeout=2, trust_env=False).status_code == 200 and \
                        (ws / "server.json").exists():
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        else:
            raise AssertionError("the server did not start: " + (tmp_path / "server.log").read_text())
        yield ws, url
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        log.close()
        assert "Traceback" not in (tmp_path / "server.log").read_text()


def test_users_tokens_and_audit_in_process(tmp_path, tessera):
    ws = tmp_path / "ws"
    Workspace.init(ws).close()
    assert "No user yet" in tessera("-w", ws, "users", "list").stdout
    tessera("-w", ws, "users", "create-admin", "--email", "Ada@Example.com", "--password-stdin",
            stdin="first-admin-passphrase\n")
    tessera("users", "add", "bob@example.com", "--role", "viewer", "--password-stdin", "-w", ws,
            stdin="bobs-passphrase-1\n")
    listed = tessera("-w", ws, "users", "list").stdout
    assert "ada@example.com" in listed and "bob@example.com" in listed and "viewer" in listed
    bad = tessera("-w", ws, "users", "add", "eve@example.com", "--role", "owner", "--password-stdin",
                  stdin="eves-passphrase-1\n", check=False)
    assert bad.returncode == 1 and bad.stderr.startswith("Error: unknown role 'owner'")
    short = tessera("-w", ws, "users", "add", "eve@example.com", "--role", "viewer", "--password-stdin",
                    stdin="short\n", check=False)
    assert short.returncode == 1 and "too short" in short.stderr and "Traceback" not in short.stderr

    made = tessera("-w", ws, "tokens", "create", "--user", "bob@example.com", "--role", "viewer", "--expires", "90d")
    token = made.stdout.strip().splitlines()[-1]
    assert token.startswith("tsk_") and len(token) > 40
    above = tessera("-w", ws, "tokens", "create", "--user", "bob@example.com", "--role", "editor", check=False)
    assert above.returncode == 1 and "cannot have the role editor" in above.stderr
    listed = tessera("-w", ws, "tokens", "list").stdout
    assert "bob@example.com" in listed and "active" in listed and token not in listed and token[:12] in listed
    tessera("-w", ws, "tokens", "revoke", "1")
    assert "revoked" in tessera("-w", ws, "tokens", "list").stdout
    missing = tessera("-w", ws, "tokens", "revoke", "99", check=False)
    assert missing.returncode == 1 and "no token 99" in missing.stderr

    last = tessera("-w", ws, "users", "remove", "ada@example.com", check=False)
    assert last.returncode == 1 and "last admin" in last.stderr
    tessera("-w", ws, "users", "remove", "bob@example.com")

    lines = [json.loads(line) for line in tessera("-w", ws, "audit", "--json", "-n", "100").stdout.splitlines()]
    actions = [line["action"] for line in lines]
    assert actions[:5] == ["user.removed", "token.revoked", "token.created", "user.created", "user.created"]
    assert all(line["actor"].startswith("cli") for line in lines)
    table = tessera("-w", ws, "audit", "--action", "token").stdout
    assert "token.created" in table and "user.created" not in table
    for secret in ("first-admin-passphrase", "bobs-passphrase-1", token):
        assert secret not in json.dumps(lines)


def test_users_and_tokens_beside_a_running_server(served, tessera):
    ws, url = served
    http = httpx.Client(base_url=url, trust_env=False, timeout=30)
    assert http.get("/api/status").status_code == 401
    tessera_process("-w", ws, "users", "create-admin", "--email", "root@example.com", "--password-stdin",
                    stdin="root-passphrase-1\n")
    tessera("-w", ws, "users", "add", "ed@example.com", "--role", "editor", "--password-stdin",
            stdin="editor-passphrase-1\n")
    token = tessera("-w", ws, "tokens", "create", "--user", "ed@example.com", "--role", "editor",
                    "--expires", "1d").stdout.strip().splitlines()[-1]
    bearer = {"Authorization": f"Bearer {token}"}
    assert http.get("/api/me", headers=bearer).json() == {"identity": "ed@example.com", "role": "editor",
                                                          "via": "token"}
    assert http.get("/api/users", headers=bearer).status_code == 403
    signed = http.post("/api/session", json={"email": "root@example.com", "password": "root-passphrase-1"})
    assert signed.status_code == 200 and signed.json()["role"] == "admin"
    assert http.get("/api/users").status_code == 200  # the session cookie
    # a read command of the CLI is still answered by the server; tokens list runs here, on the store
    assert "ed@example.com" in tessera("-w", ws, "tokens", "list").stdout
    assert "(duckdb)" in tessera_process("-w", ws, "status").stdout  # answered by the server (POST /api/cli)
    tessera("-w", ws, "tokens", "revoke", "1")
    assert http.get("/api/me", headers=bearer).status_code == 401
    audit = tessera("-w", ws, "audit", "--json").stdout
    assert "login.succeeded" in audit and "token.revoked" in audit
