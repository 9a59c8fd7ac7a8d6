"""Event sources: the events of an http connection staged like any source, JSON paths, filters."""

from __future__ import annotations

from datetime import datetime

import pytest
from event_helpers import add_events, event, events_table, table_rows

from tessera.config.loader import parse_config
from tessera.errors import ConfigError

CONFIG = """
connections:
  - {name: web, type: http, write_key: wk_web}
  - {name: app, type: http, write_key: wk_app}
sources:
  - name: web_events
    connection: web
    record_keys: [message_id]
    types: {properties.revenue: float}
datasets:
  - name: events
    mappings:
      - source: web_events
        columns: {message_id: message_id, type: type, event: event, user_id: user_id,
                  anonymous_id: anonymous_id, at: timestamp, received: received_at,
                  revenue: properties.revenue, url: context.page.url, first_name: traits.first_name,
                  first_item: properties.items.0.sku, category: extra.category}
"""


def test_an_event_source_stages_the_events_of_its_connection(make_workspace):
    ws = make_workspace(CONFIG)
    add_events(ws, [
        event("page", "2024-12-01 10:00:00", anon="a1", message_id="e1", context={"page": {"url": "https://x.io/"}},
              extra={"category": "Docs"}),
        event("track", "2024-12-01 10:05:00", anon="a1", user="u1", event="Order Completed", message_id="e2",
              properties={"revenue": 12.5, "items": [{"sku": "S1"}, {"sku": "S2"}]}),
        event("identify", "2024-12-01 10:06:00", user="u1", message_id="e3", traits={"first_name": "Ana"}),
        event("track", "2024-12-01 10:07:00", anon="zz", event="Other app", connection="app", message_id="e4"),
    ])
    result = ws.run()
    assert result.sources["web_events"]["staged"] == 3 and result.sources["web_events"]["rejected"] == 0
    got = {r["message_id"]: r for r in table_rows(ws, "events")}
    assert set(got) == {"e1", "e2", "e3"}  # the app connection's event is not this source's
    assert got["e1"]["url"] == "https://x.io/" and got["e1"]["type"] == "page" and got["e1"]["category"] == "Docs"
    assert got["e2"]["revenue"] == 12.5 and got["e2"]["first_item"] == "S1" and got["e2"]["user_id"] == "u1"
    assert got["e3"]["first_name"] == "Ana" and got["e3"]["revenue"] is None
    assert got["e2"]["at"] == datetime(2024, 12, 1, 10, 5)


def test_no_events_yet_stages_zero_rows(make_workspace):
    ws = make_workspace(CONFIG)
    result = ws.run()  # the events table does not exist yet
    assert result.status == "succeeded" and result.sources["web_events"]["staged"] == 0
    assert table_rows(ws, "events") == []
    add_events(ws, [event("page", "2024-12-01 10:00:00", anon="a1", connection="app")])
    assert ws.run().sources["web_events"]["staged"] == 0  # events of another connection only


def test_an_events_table_without_extra_reads_it_as_empty(make_workspace):
    ws = make_workspace(CONFIG)
    ws.adapter.append("_tessera_events", events_table([event("page", "2024-12-01 10:00:00", anon="a1",
                                                             message_id="e1")]).drop(["extra"]))
    ws.run()
    assert [(r["message_id"], r["category"]) for r in table_rows(ws, "events")] == [("e1", None)]


def test_alias_placeholders_and_duplicates(make_workspace):
    ws = make_workspace(CONFIG)
    add_events(ws, [
        event("alias", "2024-12-01 10:00:00", user="u1", prev="a9", message_id="e1"),
        event("page", "2024-12-01 10:00:00", anon=" Undefined ", user="null", message_id="e2"),
        event("page", "2024-12-01 10:00:00", anon="anonymous", user="0", message_id="e3"),
        # the same message delivered twice (a client retry after the deduplication window)
        event("page", "2024-12-01 11:00:00", anon="a2", message_id="e4"),
        event("page", "2024-12-01 11:00:00", anon="a2", message_id="e4", received="2024-12-01 11:30:00"),
    ])
    result = ws.run()
    assert result.sources["web_events"]["staged"] == 4 and result.sources["web_events"]["rejected"] == 0
    got = {r["message_id"]: r for r in table_rows(ws, "events")}
    assert got["e1"]["anonymous_id"] == "a9" and got["e1"]["user_id"] == "u1"
    assert got["e2"]["anonymous_id"] is None and got["e2"]["user_id"] is None
    assert got["e3"]["anonymous_id"] is None and got["e3"]["user_id"] is None
    assert got["e4"]["received"] == datetime(2024, 12, 1, 11, 30)  # the latest delivery


def test_filter_keeps_matching_events(make_workspace):
    config = CONFIG.replace("    types: {properties.revenue: float}",
                            "    types: {properties.revenue: float}\n"
                            "    filter: \"type = 'track' and properties.revenue > 10\"")
    ws = make_workspace(config)
    add_events(ws, [
        event("track", "2024-12-01 10:00:00", anon="a1", event="Order Completed", properties={"revenue": 12.5},
              message_id="e1"),
        event("track", "2024-12-01 10:00:00", anon="a1", event="Order Completed", properties={"revenue": 5},
              message_id="e2"),
        event("track", "2024-12-01 10:00:00", anon="a1", event="Product Added", message_id="e3"),
        event("page", "2024-12-01 10:00:00", anon="a1", message_id="e4"),
    ])
    result = ws.run()
    assert [r["message_id"] for r in table_rows(ws, "events")] == ["e1"]
    assert result.sources["web_events"]["rejected"] == 0  # filtered out is not rejected


def test_rejected_events_name_their_message(make_workspace):
    config = CONFIG.replace("types: {properties.revenue: float}", "types: {properties.revenue: integer}")
    ws = make_workspace(config)
    add_events(ws, [event("track", "2024-12-01 10:00:00", anon="a1", event="x", properties={"revenue": "lots"},
                          message_id="e1"),
                    event("track", "2024-12-01 10:00:00", anon="a1", event="x", message_id="")])
    result = ws.run()
    assert result.sources["web_events"] == {"staged": 0, "rejected": 2}
    rej = ws.adapter.to_arrow(ws.rejects("web_events")).to_pylist()
    reasons = sorted(r["reason"] for r in rej)
    assert reasons == ["record key (message_id) is empty", "value 'lots' is not a valid integer"]
    assert {r["file"] for r in rej} == {"events:web"}
    assert any(r["raw"].startswith("e1;") for r in rej)


# --------------------------------------------------------------------------- configuration checks

BASE = {
    "connections": [{"name": "web", "type": "http", "write_key": "k"}, {"name": "files", "type": "local",
                                                                         "path": "."}],
    "sources": [{"name": "ev", "connection": "web", "record_keys": ["message_id"]}],
    "datasets": [{"name": "events", "mappings": [{"source": "ev", "columns": {"message_id": "message_id"}}]}],
}


def _with(source: dict | None = None, mapping: dict | None = None) -> dict:
    import copy

    data = copy.deepcopy(BASE)
    data["sources"][0].update(source or {})
    data["datasets"][0]["mappings"][0]["columns"].update(mapping or {})
    return data


def test_event_source_columns_are_checked():
    parse_config(_with({"columns": ["message_id", "traits.first_name", "context.page.url"]},
                       {"first": "traits.first_name", "id": "properties.order-id"}))
    with pytest.raises(ConfigError) as exc:
        parse_config(_with({"record_keys": ["msg_id"], "normalize": {"traits": ["trim"], "trait.x": ["trim"]}},
                           {"url": "context.page url"}))
    text = str(exc.value)
    assert "sources[0] (ev).record_keys: 'msg_id' is not an event column" in text
    assert "sources[0] (ev).normalize: 'trait.x' is not an event column" in text
    assert "datasets[0] (events).mappings[0].columns.url: 'context.page url' is not a JSON path" in text


def test_source_filter_is_checked():
    parse_config(_with({"filter": "user_id is not null or traits.plan = 'pro'"}))
    with pytest.raises(ConfigError, match=r"sources\[0\] \(ev\)\.filter: unknown column 'usr_id' "
                                          r"\(did you mean user_id"):
        parse_config(_with({"filter": "usr_id is not null"}))
    with pytest.raises(ConfigError, match=r"sources\[0\] \(ev\)\.filter: subquery"):
        parse_config(_with({"filter": "user_id in (select 1)"}))
    # a file source's columns are known only once imported: the expression itself is checked
    data = _with()
    data["sources"].append({"name": "crm", "connection": "files", "pattern": "*.csv", "record_keys": ["id"],
                            "filter": "anything_goes > 1"})
    parse_config(data)
    data["sources"][1]["filter"] = "sum(x) > 1"
    with pytest.raises(ConfigError, match=r"sources\[1\] \(crm\)\.filter: aggregate function"):
        parse_config(data)


def test_the_documented_event_configuration_is_valid():
    import re
    from pathlib import Path

    import yaml

    doc = (Path(__file__).resolve().parents[2] / "docs" / "configuration.md").read_text()
    section = doc[doc.index("### Event sources"):]
    block = re.search(r"```yaml\n(.*?)```", section, re.S).group(1)
    config = parse_config(yaml.safe_load(block))
    assert [s.name for s in config.sources] == ["crm", "web_identities", "web_events"]


FILE_CONFIG = """
connections: [{name: files, type: local, path: data}]
sources:
  - name: crm
    connection: files
    pattern: crm.csv
    record_keys: [id]
    columns: [id, email]
    types: {spent: float}
    normalize: {country: [trim, upper]}
    filter: "country = 'FR' and coalesce(spent, 0) < 100"
datasets:
  - name: contacts
    mappings: [{source: crm, columns: {id: id, email: email}}]
"""


def test_a_file_source_filter_sees_typed_normalized_values(make_workspace):
    ws = make_workspace(FILE_CONFIG, {"crm.csv": "id,email,country,spent\n1,a@x.io, fr ,10\n2,b@x.io,ES,5\n"
                                                 "3,c@x.io,FR,500\n4,d@x.io,FR,\n,e@x.io,DE,1\n5,f@x.io,FR,abc\n"})
    result = ws.run()
    got = table_rows(ws, "contacts", "id")
    assert [r["id"] for r in got] == ["1", "4"]
    # a row the filter drops is not rejected, even without its record key; a row it keeps still is
    assert result.sources["crm"]["rejected"] == 1
    assert [r["reason"] for r in ws.adapter.to_arrow(ws.rejects("crm")).to_pylist()] == [
        "value 'abc' is not a valid float"]


def test_a_filter_must_be_a_condition(make_workspace):
    # refused by apply already, not first by the run
    with pytest.raises(ConfigError, match=r"\(crm\)\.filter: the filter is a value \(UPPER\(.*not a condition"):
        make_workspace(FILE_CONFIG.replace("filter: \"country = 'FR' and coalesce(spent, 0) < 100\"",
                                           "filter: \"upper(country)\""),
                       {"crm.csv": "id,email,country,spent\n1,a@x.io,FR,10\n"})


def test_scores_list_shows_engagement():
    import os
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "tessera.cli.main", "scores", "list"], capture_output=True,
                         text=True, timeout=120, env={**os.environ, "COLUMNS": "200"}).stdout
    assert "engagement" in out and "score_sessions_30d" in out and "EventTime" in out
