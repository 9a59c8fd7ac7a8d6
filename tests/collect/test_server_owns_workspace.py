"""The server owns its workspace: the CLI's writes become jobs of its one writer queue, reads
are answered beside a run, a cancelled or killed run leaves the last publication, and jobs of a
killed server are marked interrupted at the next start."""

from __future__ import annotations

import subprocess
import sys
import time

import httpx
import pytest
from collect_helpers import ROOT, wait_for
from fastapi.testclient import TestClient

from tessera.workspace import Workspace

TESSERA = [sys.executable, "-m", "tessera.cli.main"]


def tessera(*args, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess:
    proc = subprocess.run([*TESSERA, *map(str, args)], cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    if check:
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


SOURCES = 24  # a run reports its progress per source: many small sources give it many steps


@pytest.fixture
def demo_workspace(tmp_path):
    """A workspace of many small CRM files, not run yet; returns (workspace folder, data folder)."""
    data = tmp_path / "data"
    data.mkdir()
    for s in range(SOURCES):
        rows = "".join(f"{s}-{i},p{i % 700}@example.org,Name{i}\n" for i in range(600))
        (data / f"crm{s}.csv").write_text("id,email,first_name\n" + rows)
    config = {
        "connections": [{"name": "files", "type": "local", "path": str(data)}],
        "sources": [{"name": f"crm{s}", "connection": "files", "pattern": f"crm{s}.csv", "record_keys": ["id"]}
                    for s in range(SOURCES)],
        "datasets": [{"name": "contacts", "deduplicate": True, "identity_keys": [{"column": "email"}],
                      "mappings": [{"source": f"crm{s}", "columns": {"id": "id", "email": "email",
                                                                      "first_name": "first_name"}}
                                   for s in range(SOURCES)]}],
    }
    path = tmp_path / "ws"
    with Workspace.init(path) as ws:
        ws.apply(config)
    return path, data


def add_contacts(data, n: int = 40) -> None:
    """A new file of the first source with ``n`` new people, for the next run."""
    rows = "".join(f"new{i},new{i}@example.net,New{i}\n" for i in range(n))
    (data / "crm0.csv").write_text((data / "crm0.csv").read_text() + rows)


def run_job(server, full: bool = False) -> dict:
    """A run job; ``full`` rebuilds everything (an incremental run may end before it can be stopped)."""
    return server.api("POST", "/api/jobs", json={"kind": "run", "params": {"full": full}}).json()


def finished(server, job_id: int, timeout: float = 600) -> dict:
    def done():
        job = server.api("GET", f"/api/jobs/{job_id}", params={"wait": 5}).json()
        return job if job["state"] not in ("queued", "running") else None

    return wait_for(done, timeout=timeout, what=f"job {job_id} to end")


def in_step(server, job_id: int, steps=("stage",)) -> dict:
    def there():
        job = server.api("GET", f"/api/jobs/{job_id}").json()
        assert job["state"] in ("queued", "running"), f"the run ended before it could be stopped: {job}"
        return job if (job.get("progress") or {}).get("step") in steps else None

    return wait_for(there, timeout=300, interval=0.02, what=f"job {job_id} to reach {steps}")


def contacts_rows(server) -> tuple[int, int]:
    status = server.api("GET", "/api/status").json()
    row = next(d for d in status["datasets"] if d["dataset"] == "contacts")
    return row["rows"], row["version"]


def test_cli_runs_go_through_the_server_and_a_second_run_waits_its_turn(make_server, demo_workspace):
    path, _ = demo_workspace
    server = make_server(path)
    first = subprocess.Popen([*TESSERA, "run", "-w", str(path)], cwd=ROOT, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
    wait_for(lambda: server.api("GET", "/api/jobs").json(), timeout=120, what="the first job")
    second = subprocess.Popen([*TESSERA, "-w", str(path), "run"], cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    out1, _ = first.communicate(timeout=600)
    out2, _ = second.communicate(timeout=600)
    for proc, out in ((first, out1), (second, out2)):
        assert proc.returncode == 0, out
        assert "sent to the server" in out and "succeeded" in out and "Datasets" in out
    jobs = sorted(server.api("GET", "/api/jobs").json(), key=lambda j: j["id"])
    assert [(j["kind"], j["state"]) for j in jobs] == [("run", "succeeded"), ("run", "succeeded")]
    assert jobs[1]["started_at"] >= jobs[0]["finished_at"]  # queued, not refused, not concurrent
    # Read commands are answered by the server (it holds the warehouse) with the same tables.
    status = tessera("status", "-w", path)
    assert "contacts" in status.stdout and "Last runs" in status.stdout
    assert "Rejected rows" in tessera("-w", path, "rejects").stdout
    jobs_out = tessera("-w", path, "jobs", "list").stdout
    assert "run" in jobs_out and "succeeded" in jobs_out


def test_reads_do_not_wait_for_a_run(make_server, demo_workspace):
    path, info = demo_workspace
    server = make_server(path)
    assert finished(server, run_job(server)["id"])["state"] == "succeeded"
    rows, version = contacts_rows(server)
    add_contacts(info)
    job = run_job(server)
    in_step(server, job["id"])
    started = time.monotonic()
    # While the run builds the next publication, reads answer from the last one.
    assert contacts_rows(server) == (rows, version)
    assert time.monotonic() - started < 30
    assert finished(server, job["id"])["state"] == "succeeded"
    assert contacts_rows(server)[0] == rows + 40


def test_a_cancelled_run_leaves_the_previous_publication(make_server, demo_workspace):
    path, info = demo_workspace
    server = make_server(path)
    assert finished(server, run_job(server)["id"])["state"] == "succeeded"
    before = contacts_rows(server)
    add_contacts(info)
    job = run_job(server, full=True)
    in_step(server, job["id"])
    # Through the API: the CLI's own start-up can outlast what is left of a small run.
    server.api("POST", f"/api/jobs/{job['id']}/cancel")
    done = finished(server, job["id"])
    assert done["state"] == "cancelled" and done["error_code"] == "cancelled", done
    cancel = tessera("-w", path, "jobs", "cancel", job["id"])
    assert f"Job {job['id']}: cancelled" in cancel.stdout, cancel.stdout
    assert contacts_rows(server) == before
    runs = server.api("GET", "/api/status").json()["runs"]
    assert runs[0]["status"] == "cancelled"
    # The next run starts from the same files and publishes them.
    assert finished(server, run_job(server)["id"])["state"] == "succeeded"
    assert contacts_rows(server)[0] == before[0] + 40


def test_a_server_killed_during_a_run_marks_its_job_interrupted(make_server, demo_workspace):
    path, info = demo_workspace
    server = make_server(path)
    assert finished(server, run_job(server)["id"])["state"] == "succeeded"
    before = contacts_rows(server)
    add_contacts(info)
    job = run_job(server, full=True)
    in_step(server, job["id"])
    server.kill()

    server = make_server(path)
    again = server.api("GET", f"/api/jobs/{job['id']}").json()
    assert again["state"] == "interrupted" and "killed or crashed" in again["error"]
    assert contacts_rows(server) == before
    assert server.api("GET", "/api/status").json()["runs"][0]["status"] == "interrupted"
    assert finished(server, run_job(server)["id"])["state"] == "succeeded"
    assert contacts_rows(server)[0] == before[0] + 40


def test_the_workspace_option_after_the_command(demo_workspace):
    path, _ = demo_workspace
    out = tessera("run", "-w", path)
    assert "succeeded" in out.stdout and "sent to the server" not in out.stdout
    assert "contacts" in tessera("status", "--workspace", path).stdout
    assert "contacts" in tessera("columns", "contacts", f"--workspace={path}").stdout
    missing = tessera("status", "-w", path.parent / "nowhere", check=False)
    assert missing.returncode == 1 and "tessera init" in missing.stderr


def test_every_api_route_needs_a_credential(tmp_path):
    from tessera.api.app import create_app

    Workspace.init(tmp_path / "ws").close()
    app = create_app(tmp_path / "ws", collect=False)
    token = app.state.owner.local_token
    spec = app.openapi()["paths"]  # every route is documented, and each one is checked here
    routes = [(m.upper(), path) for path, ops in spec.items() if path.startswith("/api") for m in ops
              if (m.upper(), path) != ("POST", "/api/session")]  # sign-in: tests/api/test_auth.py
    assert len(routes) >= 8
    with TestClient(app) as client:
        for method, route in routes:
            url = (route.replace("{tessera_id}", "T1").replace("{job_id}", "1").replace("{email}", "a@b.c")
                   .replace("{token_id}", "1").replace("{override_id}", "1"))
            response = client.request(method, url, json={})
            assert response.status_code == 401, (method, route, response.text)
            assert response.json()["code"] == "unauthorized"
            wrong = client.request(method, url, json={}, headers={"Authorization": "Bearer tsl_wrong"})
            assert wrong.status_code == 401, (method, route)
        ok = client.get("/api/status", headers={"Authorization": f"Bearer {token}"})
        assert ok.status_code == 200 and ok.json()["engine"] == "duckdb"
        missing = client.get("/api/jobs/999", headers={"Authorization": f"Bearer {token}"})
        assert missing.status_code == 404 and missing.json()["code"] == "not_found"


def test_the_server_file_is_private_and_removed_at_the_end(make_server, tmp_path):
    Workspace.init(tmp_path / "ws").close()
    server = make_server(tmp_path / "ws")
    file = tmp_path / "ws" / "server.json"
    assert file.stat().st_mode & 0o077 == 0
    server.stop()
    assert not file.exists()
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{server.url}/health", timeout=2)
