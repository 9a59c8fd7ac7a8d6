"""Syncs and schedules through the API: a sync created, its dry-run plan, its schedule set with
the version of the sync, and stale changes refused."""

from __future__ import annotations


def test_sync_plan_and_schedule(shop):
    editor, viewer = shop["clients"]["editor"], shop["clients"]["viewer"]
    made = editor.post("/api/syncs", json={"name": "to_folder", "dataset": "contacts", "connection": "files",
                                           "folder": "out", "format": "csv", "mode": "mirror"})
    assert made.status_code == 201, made.text
    rows = viewer.get("/api/datasets/contacts/rows", params={"limit": 1, "total": True}).json()["total"]
    plan = editor.post("/api/syncs/to_folder/plan").json()
    assert plan["plan"]["status"] == "planned" and plan["plan"]["inserted"] == rows
    assert not (shop["data"] / "out").exists()  # a plan sends nothing

    schedules = {(s["kind"], s["name"]): s for s in viewer.get("/api/schedules").json()["data"]}
    version = schedules[("sync", "to_folder")]["version"]
    assert version == made.json()["version"] and schedules[("sync", "to_folder")]["cron"] is None
    set_ = editor.put("/api/schedules/sync/to_folder", params={"version": version}, json={"cron": "0 6 * * *"})
    assert set_.status_code == 200 and set_.json()["changed"] == ["sync to_folder"]
    listed = viewer.get("/api/schedules").json()
    assert any(j["target"] == "to_folder" and j["schedule"] == "0 6 * * *" for j in listed["next_runs"])
    stale = editor.put("/api/schedules/sync/to_folder", params={"version": version}, json={"cron": None})
    assert stale.status_code == 409
    bad = editor.put("/api/schedules/sync/to_folder", params={"version": viewer.get("/api/syncs/to_folder").json()["version"]},
                     json={"cron": "every day"})
    assert bad.status_code == 400 and "schedule" in bad.json()["error"]

    pipeline = next(s for s in listed["data"] if s["kind"] == "pipeline")
    assert editor.put("/api/schedules/pipeline/pipeline", params={"version": pipeline["version"]},
                      json={"cron": "@daily"}).status_code == 200
    assert "schedule: '@daily'" in viewer.get("/api/config").json()["yaml"]

    current = viewer.get("/api/syncs/to_folder").json()
    assert current["spec"]["schedule"] == "0 6 * * *"
    assert editor.delete("/api/syncs/to_folder", params={"version": current["version"]}).status_code == 200
    assert [s["name"] for s in viewer.get("/api/syncs").json()["data"]] == []


def test_a_failed_plan_answers_with_the_error_body(shop):
    """A dry-run plan that cannot be computed is an error (422, code sync_failed), not a 200."""
    editor = shop["clients"]["editor"]
    made = editor.post("/api/syncs", json={"name": "bad_filter", "dataset": "contacts", "connection": "files",
                                           "folder": "out_bad", "format": "csv", "mode": "mirror",
                                           "filter": "CAST(first_name AS INTEGER) > 0"})
    assert made.status_code == 201, made.text
    try:
        plan = editor.post("/api/syncs/bad_filter/plan")
        body = plan.json()
        assert plan.status_code == 422, plan.text
        assert body["ok"] is False and body["code"] == "sync_failed" and body["status"] == 422
        assert "bad_filter" in body["error"] and "filter" in body["error"] and body["errors"][0] == body["error"]
    finally:
        version = editor.get("/api/syncs/bad_filter").json()["version"]
        assert editor.delete("/api/syncs/bad_filter", params={"version": version}).status_code == 200
