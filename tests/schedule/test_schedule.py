"""Cron schedules: next runs, due jobs started once, a running job not started twice."""

from __future__ import annotations

import os
from datetime import datetime, timedelta

import pytest
from typer.testing import CliRunner

from tessera.cli.main import app
from tessera.errors import ConfigError
from tessera.workspace import Workspace

T0 = datetime(2026, 3, 2, 10, 1).astimezone()


def _workspace(tmp_path, **schedules):
    data = tmp_path / "data"
    data.mkdir()
    (data / "people_1.csv").write_text("id,email\n1,a@example.com\n2,b@example.com\n")
    ws = Workspace.init(tmp_path / "ws")
    ws.apply({
        "connections": [{"name": "files", "type": "local", "path": str(data)}],
        "sources": [{"name": "people", "connection": "files", "pattern": "people_*.csv", "record_keys": ["id"],
                     **({"schedule": schedules["source"]} if "source" in schedules else {})}],
        "datasets": [{"name": "contacts", "mappings": [{"source": "people", "columns": {"id": "id", "email": "email"}}]}],
        **({"pipeline": {"schedule": schedules["pipeline"]}} if "pipeline" in schedules else {}),
    })
    return ws, data


def test_jobs_are_listed_with_their_next_run(tmp_path):
    ws, _ = _workspace(tmp_path, source="*/5 * * * *", pipeline="0 6 * * *")
    jobs = {j["job"]: j for j in ws.scheduler().next_runs(T0)}
    assert set(jobs) == {"import people", "pipeline run"}
    assert jobs["import people"]["next_run"] == (T0.replace(minute=5)).isoformat()
    assert jobs["pipeline run"]["next_run"] == (T0 + timedelta(days=1)).replace(hour=6, minute=0).isoformat()
    assert not any(j["due"] for j in jobs.values())


def test_a_due_job_starts_once_and_waits_for_its_next_time(tmp_path):
    ws, data = _workspace(tmp_path, source="*/5 * * * *", pipeline="0 6 * * *")
    sched = ws.scheduler()
    assert sched.tick(T0) == []  # first sight: nothing runs at once
    done = sched.tick(T0 + timedelta(minutes=5))
    assert [(d["job"], d["status"]) for d in done] == [("import people", "succeeded")]
    assert ws.runs(1)[0]["kind"] == "import"
    assert [f["name"] for f in ws.store.list_imported_files("people")] == ["people_1.csv"]
    assert sched.tick(T0 + timedelta(minutes=6)) == []  # already fired for 10:05
    # Missed fire times are not made up one by one: one start, then the schedule again.
    (data / "people_2.csv").write_text("id,email\n3,c@example.com\n")
    done = sched.tick(T0 + timedelta(minutes=31))
    assert [d["job"] for d in done] == ["import people"]
    assert sched.tick(T0 + timedelta(minutes=32)) == []
    assert len(ws.store.list_imported_files("people")) == 2
    # The pipeline's daily run at 06:00 the next day.
    done = sched.tick((T0 + timedelta(days=1)).replace(hour=6, minute=0))
    assert {d["job"]: d["status"] for d in done}["pipeline run"] == "succeeded"
    assert ws.adapter.count(ws.table("contacts")) == 3


def test_a_job_still_running_is_not_started_twice(tmp_path):
    ws, _ = _workspace(tmp_path, pipeline="*/10 * * * *")
    sched = ws.scheduler()
    sched.tick(T0)
    # A pipeline run of a live process (this one) is going on.
    run_id = ws.store.start_run("pipeline", None, os.getpid())
    done = sched.tick(T0 + timedelta(minutes=10))
    assert done == [{"job": "pipeline run", "status": "skipped", "reason": "still running"}]
    assert [j["running"] for j in sched.next_runs(T0 + timedelta(minutes=10))] == [True]
    ws.store.finish_run(run_id, "succeeded")
    done = sched.tick(T0 + timedelta(minutes=10, seconds=30))
    assert [(d["job"], d["status"]) for d in done] == [("pipeline run", "succeeded")]


def test_a_failing_job_is_reported_and_the_scheduler_goes_on(tmp_path):
    ws, data = _workspace(tmp_path, source="* * * * *", pipeline="* * * * *")
    for f in data.iterdir():
        f.unlink()
    sched = ws.scheduler()
    sched.tick(T0)
    done = {d["job"]: d for d in sched.tick(T0 + timedelta(minutes=1))}
    assert done["pipeline run"]["status"] == "failed"
    assert "no imported data" in done["pipeline run"]["detail"]
    assert done["import people"]["status"] == "succeeded"
    assert {j["job"]: j["last_status"] for j in sched.next_runs(T0 + timedelta(minutes=1))}["pipeline run"] == "failed"


def test_a_bad_cron_is_a_configuration_error_with_its_place(tmp_path):
    with pytest.raises(ConfigError) as exc:
        _workspace(tmp_path, source="every five minutes")
    assert "sources[0].schedule" in str(exc.value) and "cron" in str(exc.value)


def test_the_cli_lists_schedules(tmp_path):
    ws, _ = _workspace(tmp_path, source="@hourly")
    ws.close()
    out = CliRunner().invoke(app, ["-w", str(tmp_path / "ws"), "schedule"])
    assert out.exit_code == 0, out.output
    assert "import people" in out.output and "@hourly" in out.output


def test_two_http_connections_cannot_share_a_write_key(tmp_path):
    ws = Workspace.init(tmp_path / "ws")
    with pytest.raises(ConfigError, match="same write key as connection 'web'"):
        ws.apply({"connections": [{"name": "web", "type": "http", "write_key": "wk_same_123"},
                                  {"name": "app", "type": "http", "write_key": "wk_same_123"}]})
    ws.apply({"connections": [{"name": "web", "type": "http", "write_key": "wk_web_123"},
                              {"name": "app", "type": "http", "write_key": "wk_app_123"}]})
    assert "wk_" not in ws.export_config()
