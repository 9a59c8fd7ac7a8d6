"""The 360° profile: attributes, source records, published events and events collected since."""

from __future__ import annotations

from event_helpers import EVENTS_TABLE, add_events, event
from test_stitching import CONFIG, CRM, contacts_by_customer


def test_a_profile_shows_new_events_before_the_next_run(make_workspace, monkeypatch):
    """Also: a server's reads keep what they compile and the status per state of the store, yet
    see an apply or a run at the very next read, and write nothing to the metadata store."""
    import yaml

    ws = make_workspace(CONFIG, {"crm.csv": CRM})
    add_events(ws, [
        event("page", "2024-12-01 10:00:00", anon="a1", message_id="p1", received="2024-12-01 10:00:00"),
        event("identify", "2024-12-01 10:10:00", anon="a1", user="C1", message_id="i1",
              received="2024-12-01 10:10:00"),
    ])
    ws.run()
    reader = ws.reader()
    status = reader.status()
    assert reader.status() == status
    tid = contacts_by_customer(ws)["C1"]["tessera_id"]
    prof = reader.profile(tid)
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
    prof = reader.profile(tid)
    assert [e["message_id"] for e in prof["events"]] == ["t2", "p2", "i1", "p1"]
    assert prof["pending_events"] == 0
    after = reader.status()
    assert [d["version"] for d in after["datasets"] if d["dataset"] == "contacts"] == [2]
    assert len(after["runs"]) == len(status["runs"]) + 1
    data = yaml.safe_load(ws.export_config())
    next(d for d in data["datasets"] if d["name"] == "contacts")["computed"] = [
        {"name": "shout", "sql": "upper(first_name)"}]
    ws.apply(data)
    assert [c.name for c in reader.config.datasets[0].computed] == ["shout"]

    def no_write():
        raise AssertionError("a read wrote to the metadata store")

    monkeypatch.setattr(ws.store, "_write", no_write)
    monkeypatch.setattr(ws.store, "_write_retrying", lambda fn: no_write())
    assert reader.status()["datasets"] and reader.profile(tid)["events"]
    draft = {"conditions": [{"column": "customer_id", "op": "=", "value": "C1"}]}
    assert reader.segment_count(draft)["count"] == reader.segment_count(draft)["count"] == 1



def test_a_served_profile_waiting_for_collected_events_is_not_kept_past_their_first_load(make_workspace,
                                                                                         monkeypatch):
    """A profile compiled before any event was collected looks for the collected events at most once
    a second (profiles.WAIT_LOOK_SECONDS): an answer read in that second after the first load shows
    none, and the server must not keep it until the next change."""
    from fastapi.testclient import TestClient

    from tessera import profiles
    from tessera.api.app import create_app

    ws = make_workspace(CONFIG, {"crm.csv": CRM})
    ws.run()
    assert not ws.adapter.exists(EVENTS_TABLE)
    path = ws.path
    tid = contacts_by_customer(ws)["C1"]["tessera_id"]
    ws.close()
    app = create_app(path, collect=False)
    with TestClient(app) as client:
        owner = app.state.owner
        client.headers["Authorization"] = f"Bearer {owner.local_token}"
        assert client.get(f"/api/profiles/{tid}").json()["events"] == []
        # the event loader's first load: the table of collected events is made, the answers are old
        add_events(owner.workspace, [event("track", "2099-01-01 08:01:00", user="C1", event="Order Completed",
                                           message_id="t1", received="2099-01-01 08:01:00")])
        owner.events_loaded()
        monkeypatch.setattr(profiles, "WAIT_LOOK_SECONDS", 3600.0)  # read within the second after the load
        client.get(f"/api/profiles/{tid}")
        monkeypatch.setattr(profiles, "WAIT_LOOK_SECONDS", 0.0)  # the second has passed
        assert [e["message_id"] for e in client.get(f"/api/profiles/{tid}").json()["events"]] == ["t1"]
