"""The command line over connections, imports and syncs: diagnosis, secrets never shown, dry runs."""

from __future__ import annotations

import yaml
from typer.testing import CliRunner

from tessera.cli.main import app
from tessera.workspace import Workspace


def _invoke(*args):
    return CliRunner().invoke(app, list(args))


def test_connections_test_diagnoses_a_wrong_password_and_never_prints_it(tmp_path, postgres_app_db):
    (tmp_path / "data").mkdir()
    good = {"name": "crm_db", **postgres_app_db}
    bad = {**good, "name": "crm_bad", "password": "not-the-password"}
    config = {"connections": [good, bad]}
    (tmp_path / "ws.yaml").write_text(yaml.safe_dump(config))
    ws_path = tmp_path / "ws"
    Workspace.init(ws_path).close()
    assert _invoke("-w", str(ws_path), "apply", str(tmp_path / "ws.yaml")).exit_code == 0

    ok = _invoke("-w", str(ws_path), "connections", "test", "crm_db")
    assert ok.exit_code == 0, ok.output
    assert "Connection crm_db: OK" in ok.output

    failed = _invoke("-w", str(ws_path), "connections", "test", "crm_bad")
    assert failed.exit_code != 0
    assert failed.exception is not None and getattr(failed.exception, "reason", None) == "auth_refused"
    assert "not-the-password" not in str(failed.exception)

    exported = _invoke("-w", str(ws_path), "export")
    assert "app-secret" not in exported.output and "not-the-password" not in exported.output
    assert "secret: crm_db.password" in exported.output
    listed = _invoke("-w", str(ws_path), "connections", "list")
    assert "crm_db" in listed.output and "app-secret" not in listed.output


def test_sync_dry_run_then_run_from_the_command_line(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "people.csv").write_text("id,email\n1,a@example.com\n2,b@example.com\n")
    out = tmp_path / "out"
    ws = Workspace.init(tmp_path / "ws")
    ws.apply({
        "connections": [{"name": "files", "type": "local", "path": str(data)},
                        {"name": "exports", "type": "local", "path": str(out)}],
        "sources": [{"name": "people", "connection": "files", "pattern": "people.csv", "record_keys": ["id"]}],
        "datasets": [{"name": "contacts", "mappings": [{"source": "people", "columns": {"id": "id", "email": "email"}}]}],
        "syncs": [{"name": "to_files", "dataset": "contacts", "connection": "exports", "mode": "mirror",
                   "key": "id", "format": "csv"}],
    })
    ws.run()
    ws.close()
    dry = _invoke("-w", str(tmp_path / "ws"), "sync", "run", "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "to_files" in dry.output and "2" in dry.output
    assert not out.exists() or not any(out.iterdir())  # a dry run sends nothing
    done = _invoke("-w", str(tmp_path / "ws"), "sync", "run")
    assert done.exit_code == 0, done.output
    assert [p.suffix for p in out.iterdir()] == [".csv"]
    again = _invoke("-w", str(tmp_path / "ws"), "sync", "run")
    assert again.exit_code == 0 and len(list(out.iterdir())) == 1  # nothing changed: no new file
