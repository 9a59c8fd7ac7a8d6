"""Per-job limits: a run past pipeline.memory_limit or pipeline.time_limit stops with a message
naming the setting, the last publication stays, and the next run within the limits publishes."""

from __future__ import annotations

import duckdb
import pytest

from tessera.config.loader import parse_config
from tessera.errors import ConfigError, RunError
from tessera.workspace import Workspace

CONTACTS = "id,email\n1,ann@example.com\n2,bob@example.com\n"


def config(tmp_path, **pipeline) -> dict:
    return {
        "connections": [{"name": "files", "type": "local", "path": str(tmp_path / "data")}],
        "sources": [{"name": "crm", "connection": "files", "pattern": "*.csv", "record_keys": ["id"]}],
        "datasets": [{"name": "contacts", "mappings": [{"source": "crm", "columns": {"crm_id": "id",
                                                                                     "email": "email"}}]}],
        "pipeline": pipeline,
    }


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("limits")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "a.csv").write_text(CONTACTS)
    with Workspace.init(tmp_path / "ws") as w:
        w.apply(config(tmp_path))
        w.run()
        w.tmp = tmp_path
        yield w


def emails(ws) -> list[str]:
    return sorted(ws.table("contacts").to_pyarrow().column("email").to_pylist())


@pytest.mark.parametrize("pipeline, expected", [
    ({"time_limit": 0.001}, "ran longer than its time limit of 0.001 s (setting pipeline.time_limit)"),
    ({"memory_limit": "1MB"}, "needed more memory than its memory limit of 1MB (setting pipeline.memory_limit)"),
])
def test_a_run_past_a_limit_stops_and_leaves_the_last_publication(ws, pipeline, expected):
    before = emails(ws)
    new = f"new{len(expected)}@example.com"
    (ws.tmp / "data" / f"more_{len(expected)}.csv").write_text(f"id,email\n{len(expected)},{new}\n")
    ws.apply(config(ws.tmp, **pipeline))
    with pytest.raises(RunError) as exc:
        ws.run()
    assert expected in str(exc.value) and "last published state is unchanged" in str(exc.value)
    assert emails(ws) == before
    [last] = ws.runs(1)
    assert last["status"] == "failed" and "pipeline." in last["error"]
    ws.apply(config(ws.tmp))  # back to the defaults: the next run publishes
    result = ws.run()
    assert result.status == "succeeded", result.warnings
    assert new in emails(ws)


def test_an_import_past_its_time_limit_names_the_setting(ws):
    ws.apply(config(ws.tmp, time_limit="1ms"))
    with pytest.raises(RunError, match=r"The import was stopped: .* \(setting pipeline.time_limit\)"):
        ws.import_sources()
    ws.apply(config(ws.tmp))


@pytest.mark.parametrize("pipeline, expected", [
    ({"memory_limit": "lots"}, "pipeline.memory_limit: 'lots' is not an amount of memory"),
    ({"memory_limit": "150%"}, "between 1% and 100%"),
    ({"time_limit": "soon"}, "pipeline.time_limit: 'soon' is not a duration"),
    ({"time_limit": 0}, "not a duration above zero"),
    ({"time_limit": 1e308}, "more than the longest time limit, 30 days"),
    ({"time_limit": True}, "not a duration"),
])
def test_limits_are_checked_at_apply(tmp_path, pipeline, expected):
    with pytest.raises(ConfigError) as exc:
        parse_config(config(tmp_path, **pipeline))
    assert expected in str(exc.value)


def test_good_limits_are_accepted(tmp_path):
    cfg = parse_config(config(tmp_path, memory_limit="50%", time_limit="2h"))
    assert cfg.pipeline.memory_limit == "50%"


def test_a_segment_refresh_past_the_memory_limit_names_the_setting(ws):
    with_segment = {**config(ws.tmp), "segments": [{"name": "ann", "dataset": "contacts",
                                                     "conditions": [{"column": "email", "op": "contains", "value": "ann"}]}]}
    ws.apply(with_segment)
    assert ws.refresh_segments()[0]["size"] == 1
    ws.apply({**with_segment, "pipeline": {"memory_limit": "1MB"}})
    with pytest.raises(RunError) as exc:
        ws.refresh_segments()
    assert "The segment refresh needed more memory than its memory limit of 1MB (setting pipeline.memory_limit)" \
        in str(exc.value)
    ws.apply(config(ws.tmp))


def test_a_run_s_memory_limit_ends_with_the_run(ws):
    # A run scales DuckDB's limit to its data (512 MB for these two rows) or takes its own setting;
    # what the server does next (the search index, the dashboards' preparation) gets the default.
    def limit() -> str:
        return ws.adapter.sql("SELECT current_setting('memory_limit')").fetchone()[0]

    default = duckdb.connect()
    default.execute(f"SET memory_limit = '{ws.adapter.default_memory_limit}'")
    [(expected,)] = default.execute("SELECT current_setting('memory_limit')").fetchall()
    assert expected.endswith("GiB")  # DuckDB's default in a workspace, 1536MB
    ws.apply(config(ws.tmp))
    assert ws.run().status == "succeeded"
    assert limit() == expected
    ws.apply(config(ws.tmp, memory_limit="300MB"))
    assert ws.run().status == "succeeded"
    assert limit() == expected
    ws.apply(config(ws.tmp))
