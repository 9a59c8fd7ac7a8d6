"""Runs and imports started as jobs through the API, followed with Server-Sent Events."""

from __future__ import annotations

import json


def follow(client, job_id: int) -> list[tuple[str, dict]]:
    events = []
    with client.stream("GET", f"/api/jobs/{job_id}/events") as answer:
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/event-stream")
        name = None
        for line in answer.iter_lines():
            if line.startswith("event: "):
                name = line.removeprefix("event: ")
            elif line.startswith("data: "):
                events.append((name, json.loads(line.removeprefix("data: "))))
    return events


def test_a_run_and_an_import_followed_with_server_sent_events(shop):
    editor, viewer = shop["clients"]["editor"], shop["clients"]["viewer"]
    before = viewer.get("/api/runs").json()["count"]
    job = editor.post("/api/runs", json={}).json()
    assert job["kind"] == "run" and job["state"] in ("queued", "running", "succeeded")
    events = follow(viewer, job["id"])
    assert events[-1][0] == "end" and events[-1][1]["state"] == "succeeded", events[-1]
    assert all(name == "progress" for name, _ in events[:-1])
    assert events[-1][1]["result"]["status"] == "succeeded"
    runs = viewer.get("/api/runs").json()
    assert runs["count"] == before + 1
    run = viewer.get(f"/api/runs/{runs['data'][0]['id']}").json()
    # the shop was run before: with nothing new the run keeps its publication, else it builds
    assert [s["step"] for s in run["steps"]][:2] in (["import", "stage"], ["import", "unchanged"])
    rebuilt = editor.post("/api/runs", json={"full": True}).json()
    assert follow(viewer, rebuilt["id"])[-1][1]["state"] == "succeeded"
    steps = [s["step"] for s in viewer.get("/api/runs").json()["data"][0]["steps"]]
    assert steps[:2] == ["import", "stage"]

    imported = editor.post("/api/imports", json={"sources": ["crm"]}).json()
    assert follow(viewer, imported["id"])[-1][1]["state"] == "succeeded"
    assert editor.post("/api/imports", json={"sources": ["nope"]}).status_code == 404
    assert viewer.post("/api/runs", json={}).status_code == 403
    assert viewer.get("/api/jobs/987654/events").status_code == 404
