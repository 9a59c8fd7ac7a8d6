"""The stock Segment and RudderStack Python clients, pointed at a real server with their host setting."""

from __future__ import annotations

import logging
import os
import uuid

import pytest
import rudderstack.analytics
import segment.analytics
from collect_helpers import WRITE_KEY, by_id, events

CLIENTS = {
    "segment": lambda **kw: segment.analytics.Client(**kw),
    "segment-gzip": lambda **kw: segment.analytics.Client(gzip=True, **kw),
    "rudderstack": lambda **kw: rudderstack.analytics.Client(**kw),  # gzip by default
    "rudderstack-plain": lambda **kw: rudderstack.analytics.Client(gzip=False, **kw),
}


def make_client(name: str, url: str, key: str = WRITE_KEY):
    errors: list = []
    client = CLIENTS[name](write_key=key, host=url, debug=True, upload_interval=0.05, max_retries=3,
                           on_error=lambda exc, batch: errors.append((exc, batch)))
    return client, errors


def upload_log(caplog) -> dict[str, int]:
    """What the clients' debug logs say about their uploads."""
    text = [r.getMessage() for r in caplog.records if r.name in ("segment", "rudderstack", "backoff")]
    return {
        "requests": sum(m.startswith("making request") for m in text),
        "uploaded": sum(m == "data uploaded successfully" for m in text),
        "retries": sum(m.startswith(("Retry attempt", "Network error retry", "Backing off")) for m in text),
        "errors": sum("error" in m.lower() for m in text),
    }


@pytest.mark.parametrize("name", list(CLIENTS))
def test_every_call_type_arrives_without_error_or_retry(name, shared_server, caplog):
    caplog.set_level(logging.DEBUG)
    client, errors = make_client(name, shared_server.url)
    run = uuid.uuid4().hex[:8]

    def mid(kind: str) -> str:
        return f"{name}-{run}-{kind}"

    user = f"user-{run}"
    client.identify(user, {"email": f" {run}@Example.com ", "plan": "pro"}, message_id=mid("identify"))
    client.track(user, "Order Completed", {"total": 42.5, "items": [1, 2]}, message_id=mid("track"))
    client.page(user, "Docs", "Install", {"path": "/docs/install"}, message_id=mid("page"))
    client.screen(user, "App", "Settings", {"dark": True}, message_id=mid("screen"))
    client.group(user, f"acme-{run}", {"employees": 50}, message_id=mid("group"))
    client.alias(f"anon-{run}", user, message_id=mid("alias"))
    client.track(anonymous_id=f"anon-{run}", event="Viewed", message_id=mid("anonymous"))
    client.flush()
    client.join()

    assert errors == []
    log = upload_log(caplog)
    assert log["requests"] >= 1 and log["requests"] == log["uploaded"], log
    assert log["retries"] == 0 and log["errors"] == 0, log

    shared_server.wait_loaded()
    rows = by_id(events(shared_server.workspace))
    identify, track, page, screen = (rows[mid(k)] for k in ("identify", "track", "page", "screen"))
    group, alias, anonymous = (rows[mid(k)] for k in ("group", "alias", "anonymous"))
    assert {r["type"] for r in (identify, track, page, screen, group, alias)} == {
        "identify", "track", "page", "screen", "group", "alias"}
    assert identify["user_id"] == user and identify["email"] == f"{run}@example.com"
    assert '"plan":"pro"' in identify["traits"]
    assert track["event"] == "Order Completed" and '"total":42.5' in track["properties"]
    assert page["name"] == "Install" and '"category":"Docs"' in page["extra"]
    assert screen["name"] == "Settings" and '"dark":true' in screen["properties"]
    assert group["group_id"] == f"acme-{run}" and '"employees":50' in group["traits"]
    assert alias["previous_id"] == f"anon-{run}" and alias["user_id"] == user
    assert anonymous["anonymous_id"] == f"anon-{run}" and anonymous["user_id"] is None
    for row in (identify, track, page, screen, group, alias, anonymous):
        assert row["connection"] == "web"
        assert '"library"' in row["context"]  # the client's context.library came through
        assert row["timestamp"] is not None and row["sent_at"] is not None and row["received_at"] is not None
        # Client and server share a clock here: the corrected time is the client's, give or take the trip.
        assert abs((row["timestamp"] - row["original_timestamp"]).total_seconds()) < 5


@pytest.mark.parametrize("name", ["segment", "rudderstack"])
def test_a_wrong_write_key_is_refused_and_the_client_reports_it(name, shared_server, caplog):
    caplog.set_level(logging.DEBUG)
    client, errors = make_client(name, shared_server.url, key="wk_wrong")
    message_id = f"wrong-key-{uuid.uuid4().hex}"
    client.track("u1", "Refused", message_id=message_id)
    client.flush()
    client.join()

    assert len(errors) == 1
    exc, batch = errors[0]
    assert exc.status == 401 and exc.code == "invalid_write_key"
    assert "write key" in exc.message and "tessera apply" in exc.message
    assert [m["messageId"] for m in batch] == [message_id]
    assert upload_log(caplog)["retries"] == 0  # 401 is final: no retry
    shared_server.wait_loaded()
    assert message_id not in by_id(events(shared_server.workspace))


def test_a_message_sent_twice_by_a_client_is_stored_once(shared_server):
    client, errors = make_client("segment", shared_server.url)
    message_id = f"twice-{uuid.uuid4().hex}"
    client.track("u1", "First", message_id=message_id)
    client.flush()
    client.track("u1", "Second", message_id=message_id)  # a retry after a lost answer looks like this
    client.flush()
    client.join()
    assert errors == []
    shared_server.wait_loaded()
    rows = [r for r in events(shared_server.workspace) if r["message_id"] == message_id]
    assert len(rows) == 1 and rows[0]["event"] == "First"


@pytest.mark.parametrize("gzip", [True, False])
def test_rudderstack_default_batches_of_large_events_are_accepted(gzip, shared_server, caplog):
    # rudder-sdk-python closes a batch once it passes 4 MB: 100 events of 45 KB make batches of
    # about 4 MB, which the client would drop whole had the server refused them.
    caplog.set_level(logging.DEBUG)
    errors: list = []
    client = rudderstack.analytics.Client(write_key=WRITE_KEY, host=shared_server.url, gzip=gzip, debug=True,
                                          max_retries=1, on_error=lambda exc, batch: errors.append(exc))
    run = uuid.uuid4().hex[:8]
    blob = os.urandom(22_500).hex()  # 45 KB that gzip cannot shrink much
    for i in range(100):
        client.track(f"user-{run}", "Catalog Synced", {"payload": blob, "i": i}, message_id=f"big-{run}-{i}")
    client.flush()
    client.join()
    assert errors == []
    log = upload_log(caplog)
    assert log["requests"] >= 1 and log["requests"] == log["uploaded"] and log["errors"] == 0, log
    shared_server.wait_loaded()
    rows = by_id(events(shared_server.workspace))
    assert all(f"big-{run}-{i}" in rows for i in range(100))
