"""A refresh in which few members change edits the members table in place (its entries and
exits only), and gives what a rewrite gives: the members, the entry times of those who stay,
the log with each exit's reason and version, the sizes; a segment no longer configured loses
its members. On DuckDB and PostgreSQL (Spark has no DELETE: its in-place change is the rewrite
that tests/segments/test_segments_conditions.py runs there)."""

from __future__ import annotations

import uuid

import pytest
from segment_helpers import make_workspace, member_names

from tessera.segments import LOG, MEMBERS

SEGMENTS = """
pipeline: {as_of: 2024-12-31}
segments:
  - name: everyone
    conditions: [{column: age, op: ">=", value: 0}]
  - name: adults
    conditions: [{column: age, op: ">=", value: 20}]
  - name: gold
    conditions: [{column: tier, op: "=", value: gold}]
"""

ALL = {"Ana", "Bo", "Cy", "Di", "Ed", "Fa"}


@pytest.fixture(params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def workspace(request, tmp_path):
    engine = request.param
    if engine == "postgres":
        server = request.getfixturevalue("postgres_server")
        engine = server.create_database(f"segr_{uuid.uuid4().hex[:8]}")
    ws = make_workspace(tmp_path, engine, SEGMENTS)
    yield ws
    ws.close()


def _entered_at(ws, segment: str) -> dict[str, str]:
    return {m["name"]: m["entered_at"] for m in ws.segment_members(segment, limit=1000, columns=["name"])}


def test_few_changes_are_applied_in_place_with_the_same_result(workspace):
    ws = workspace
    ws.run()
    assert member_names(ws, "everyone") == ALL and member_names(ws, "gold") == {"Ana", "Cy"}
    assert member_names(ws, "adults") == ALL - {"Bo"}  # Bo is 19
    first = _entered_at(ws, "adults")
    ws.index_for_reads()  # the server indexes the members for profile reads
    names = {r["tessera_id"]: r["name"] for r in ws.adapter.to_arrow(ws.table("contacts")).to_pylist()}

    # 1 exit among 13 members: in place
    ws.save_segment({"name": "adults", "conditions": [{"column": "age", "op": ">=", "value": 30}]})
    [done] = ws.refresh_segments(["adults"])
    assert (done["size"], done["entered"], done["exited"], done["version"]) == (4, 0, 1, 2)
    assert member_names(ws, "adults") == {"Ana", "Cy", "Ed", "Fa"}  # Di is 28
    assert _entered_at(ws, "adults") == {n: first[n] for n in ("Ana", "Cy", "Ed", "Fa")}
    log = ws.segment_history("adults")["changes"]
    exit_ = next(c for c in log if c["change"] == "exited")
    assert (names[exit_["tessera_id"]], exit_["exit_condition"], exit_["version"], exit_["entered_at"]) == \
        ("Di", "age >= 30", 2, first["Di"])
    if ws.adapter.name == "duckdb":  # the index made for reads is still there
        found = ws.adapter.sql("SELECT count(*) FROM duckdb_indexes() WHERE table_name = ?", [MEMBERS]).fetchone()[0]
        assert found == 1

    # 2 entries: in place, with the new version; those who stay keep theirs
    ws.save_segment({"name": "adults", "conditions": [{"column": "age", "op": ">=", "value": 19}]})
    [done] = ws.refresh_segments(["adults"])
    assert (done["size"], done["entered"], done["exited"], done["version"]) == (6, 2, 0, 3)
    members = ws.segment_members("adults", limit=1000, columns=["name"])
    assert {m["name"]: m["version"] for m in members} == {"Ana": 1, "Cy": 1, "Ed": 1, "Fa": 1, "Bo": 3, "Di": 3}
    assert [(s["size"], s["entered"], s["exited"]) for s in ws.segment_history("adults")["sizes"]] == [
        (5, 5, 0), (4, 0, 1), (6, 2, 0)]

    # a segment removed from the configuration loses its members; the others keep theirs
    ws.delete_segment("gold")
    done = ws.refresh_segments()
    assert {d["segment"]: d["size"] for d in done} == {"everyone": 6, "adults": 6}
    m = ws.adapter.table(MEMBERS)
    rows = ws.adapter.to_arrow(m.group_by("segment").agg(n=m.count())).to_pylist()
    assert {r["segment"]: r["n"] for r in rows} == {"everyone": 6, "adults": 6}
    log = ws.adapter.table(LOG)
    assert ws.adapter.count(log.filter(log.segment == "gold")) == 2  # the history stays


@pytest.mark.spark
def test_a_second_refresh_on_spark_logs_its_entries_and_exits(tmp_path, request):
    """The comparison of each record's segments with the last refresh's, on an engine that rewrites."""
    request.getfixturevalue("spark_session")
    ws = make_workspace(tmp_path, "spark", SEGMENTS)
    try:
        ws.run()
        assert member_names(ws, "adults") == ALL - {"Bo"}
        ws.save_segment({"name": "adults", "conditions": [{"column": "age", "op": ">=", "value": 30}]})
        [done] = ws.refresh_segments(["adults"])
        assert (done["size"], done["entered"], done["exited"]) == (4, 0, 1)
        assert member_names(ws, "adults") == {"Ana", "Cy", "Ed", "Fa"}
        names = {r["tessera_id"]: r["name"] for r in ws.adapter.to_arrow(ws.table("contacts")).to_pylist()}
        exits = [c for c in ws.segment_history("adults")["changes"] if c["change"] == "exited"]
        assert [(names[c["tessera_id"]], c["exit_condition"]) for c in exits] == [("Di", "age >= 30")]
        assert member_names(ws, "gold") == {"Ana", "Cy"}  # not refreshed: kept
    finally:
        ws.close()
