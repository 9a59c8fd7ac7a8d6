"""The 360° profile: attributes, source records, published events and events collected since."""

from __future__ import annotations

from event_helpers import add_events, event
from test_stitching import CONFIG, CRM, contacts_by_customer


def test_a_profile_shows_new_events_before_the_next_run(make_workspace):
    ws = make_workspace(CONFIG, {"crm.csv": CRM})
    add_events(ws, [
        event("page", "2024-12-01 10:00:00", anon="a1", message_id="p1", received="2024-12-01 10:00:00"),
        event("identify", "2024-12-01 10:10:00", anon="a1", user="C1", message_id="i1",
              received="2024-12-01 10:10:00"),
    ])
    ws.run()
    tid = contacts_by_customer(ws)["C1"]["tessera_id"]
    prof = ws.profile(tid)
    assert prof["attributes"]["customer_id"] == "C1"
    assert {r["customer_id"] for r in prof["records"]} == {"C1"}
    assert [e["message_id"] for e in prof["events"]] == ["i1", "p1"]
    assert prof["pending_events"] == 0
    # Collected after the publication: an anonymous page view of the same device, a track by user
    # id, and an event of someone else.
    add_events(ws, [
        event("page", "2099-01-01 08:00:00", anon="a1", message_id="p2", received="2099-01-01 08:00:00"),
        event("track", "2099-01-01 08:01:00", user="C1", event="Order Completed", message_id="t2",
              received="2099-01-01 08:01:00", properties={"revenue": 12.5}),
        event("page", "2099-01-01 08:02:00", anon="zz", message_id="p3", received="2099-01-01 08:02:00"),
    ])
    prof = ws.profile(tid)
    assert [e["message_id"] for e in prof["events"]] == ["t2", "p2", "i1", "p1"]
    assert prof["pending_events"] == 2
    assert prof["events"][0]["properties"] == {"revenue": 12.5}
    ws.run()
    prof = ws.profile(tid)
    assert [e["message_id"] for e in prof["events"]] == ["t2", "p2", "i1", "p1"]
    assert prof["pending_events"] == 0


def test_reads_follow_each_apply_and_run(make_workspace):
    """A server's reads keep what they compile and the status per state of the store: an apply
    or a run is seen by the very next read, on the same reader."""
    import yaml

    ws = make_workspace(CONFIG, {"crm.csv": CRM})
    ws.run()
    reader = ws.reader()
    status = reader.status()
    assert [d["version"] for d in status["datasets"] if d["dataset"] == "contacts"] == [1]
    tid = contacts_by_customer(ws)["C2"]["tessera_id"]
    assert reader.profile(tid)["attributes"]["first_name"] == "Bo"
    assert reader.status() == status  # nothing changed: the same answer
    data = yaml.safe_load(ws.export_config())
    contacts = next(d for d in data["datasets"] if d["name"] == "contacts")
    contacts["computed"] = [{"name": "shout", "sql": "upper(first_name)"}]
    ws.apply(data)
    assert [c.name for c in reader.config.datasets[0].computed] == ["shout"]
    assert "shout" not in reader.profile(tid)["attributes"]  # not published yet
    ws.run()
    after = reader.status()
    assert [d["version"] for d in after["datasets"] if d["dataset"] == "contacts"] == [2]
    assert len(after["runs"]) == len(status["runs"]) + 1
    assert reader.profile(tid)["attributes"]["shout"] == "BO"
