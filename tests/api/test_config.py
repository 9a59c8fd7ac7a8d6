"""The whole configuration through the API: read with its version, validate (every problem at once,
with its line and setting), diff, apply as an audited job, and 409 on a stale version."""

from __future__ import annotations

import textwrap
import time

import pytest
from fastapi.testclient import TestClient

from tessera.api.app import create_app
from tessera.workspace import Workspace


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("config")
    (tmp / "data").mkdir()
    (tmp / "data" / "crm.csv").write_text("id,email\n1,a@example.com\n")
    Workspace.init(tmp / "ws").close()
    app = create_app(tmp / "ws", collect=False)
    with TestClient(app) as c:
        c.headers["Authorization"] = f"Bearer {app.state.owner.local_token}"
        c.data_dir = tmp / "data"
        yield c


def config_yaml(data, pattern: str = "crm.csv") -> str:
    return textwrap.dedent(f"""\
        connections:
          - name: files
            type: local
            path: {data}
        sources:
          - name: crm
            connection: files
            pattern: {pattern}
            record_keys: [id]
        """)


def test_validate_reports_every_problem_with_its_line_and_setting(client):
    bad = config_yaml(client.data_dir) + "  - name: shop\n    connection: files\n    record_keys: []\n    colour: red\n"
    answer = client.post("/api/config/validate", json={"yaml": bad})
    assert answer.status_code == 200
    body = answer.json()
    assert body["ok"] is False
    assert {(p["line"], p["path"]) for p in body["problems"]} == {(12, "sources[1].record_keys"),
                                                                   (13, "sources[1].colour")}
    assert "unknown setting 'colour'" in body["errors"][1]
    good = client.post("/api/config/validate", json={"yaml": config_yaml(client.data_dir)}).json()
    assert good == {"ok": True, "errors": [], "problems": []}
    broken = client.post("/api/config/validate", json={"yaml": "sources: [\n"}).json()
    assert broken["ok"] is False and "not valid YAML" in broken["errors"][0]


def test_diff_apply_and_a_stale_version_is_refused(client):
    before = client.get("/api/config").json()
    text = config_yaml(client.data_dir)
    diff = client.post("/api/config/diff", json={"yaml": text}).json()
    assert diff["added"] == ["connection files", "source crm"] and diff["version"] == before["version"]
    assert "+  pattern: crm.csv" in diff["text"]

    applied = client.post("/api/config/apply", json={"yaml": text, "version": before["version"]})
    assert applied.status_code == 200, applied.text
    assert applied.json()["added"] == ["connection files", "source crm"]
    now = client.get("/api/config").json()
    assert now["version"] > before["version"] and "pattern: crm.csv" in now["yaml"]
    assert {o["name"] for o in now["objects"]} == {"files", "crm"}

    # a second editor still holding the old version: refused, nothing changed
    other = config_yaml(client.data_dir, pattern="other.csv")
    stale = client.post("/api/config/apply", json={"yaml": other, "version": before["version"]})
    assert stale.status_code == 409 and stale.json()["code"] == "version_conflict"
    assert client.get("/api/config").json()["yaml"] == now["yaml"]
    moved = client.post("/api/config/apply", json={"yaml": other, "version": now["version"]})
    assert moved.status_code == 200 and moved.json()["changed"] == ["source crm"]

    # A job's end is written to the audit log as it ends, beside the answer: wait for both lines.
    for _ in range(200):
        lines = client.get("/api/audit", params={"action": "job.apply"}).json()["data"]
        finished = [line for line in lines
                    if line["action"] == "job.apply.finished" and line["details"]["state"] == "succeeded"]
        if len(finished) >= 2:
            break
        time.sleep(0.05)
    assert len(finished) == 2, lines
    assert finished[0]["details"]["diff"]["changed"] == ["source crm"]
    # the stale apply was refused before a job was queued: two applies, two jobs
    assert [line["action"] for line in lines].count("job.apply.submitted") == 2


def test_an_invalid_apply_answers_every_problem_and_changes_nothing(client):
    current = client.get("/api/config").json()
    bad = config_yaml(client.data_dir).replace("record_keys: [id]", "record_keys: []\n    colour: red")
    answer = client.post("/api/config/apply", json={"yaml": bad, "version": current["version"]})
    assert answer.status_code == 400
    body = answer.json()
    assert body["code"] == "invalid" and len(body["errors"]) == 2 and body["ok"] is False
    assert client.get("/api/config").json()["version"] == current["version"]


def test_one_error_body_for_every_kind_of_error(client):
    """Validation (422), 404 of a route and of an object, 405, 409 and 400 share one body."""
    answers = {
        "validation": client.post("/api/config/apply", json={"yaml": 12}),
        "no_route": client.get("/api/no/such/route"),
        "no_object": client.get("/api/sources/nothing"),
        "method": client.patch("/api/config"),
        "stale": client.post("/api/config/apply", json={"yaml": "{}", "version": 987654}),
        "invalid": client.post("/api/config/diff", json={"yaml": "sources: 3"}),
    }
    expected = {"validation": (422, "invalid_request"), "no_route": (404, "not_found"),
                "no_object": (404, "not_found"), "method": (405, "method_not_allowed"),
                "stale": (409, "version_conflict"), "invalid": (400, "invalid")}
    for name, answer in answers.items():
        body = answer.json()
        assert (answer.status_code, body["code"]) == expected[name], (name, body)
        assert body["ok"] is False and body["status"] == answer.status_code
        assert body["error"] and body["errors"] and isinstance(body["errors"], list), (name, body)


def test_the_writer_job_itself_refuses_a_stale_version(client):
    """The route's check is a courtesy; the job checks again, so a change that lands between the
    two is never overwritten."""
    from tessera.errors import VersionConflict

    owner = client.app.state.owner
    current = client.get("/api/config").json()
    with pytest.raises(VersionConflict):
        owner.run_job("apply", {"yaml": config_yaml(client.data_dir), "expected_version": current["version"] - 1})
    with pytest.raises(VersionConflict):
        owner.run_job("config_change", {"kind": "source", "name": "crm", "expected_version": "0" * 16,
                                        "spec": {"connection": "files", "pattern": "x.csv", "record_keys": ["id"]}})
    assert client.get("/api/config").json()["version"] == current["version"]
