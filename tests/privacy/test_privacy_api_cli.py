"""Erase and export through the REST API (a job of the server's writer queue) and the CLI."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import zipfile

from fastapi.testclient import TestClient

from tessera.api.app import create_app
from tessera.workspace import Workspace

TESSERA = [sys.executable, "-m", "tessera.cli.main"]


def tessera(*args) -> subprocess.CompletedProcess:
    proc = subprocess.run([*TESSERA, *map(str, args)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"tessera {' '.join(map(str, args))} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc


def test_the_api_erases_as_a_job_and_keeps_the_email_out_of_jobs_and_audit(shop):
    ws = shop()
    path = ws.path
    ws.close()
    app = create_app(path, collect=False)
    with TestClient(app) as client:
        client.headers["Authorization"] = f"Bearer {app.state.owner.local_token}"
        tid = client.get("/api/customers", params={"email": "bo@example.com"}).json()["data"][0]["tessera_id"]
        # The profile read twice: the second answer is the one the server kept (WorkspaceOwner.answers).
        hits = app.state.owner.answers.hits
        shown = [client.get(f"/api/profiles/{tid}") for _ in range(2)]
        assert [r.status_code for r in shown] == [200, 200] and shown[0].content == shown[1].content
        assert "bo@example.com" in shown[1].text and app.state.owner.answers.hits == hits + 1
        answer = client.post("/api/privacy/erase", json={"customer": "bo@example.com"})
        assert answer.status_code == 200, answer.text
        receipt = answer.json()
        # The kept answer is gone with the customer: the next read finds no record.
        assert client.get(f"/api/profiles/{tid}").status_code == 404
        assert receipt["identifiers"] == {"customer_id": 1, "email": 1, "phone": 1}
        assert {r["where"]: r["rows"] for r in receipt["removed"]}["dataset orders (rows)"] == 1
        jobs = client.get("/api/jobs").json()
        assert jobs[0]["kind"] == "privacy_erase" and jobs[0]["state"] == "succeeded"
        assert "bo@example.com" not in json.dumps(jobs)
        assert "bo@example.com" not in json.dumps(client.get("/api/audit").json())
        assert client.get("/api/privacy/suppressions").json()["count"] == 3
        assert client.get("/api/privacy/requests").json()["data"][0]["receipt"]["rows_removed"] == \
            receipt["rows_removed"]
        gone = client.post("/api/privacy/export", json={"customer": "bo@example.com"})
        assert gone.status_code == 200 and gone.json()["customer"] == [] and gone.json()["source_rows"] == {}
        zipped = client.post("/api/privacy/export", json={"customer": "cy@example.com", "format": "zip"})
        assert zipped.headers["content-type"] == "application/zip"
        with zipfile.ZipFile(io.BytesIO(zipped.content)) as z:
            assert "cy@example.com" in z.read("customer.csv").decode()


def test_the_cli_erases_exports_and_lists_suppressions(shop, tmp_path):
    ws = shop()
    path = ws.path
    ws.close()
    out = tessera("-w", path, "privacy", "export", "C3", "-o", tmp_path / "cy.json").stdout
    assert "1 raw row(s)" not in out and "cy.json" in out
    assert json.loads((tmp_path / "cy.json").read_text())["customer"][0]["email"] == "cy@example.com"
    out = tessera("-w", path, "privacy", "erase", "C3", "--yes").stdout
    assert "Receipt" in out and "raw batch 1 of source crm (crm_1.csv)" in out
    out = tessera("-w", path, "privacy", "suppressions").stdout
    assert "2 suppressed identifier(s) (customer_id: 1, email: 1)" in out
    with Workspace.open(path) as again:
        assert [r["kind"] for r in again.privacy_requests()] == ["erase", "export"]
        assert again.store.list_audit(action="privacy.erase")[0]["actor"].startswith("cli")
