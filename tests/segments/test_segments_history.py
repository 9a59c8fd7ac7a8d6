"""Membership across runs (entries, exits and why), a sync whose audience is a segment, the
profile tag and the export column, the configuration's checks and its YAML round trip."""

from __future__ import annotations

import csv

import pytest
import yaml
from segment_helpers import CONFIG, PEOPLE, make_workspace, member_names, write_data

from tessera.config.loader import dump_yaml, parse_config
from tessera.errors import ConfigError
from tessera.workspace import Workspace

SEGMENTS = """
pipeline: {as_of: 2024-12-31}
segments:
  - name: paris_adults
    description: Adults living in Paris
    conditions:
      - {column: city, op: starts_with, value: paris}
      - {column: age, op: ">=", value: 30}
  - name: gold
    conditions: [{column: tier, op: "=", value: gold}]
"""


def _people(**changes: dict[str, str]) -> str:
    """PEOPLE with some values changed: ``_people(Ana={"city": "Lyon"})``."""
    rows = list(csv.DictReader(PEOPLE.splitlines()))
    for r in rows:
        r.update(changes.get(r["name"], {}))
    head = list(rows[0])
    return "\n".join([",".join(head)] + [",".join(r[h] for h in head) for r in rows]) + "\n"


def test_history_across_three_runs(tmp_path):
    ws = make_workspace(tmp_path, segments=SEGMENTS)
    people = tmp_path / "data" / "people.csv"
    ws.run()
    assert member_names(ws, "paris_adults") == {"Ana"}  # Di lives in Paris but is 28
    people.write_text(_people(Ana={"city": "Lyon"}, Di={"age": "31"}))
    ws.run()
    assert member_names(ws, "paris_adults") == {"Di"}
    people.write_text(_people(Ana={"city": "Paris"}, Di={"age": "29"}))
    ws.run()
    assert member_names(ws, "paris_adults") == {"Ana"}

    h = ws.segment_history("paris_adults")
    assert [(s["size"], s["entered"], s["exited"]) for s in h["sizes"]] == [(1, 1, 0), (1, 1, 1), (1, 1, 1)]
    contacts = {r["tessera_id"]: r["name"] for r in ws.adapter.to_arrow(ws.table("contacts")).to_pylist()}
    log = sorted(((contacts[c["tessera_id"]], c["change"], c["exit_condition"]) for c in h["changes"]),
                 key=lambda x: (x[0], x[1]))
    assert log == [("Ana", "entered", None), ("Ana", "entered", None),
                   ("Ana", "exited", "city starts with paris"),
                   ("Di", "entered", None), ("Di", "exited", "age >= 30")]
    # An exit keeps the time of the entry it closes; each row has its definition version.
    ana_exit = next(c for c in h["changes"] if c["change"] == "exited" and contacts[c["tessera_id"]] == "Ana")
    ana_first = min(c["entered_at"] for c in h["changes"] if contacts[c["tessera_id"]] == "Ana")
    assert ana_exit["entered_at"] == ana_first and ana_exit["exited_at"] > ana_first
    assert {c["version"] for c in h["changes"]} == {1}

    # A changed definition gets a new version at the next refresh; unchanged members stay.
    text = (tmp_path / "w.yaml").read_text().replace('value: 30}', 'value: 20}')
    (tmp_path / "w.yaml").write_text(text)
    ws.apply(tmp_path / "w.yaml")
    ws.refresh_segments(["paris_adults"])
    members = ws.segment_members("paris_adults", columns=["name"])
    assert {m["name"]: m["version"] for m in members} == {"Ana": 1, "Di": 2}
    assert ws.segment("paris_adults")["version"] == 2
    ws.close()


def test_a_sync_sends_the_members_of_its_segment(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    write_data(tmp_path / "data")
    data = yaml.safe_load(CONFIG + SEGMENTS)
    data["connections"] = [{"name": "files", "type": "local", "path": str(tmp_path / "data")},
                           {"name": "files_out", "type": "local", "path": str(out)}]
    data["syncs"] = [{"name": "gold_list", "dataset": "contacts", "segment": "gold", "connection": "files_out",
                      "mode": "mirror", "fields": {"id": "tessera_id", "name": "name"}, "file_name": "gold.csv"}]
    ws = Workspace.init(tmp_path / "ws")
    ws.apply(data)
    ws.run()
    [result] = ws.sync()
    assert result.inserted == 2
    with open(out / "gold.csv", newline="") as fh:
        assert sorted(r["name"] for r in csv.DictReader(fh)) == ["Ana", "Cy"]
    # The profile shows the segments with their entry time; exports carry a segments column.
    ana = next(r for r in ws.adapter.to_arrow(ws.table("contacts")).to_pylist() if r["name"] == "Ana")
    assert [s["segment"] for s in ws.profile(ana["tessera_id"])["segments"]] == ["gold", "paris_adults"]
    path = ws.export_data("contacts", tmp_path / "contacts.csv")
    with open(path, newline="") as fh:
        rows = {r["name"]: r["segments"] for r in csv.DictReader(fh)}
    assert rows["Ana"] == "gold, paris_adults" and rows["Cy"] == "gold" and rows["Bo"] == ""
    ws.close()


def test_every_segment_problem_is_reported_at_once():
    data = yaml.safe_load(CONFIG)
    data["segments"] = [
        {"name": "a", "conditions": [{"segment": "b"}, {"column": "nope", "op": "=", "value": 1}]},
        {"name": "b", "conditions": [{"segment": "a"}]},
        {"name": "c", "dataset": "orders", "conditions": [{"segment": "a"}]},
        {"name": "d", "conditions": [{"sql": "(SELECT 1) = 1"}, {"did": "x", "from": "nowhere"}]},
    ]
    data["syncs"] = [{"name": "s", "dataset": "orders", "segment": "a", "connection": "files"}]
    with pytest.raises(ConfigError) as exc:
        parse_config(data)
    text = "\n".join(exc.value.problems)
    assert "segments[0] (a).conditions[0].segment: segments use each other in a cycle: a -> b -> a" in text
    assert "segments[0] (a).conditions[1].column: 'nope' is not a column of dataset 'contacts'" in text
    assert "segments[2] (c).conditions[0].segment: segment 'a' is on dataset 'contacts'" in text
    assert "segments[3] (d).conditions[0].sql" in text and "subquer" in text.lower()
    assert "segments[3] (d).conditions[1].from: unknown dataset 'nowhere'" in text
    assert "syncs[0] (s).segment: segment 'a' is on dataset 'contacts'" in text


def test_a_malformed_condition_names_its_place():
    data = yaml.safe_load(CONFIG)
    data["segments"] = [{"name": "x", "conditions": [{"column": "age", "op": "between", "value": 3},
                                                     {"all": [{"did": "y", "op": "="}]}]}]
    with pytest.raises(ConfigError) as exc:
        parse_config(data)
    problems = exc.value.problems
    assert any(p.startswith("segments[0].conditions[0]: between takes a list of two values") for p in problems)
    assert any(p.startswith("segments[0].conditions[1].all[0]: op and value belong to column") for p in problems)


def test_segments_round_trip_through_yaml(tmp_path):
    data = yaml.safe_load(CONFIG + SEGMENTS)
    data["segments"].append({"name": "nested", "match": "any", "conditions": [
        {"not": {"segment": "gold"}, "label": "not gold"},
        {"did": "Added to Cart", "filter": "price > 50", "at_least": 2, "last": 3, "unit": "months"},
        {"aggregate": "sum", "from": "orders", "column": "amount", "op": "between", "value": [10, 20]},
        {"column": "signup", "op": "before", "value": "2024-01-31"}]})
    config = parse_config(data)
    again = parse_config(yaml.safe_load(dump_yaml(config)))
    assert again.segments == config.segments
    assert "not:" in dump_yaml(config) and "from: orders" in dump_yaml(config)


def test_a_segment_that_cannot_be_computed_is_skipped_and_the_run_succeeds(tmp_path):
    write_data(tmp_path / "data")
    data = yaml.safe_load(CONFIG + SEGMENTS)
    data["connections"][0]["path"] = str(tmp_path / "data")
    data["datasets"][0]["scores"] = {"predictive": True}  # 6 contacts: too few to fit, no columns this run
    data["segments"].append({"name": "risky", "conditions": [{"column": "score_churn_risk", "op": ">", "value": 0.5}]})
    ws = Workspace.init(tmp_path / "ws")
    ws.apply(data)
    result = ws.run()
    assert result.datasets["contacts"]["predictive"].startswith("skipped")
    step = next(s for s in result.steps if s["step"] == "segments")
    assert "'score_churn_risk' is not a column" in step["skipped"]["risky"]
    assert member_names(ws, "gold") == {"Ana", "Cy"} and member_names(ws, "risky") == set()
    assert ws.segment_history("risky")["sizes"] == []
    ws.close()


def test_refreshes_in_the_same_second_each_have_their_own_time(tmp_path):
    """Times are kept to the second: two refreshes in one second (quick runs) still follow each
    other in the history, each exit after the entry it closes."""
    ws = make_workspace(tmp_path, segments=SEGMENTS)
    ws.run()
    for _ in range(3):  # far quicker than a second apart
        ws.refresh_segments(["paris_adults"])
    sizes = ws.segment_history("paris_adults")["sizes"]
    times = [s["refreshed_at"] for s in sizes]
    assert len(times) == 4 and times == sorted(set(times)), times
    ws.close()
