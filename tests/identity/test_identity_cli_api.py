"""The review queue and overrides from the command line and the REST API."""

from __future__ import annotations

import subprocess
import sys

import pytest
from fastapi.testclient import TestClient

from tessera.api.app import create_app
from tessera.demo.matching_bench import generate_matching_set
from tessera.workspace import Workspace

TESSERA = [sys.executable, "-m", "tessera.cli.main"]


def tessera(*args, check=True):
    proc = subprocess.run([*TESSERA, *map(str, args)], capture_output=True, text=True, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"tessera {' '.join(map(str, args))} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    base = tmp_path_factory.mktemp("identity")
    generate_matching_set(base / "data", records=400, seed=11)
    yaml = (base / "data" / "workspace.yaml").read_text()
    # every match waits for review
    (base / "data" / "workspace.yaml").write_text(
        yaml.replace("merge: 0.99", "merge: 0.999999999999999").replace("review: 0.8", "review: 0.5"))
    ws = Workspace.init(base / "ws")
    ws.apply(base / "data" / "workspace.yaml")
    ws.run()
    ws.close()
    return base / "ws"


def test_cli_review_accept_reject_split_merge_overrides(workspace):
    out = tessera("-w", workspace, "identity", "review", "--limit", "3").stdout
    assert "probability" in out and "first_name" in out and "accept|reject" in out
    with Workspace.open(workspace) as ws:
        queue = ws.identity_review(limit=3)
    a, b = queue[0]["record_l"], queue[0]["record_r"]
    c, d = queue[1]["record_l"], queue[1]["record_r"]
    assert "merge on the next run" in tessera("-w", workspace, "identity", "accept", a, b, "--by", "ana").stdout
    assert "not linked" in tessera("-w", workspace, "identity", "reject", c, d).stdout
    out = tessera("-w", workspace, "identity", "overrides").stdout
    assert "merge" in out and "reject" in out and "ana" in out
    bad = tessera("-w", workspace, "identity", "split", "crm:NOPE", check=False)
    assert bad.returncode == 1 and "no source record crm:NOPE" in bad.stderr and "Traceback" not in bad.stderr
    with Workspace.open(workspace) as ws:
        first = ws.identity_overrides()[0]["id"]
    assert "removed" in tessera("-w", workspace, "identity", "overrides", "--remove", first).stdout
    with Workspace.open(workspace) as ws:
        assert [o["kind"] for o in ws.identity_overrides()] == ["reject"]
        ws.identity_remove_override(ws.identity_overrides()[0]["id"])


def test_api_review_and_overrides(workspace):
    app = create_app(workspace, collect=False)  # the server owns the workspace while the test runs
    with TestClient(app, headers={"Authorization": f"Bearer {app.state.owner.local_token}"}) as client:
        _review_and_overrides(client)
    with TestClient(create_app(workspace, collect=False)) as anonymous:
        assert anonymous.get("/api/identity/review").status_code == 401


def _review_and_overrides(client):
    queue = client.get("/api/identity/review", params={"limit": 2}).json()
    assert queue["count"] == 2
    pair = queue["data"][0]
    assert {e["column"] for e in pair["evidence"]} >= {"first_name", "email"}
    r = client.post("/api/identity/review", json={"record_l": pair["record_l"], "record_r": pair["record_r"],
                                                 "decision": "accept"})
    assert r.status_code == 201 and r.json()["kind"] == "merge" and r.json()["origin"] == "review"
    after = client.get("/api/identity/review", params={"limit": 50}).json()["data"]
    assert (pair["record_l"], pair["record_r"]) not in {(p["record_l"], p["record_r"]) for p in after}
    r = client.post("/api/identity/overrides", json={"kind": "split", "records": [pair["record_l"]]})
    assert r.status_code == 201
    listed = client.get("/api/identity/overrides").json()
    assert [o["kind"] for o in listed["data"]] == ["split"]  # the split replaced the merge it contradicts
    assert client.post("/api/identity/overrides", json={"kind": "merge", "records": ["crm:NOPE", "crm:NOPE2"]}
                       ).status_code == 404
    assert client.delete(f"/api/identity/overrides/{listed['data'][0]['id']}").status_code == 204
    assert client.delete("/api/identity/overrides/999").status_code == 404
    assert client.get("/api/identity/overrides").json()["count"] == 0
