"""A behaviour segment follows the events as the event loader loads them, before the next run."""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "events"))

from event_helpers import add_events, event
from test_stitching import CONFIG, CRM, contacts_by_customer

from tessera.collect.loader import Loader, log_directory
from tessera.collect.log import LogWriter
from tessera.collect.messages import build_record, check_messages
from tessera.workspace import Workspace

EVENT_FIELDS = """
    columns:
      - {name: event, semantic: EventName}
      - {name: at, semantic: EventTime}
"""

SEGMENT = """
segments:
  - name: recent_buyers
    conditions: [{did: Order Completed, last: 36500}]
  - name: crm_only
    conditions: [{column: customer_id, op: is_not_empty}]
"""


def _config() -> str:
    config = CONFIG.replace("  - name: events\n    mappings:", "  - name: events\n" + EVENT_FIELDS.strip("\n")
                            + "\n    mappings:")
    return config + SEGMENT


def _log_track(path, user: str, name: str, message_id: str) -> int:
    """Write one track call to the workspace's log as the server does; return the log's end."""
    writer = LogWriter(log_directory(path))
    writer.open()
    message = {"type": "track", "userId": user, "event": name, "messageId": message_id}
    checked = check_messages([message], "batch", connection="web")
    writer.write([build_record("web", time.time_ns() // 1000, None, checked)])
    end = writer.end
    writer.close()
    return end


def test_an_event_load_updates_event_segments_before_the_next_run(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "crm.csv").write_text(CRM)
    (tmp_path / "workspace.yaml").write_text(_config())
    ws = Workspace.init(tmp_path / "ws")
    ws.apply(tmp_path / "workspace.yaml")
    add_events(ws, [event("track", "2024-12-01 10:00:00", user="C1", event="Order Completed", message_id="t1",
                          received="2024-12-01 10:00:00")])
    ws.run()
    ids = {k: v["tessera_id"] for k, v in contacts_by_customer(ws).items()}
    assert {m["tessera_id"] for m in ws.segment_members("recent_buyers")} == {ids["C1"]}
    assert ws.segment_count("recent_buyers")["count"] == 1

    # The server's loader appends C2's order: the segment takes it at once, no run needed.
    end = _log_track(ws.path, "C2", "Order Completed", "t2")
    _log_track(ws.path, "C3", "Page Viewed", "t3")
    end = _log_track(ws.path, "C4", "Page Viewed", "t4")
    result = Loader(ws).load(end)
    assert result.events == 3
    assert {m["tessera_id"] for m in ws.segment_members("recent_buyers")} == {ids["C1"], ids["C2"]}
    assert ws.segment_count("recent_buyers")["count"] == 2  # live counts see pending events too
    history = ws.segment_history("recent_buyers")
    assert [(s["size"], s["entered"]) for s in history["sizes"]] == [(1, 1), (2, 1)]
    assert [s["name"] for s in ws.segments() if s["size"] is not None] == ["recent_buyers", "crm_only"]
    crm_refreshes = ws.segment_history("crm_only")["sizes"]
    assert len(crm_refreshes) == 1  # a segment without event conditions waits for the next run

    # The next run links the event for good: nobody enters or leaves again.
    ws.run()
    assert {m["tessera_id"] for m in ws.segment_members("recent_buyers")} == {ids["C1"], ids["C2"]}
    assert ws.segment_history("recent_buyers")["sizes"][-1]["entered"] == 0
    ws.close()


def test_with_the_server_running_a_customer_enters_an_event_segment_after_the_event(tmp_path):
    """The stock path: an event through /v1, loaded by the server's loader, refreshed as a job."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "collect"))
    import httpx
    from collect_helpers import Server, wait_for

    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "crm.csv").write_text(CRM)
    (tmp_path / "workspace.yaml").write_text(_config())
    with Workspace.init(tmp_path / "ws") as ws:
        ws.apply(tmp_path / "workspace.yaml")
        ws.run()
        ids = {k: v["tessera_id"] for k, v in contacts_by_customer(ws).items()}
        assert ws.segment_members("recent_buyers") == []
    server = Server(tmp_path / "ws", tmp_path / "server.log")
    try:
        sent = httpx.post(f"{server.url}/v1/track", auth=("wk_web", ""), timeout=30,
                          json={"type": "track", "userId": "C2", "event": "Order Completed", "messageId": "srv-1"})
        assert sent.status_code == 200, sent.text
        acknowledged = time.monotonic()

        def entered():
            members = server.api("GET", "/api/segments/recent_buyers/members").json()["data"]
            return {m["tessera_id"] for m in members} == {ids["C2"]}

        wait_for(entered, timeout=120, what="C2 to enter recent_buyers")
        print(f"entered the segment {time.monotonic() - acknowledged:.2f} s after the acknowledgement")
        jobs = server.api("GET", "/api/jobs").json()
        assert any(j["kind"] == "segments_refresh" and j["requested_by"] == "event loader" for j in jobs)
    finally:
        server.stop()
