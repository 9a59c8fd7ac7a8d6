"""An expression that passes apply but fails on the values the run meets (a CAST of a text, a
value out of range) fails its run naming the computed column, its place in the configuration and
the fix, not with the engine's generated SQL; a segment's SQL condition that fails skips that
segment only, with a warning naming the condition."""

from __future__ import annotations

import pytest

from tessera.errors import RunError, UsageError
from tessera.workspace import Workspace

CONTACTS = "id,email,name\n1,ann@example.com,Ann\n2,bob@example.com,Bob\n"
ORDERS = "order_id,amount,email\no1,10.5,ann@example.com\no2,3,bob@example.com\n"


def config(tmp_path, *, computed: list[dict], aggregates: list[dict] | None = None,
           segments: list[dict] | None = None, source_filter: str | None = None,
           sync_filter: str | None = None) -> dict:
    return {
        "connections": [{"name": "files", "type": "local", "path": str(tmp_path / "data")},
                        {"name": "out", "type": "local", "path": str(tmp_path / "out")}],
        "sources": [
            {"name": "crm", "connection": "files", "pattern": "c*.csv", "record_keys": ["id"],
             **({"filter": source_filter} if source_filter else {})},
            {"name": "shop", "connection": "files", "pattern": "o*.csv", "record_keys": ["order_id"],
             "relations": [{"column": "email", "to": "crm.email"}]},
        ],
        "datasets": [
            {"name": "contacts", "mappings": [{"source": "crm", "columns": {"crm_id": "id", "email": "email",
                                                                            "name": "name"}}],
             "computed": computed, **({"aggregates": aggregates} if aggregates else {})},
            {"name": "orders", "mappings": [{"source": "shop", "columns": {"order_id": "order_id",
                                                                           "amount": "amount", "email": "email"}}]},
        ],
        "segments": segments or [],
        "syncs": [{"name": "export", "dataset": "contacts", "connection": "out",
                   **({"filter": sync_filter} if sync_filter else {})}],
    }


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    """One workspace for the module: each test applies its configuration; a failed run leaves the
    first publication, and the one successful run publishes the same rows."""
    tmp_path = tmp_path_factory.mktemp("engine_errors")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "contacts.csv").write_text(CONTACTS)
    (tmp_path / "data" / "orders.csv").write_text(ORDERS)
    with Workspace.init(tmp_path / "ws") as w:
        w.apply(config(tmp_path, computed=[{"name": "initial", "sql": "left(name, 1)"}]))
        w.run()
        w.tmp = tmp_path
        yield w


def failure(ws, cfg) -> str:
    ws.apply(cfg)
    with pytest.raises(RunError) as exc:
        ws.run()
    # the last publication stays
    assert sorted(ws.table("contacts").to_pyarrow().column("initial").to_pylist()) == ["A", "B"]
    text = str(exc.value)
    assert "SELECT" not in text and "_tessera_" not in text, text
    return text


def test_a_cast_that_fails_names_the_computed_column_and_the_fix(ws):
    text = failure(ws, config(ws.tmp, computed=[{"name": "initial", "sql": "left(name, 1)"},
                                                  {"name": "n", "sql": "CAST(name AS INTEGER)"}]))
    assert text.startswith("Dataset 'contacts', computed column 'n' (datasets[0] (contacts).computed[1] (n).sql: "
                           "CAST(name AS INTEGER)): the engine could not compute it")
    assert "'Ann'" in text and "set the column's type" in text and "last published state is unchanged" in text


def test_the_failing_column_is_found_among_dependent_ones(ws):
    text = failure(ws, config(ws.tmp, computed=[
        {"name": "initial", "sql": "left(name, 1)"},
        {"name": "size", "sql": "length(name)"},
        {"name": "huge", "sql": "CAST(size * 1000000000000 AS INTEGER)"},
        {"name": "fine", "sql": "size + 1"}]))
    assert "computed column 'huge' (datasets[0] (contacts).computed[2] (huge).sql" in text
    assert "out of range" in text and "cast to a larger one" in text


def test_a_computed_column_after_aggregates_is_named_too(ws):
    text = failure(ws, config(ws.tmp, computed=[{"name": "initial", "sql": "left(name, 1)"},
                                                  {"name": "bad", "sql": "CAST(email AS DATE)"}],
                              aggregates=[{"name": "spent", "from": "orders", "function": "sum",
                                           "column": "amount"}]))
    assert "computed column 'bad' (datasets[0] (contacts).computed[1] (bad).sql: CAST(email AS DATE))" in text


def test_a_failing_segment_condition_skips_that_segment_only(ws):
    ws.apply(config(ws.tmp, computed=[{"name": "initial", "sql": "left(name, 1)"}], segments=[
        {"name": "broken", "conditions": [{"column": "email", "op": "is_not_empty"},
                                          {"sql": "CAST(name AS INTEGER) > 3"}]},
        {"name": "a_names", "conditions": [{"sql": "initial = 'A'"}]}]))
    result = ws.run()
    assert result.status == "succeeded with warnings"
    [warning] = result.warnings
    assert warning.startswith("Segment 'broken' was not refreshed: the engine could not compute its condition "
                              "segment 'broken'.conditions[1].sql (CAST(name AS INTEGER) > 3)")
    assert "'Ann'" in warning
    assert ws.segment("a_names")["size"] == 1
    # the live count says the same, as an error of the request (not an internal error)
    with pytest.raises(UsageError) as exc:
        ws.segment_count("broken")
    assert str(exc.value).startswith("Segment 'broken': the engine could not compute its condition "
                                     "segment 'broken'.conditions[1].sql (CAST(name AS INTEGER) > 3)")
    [done] = ws.refresh_segments(["broken"])
    assert "conditions[1].sql" in done["skipped"]


def test_a_failing_source_filter_is_named(ws):
    text = failure(ws, config(ws.tmp, computed=[{"name": "initial", "sql": "left(name, 1)"}],
                              source_filter="CAST(name AS INTEGER) > 0"))
    assert text.startswith("Source 'crm', filter (sources[0] (crm).filter: CAST(name AS INTEGER) > 0): the engine "
                           "could not compute it")
    assert "cast only the values that fit" in text and "set the column's type" not in text


def test_a_failing_aggregate_filter_is_named_not_the_computed_columns(ws):
    text = failure(ws, config(ws.tmp, computed=[{"name": "initial", "sql": "left(name, 1)"}],
                              aggregates=[{"name": "spent", "from": "orders", "function": "sum", "column": "amount"},
                                          {"name": "odd", "from": "orders", "function": "count",
                                           "filter": "CAST(email AS INTEGER) > 0"}]))
    assert text.startswith("Dataset 'contacts', aggregate 'odd' (datasets[0] (contacts).aggregates[1] (odd).filter: "
                           "CAST(email AS INTEGER) > 0): the engine could not compute it")


def test_a_failing_sync_filter_is_named_and_nothing_is_sent(ws):
    ws.apply(config(ws.tmp, computed=[{"name": "initial", "sql": "left(name, 1)"}],
                    sync_filter="CAST(name AS INTEGER) > 0"))
    [result] = ws.sync(["export"])
    assert result.status == "failed"
    assert result.errors[0].startswith("Sync 'export', filter (syncs[0] (export).filter: CAST(name AS INTEGER) > 0): "
                                       "the engine could not compute it")
    assert result.errors[0].endswith("Nothing was sent.")
    assert not (ws.tmp / "out").exists() or not any((ws.tmp / "out").iterdir())
