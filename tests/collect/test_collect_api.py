"""The /v1 API with raw requests: authentication, errors, limits, gzip, de-duplication, clock skew."""

from __future__ import annotations

import gzip
import uuid
from datetime import datetime, timedelta, timezone

import httpx
import orjson
import pytest
from collect_helpers import WRITE_KEY, apply_through, by_id, events, rejects, wait_for


AUTH = (WRITE_KEY, "")


def uid(prefix: str = "m") -> str:
    return f"{prefix}-{uuid.uuid4().hex}"


def track(message_id: str, **fields) -> dict:
    return {"type": "track", "userId": "u1", "event": "Clicked", "messageId": message_id, **fields}


def post(server, path: str, body, *, auth=AUTH, headers=None) -> httpx.Response:
    content = body if isinstance(body, bytes) else orjson.dumps(body)
    return httpx.post(f"{server.url}{path}", content=content, auth=auth, timeout=30,
                      headers={"Content-Type": "application/json", **(headers or {})})


def assert_error(response: httpx.Response, status: int, code: str, text: str) -> dict:
    """The one error shape of the server, with the code and message the clients read."""
    assert response.status_code == status, response.text
    body = response.json()
    assert body["ok"] is False and body["status"] == status and body["code"] == code
    assert body["message"] == body["error"] and body["errors"]
    assert text in body["error"], body["error"]
    return body


def test_single_calls_and_batch_and_import(shared_server):
    ids = {kind: uid(kind) for kind in ("identify", "track", "page", "screen", "group", "alias", "b1", "i1")}
    calls = {
        "identify": {"userId": "u1", "traits": {"email": "A@B.C"}},
        "track": {"userId": "u1", "event": "Signed Up"},
        "page": {"anonymousId": "a1", "name": "Home"},
        "screen": {"userId": "u1", "name": "Settings"},
        "group": {"userId": "u1", "groupId": "g1"},
        "alias": {"userId": "u1", "previousId": "a1"},
    }
    for kind, body in calls.items():
        response = post(shared_server, f"/v1/{kind}", {**body, "messageId": ids[kind]})
        assert response.status_code == 200 and response.json() == {"success": True}, response.text
    assert post(shared_server, "/v1/batch", {"batch": [track(ids["b1"])]}).status_code == 200
    assert post(shared_server, "/v1/import", {"batch": [track(ids["i1"])]}).status_code == 200
    shared_server.wait_loaded()
    rows = by_id(events(shared_server.workspace))
    for kind in calls:
        assert rows[ids[kind]]["type"] == kind
    assert rows[ids["identify"]]["email"] == "a@b.c"
    assert rows[ids["b1"]]["event"] == rows[ids["i1"]]["event"] == "Clicked"


def test_write_key_in_the_body_and_missing_or_wrong_keys(shared_server):
    message_id = uid()
    response = post(shared_server, "/v1/batch", {"batch": [track(message_id)], "writeKey": WRITE_KEY}, auth=None)
    assert response.status_code == 200
    assert_error(post(shared_server, "/v1/batch", {"batch": [track(uid())]}, auth=None), 401, "missing_write_key",
                 "HTTP Basic user name")
    assert_error(post(shared_server, "/v1/track", track(uid()), auth=("nope", "")), 401, "invalid_write_key",
                 "tessera apply")
    shared_server.wait_loaded()
    row = by_id(events(shared_server.workspace))[message_id]
    assert "writeKey" not in (row["extra"] or "")


def test_whole_requests_that_are_invalid_get_400(shared_server):
    assert_error(post(shared_server, "/v1/batch", b"{not json"), 400, "invalid_json", "not valid JSON")
    assert_error(post(shared_server, "/v1/batch", b"[1, 2]"), 400, "invalid_json", "must be a JSON object")
    assert_error(post(shared_server, "/v1/batch", {"messages": []}), 400, "invalid_batch", "'batch' list")
    assert_error(post(shared_server, "/v1/batch", {"batch": [], "sentAt": "noon"}), 400, "invalid_sent_at", "noon")
    body = assert_error(post(shared_server, "/v1/track", {"userId": "u1"}), 400, "invalid_message",
                        "needs an event name")
    assert body["errors"] == ["message 0: a track needs an event name (event)"]
    assert_error(post(shared_server, "/v1/batch", b"\x1f\x8b" + b"\xff" * 50), 400, "bad_gzip", "not valid gzip")


def test_an_invalid_message_in_a_batch_is_dropped_and_recorded_while_the_others_are_kept(shared_server):
    good, other = uid("good"), uid("good")
    marker = uid("bad")
    batch = [track(good), {"type": "track", "userId": "u1", "messageId": marker}, track(other),
             {"type": "identify", "messageId": marker, "traits": {"marker": marker}}]
    response = post(shared_server, "/v1/batch", {"batch": batch})
    assert response.status_code == 200
    assert response.json() == {
        "success": True, "rejected": 2,
        "errors": ["message 1: a track needs an event name (event)",
                   "message 3: a identify needs a userId or an anonymousId"],
    }
    # Every message refused: 400, and still recorded.
    assert_error(post(shared_server, "/v1/batch", {"batch": [{"type": "nope", "messageId": marker}]}), 400,
                 "invalid_message", "all 1 messages were refused")
    shared_server.wait_loaded()
    rows = by_id(events(shared_server.workspace))
    assert good in rows and other in rows and marker not in rows
    refused = [r for r in rejects(shared_server.workspace) if marker in r["message"]]
    assert sorted(r["reason"] for r in refused) == [
        "a identify needs a userId or an anonymousId", "a track needs an event name (event)",
        "type 'nope' is not one of identify, track, page, screen, group, alias"]
    assert all(r["connection"] == "web" and r["received_at"] is not None for r in refused)


def test_size_limits(shared_server):
    small, big = uid("small"), uid("big")
    response = post(shared_server, "/v1/batch", {"batch": [track(small), track(big, properties={"x": "y" * 33_000})]})
    assert response.status_code == 200 and response.json()["rejected"] == 1
    assert "more than 32 KB" in response.json()["errors"][0]
    assert_error(post(shared_server, "/v1/track", track(uid(), properties={"x": "y" * 33_000})), 413,
                 "payload_too_large", "more than 32 KB")
    many = {"batch": [track(uid(), properties={"x": "y" * 20_000}) for _ in range(30)]}  # ~600 KB
    assert_error(post(shared_server, "/v1/batch", many), 413, "payload_too_large", "500 KB")
    shared_server.wait_loaded()
    rows = by_id(events(shared_server.workspace))
    assert small in rows and big not in rows


def test_gzip_with_or_without_content_encoding(shared_server):
    declared, undeclared = uid("gz"), uid("gz")
    body = gzip.compress(orjson.dumps({"batch": [track(declared)]}))
    assert post(shared_server, "/v1/batch", body, headers={"Content-Encoding": "gzip"}).status_code == 200
    body = gzip.compress(orjson.dumps({"batch": [track(undeclared)]}))
    assert post(shared_server, "/v1/batch", body).status_code == 200
    shared_server.wait_loaded()
    rows = by_id(events(shared_server.workspace))
    assert declared in rows and undeclared in rows


def test_a_decompression_bomb_is_refused(shared_server):
    bomb = gzip.compress(b'{"batch": ["' + b"a" * (100 * 1024 * 1024) + b'"]}', 9)  # 100 MB in ~100 KB
    assert len(bomb) < 200 * 1024
    assert_error(post(shared_server, "/v1/batch", bomb, headers={"Content-Encoding": "gzip"}), 413,
                 "payload_too_large", "once decompressed")
    assert shared_server.health()["ok"]


def test_the_same_message_id_is_stored_once(shared_server):
    message_id, inside = uid("dup"), uid("dup")
    assert post(shared_server, "/v1/batch", {"batch": [track(message_id, event="First")]}).status_code == 200
    shared_server.wait_loaded()  # the second copy meets the first in the warehouse, not only in memory
    for _ in range(2):
        assert post(shared_server, "/v1/batch", {"batch": [track(message_id, event="Again")]}).status_code == 200
    assert post(shared_server, "/v1/batch", {"batch": [track(inside), track(inside)]}).status_code == 200
    shared_server.wait_loaded()
    rows = [r for r in events(shared_server.workspace) if r["message_id"] in (message_id, inside)]
    assert sorted(r["message_id"] for r in rows) == sorted([message_id, inside])
    assert by_id(rows)[message_id]["event"] == "First"


def test_clock_skew_is_corrected(shared_server):
    # The client's clock is 2 hours ahead: its event happened 30 s before it sent the batch.
    skew = timedelta(hours=2)
    client_now = datetime.now(timezone.utc) + skew
    event_time = client_now - timedelta(seconds=30)
    message_id, own_sent_at, historical = uid("skew"), uid("skew"), uid("skew")
    batch = [
        track(message_id, timestamp=event_time.isoformat()),
        # A message's own sentAt wins over the batch's.
        track(own_sent_at, originalTimestamp=event_time.isoformat(),
              sentAt=(event_time + timedelta(seconds=10)).isoformat()),
        # Without sentAt (an import), the client's time is kept.
        track(historical, timestamp="2020-01-01T00:00:00Z"),
    ]
    body = {"batch": batch[:2], "sentAt": client_now.isoformat()}
    assert post(shared_server, "/v1/batch", body).status_code == 200
    assert post(shared_server, "/v1/import", {"batch": batch[2:]}).status_code == 200
    shared_server.wait_loaded()
    rows = by_id(events(shared_server.workspace))
    row = rows[message_id]
    assert row["received_at"] - row["timestamp"] == timedelta(seconds=30)
    assert row["original_timestamp"] == event_time.replace(tzinfo=None)
    assert row["sent_at"] == client_now.replace(tzinfo=None)
    assert abs(row["received_at"] - datetime.now(timezone.utc).replace(tzinfo=None)) < timedelta(minutes=5)
    assert rows[own_sent_at]["received_at"] - rows[own_sent_at]["timestamp"] == timedelta(seconds=10)
    assert rows[historical]["timestamp"] == datetime(2020, 1, 1)


def test_unknown_routes_and_methods_get_the_error_shape(shared_server):
    assert_error(httpx.get(f"{shared_server.url}/v1/nothing"), 404, "not_found", "Not Found")
    assert_error(httpx.get(f"{shared_server.url}/v1/batch"), 405, "method_not_allowed", "Method Not Allowed")


def test_write_keys_follow_the_configuration(make_server, tmp_path):
    from collect_helpers import make_workspace

    path = make_workspace(tmp_path / "ws")
    server = make_server(path)
    assert post(server, "/v1/track", track(uid())).status_code == 200
    apply_through(server, {"connections": [{"name": "web", "type": "http", "write_key": WRITE_KEY},
                                           {"name": "app", "type": "http", "write_key": "wk_app"}]})
    # A new key works at once (an unknown key reloads the keys).
    app_id = uid("app")
    assert post(server, "/v1/track", track(app_id), auth=("wk_app", "")).status_code == 200
    # A rotated key: the old one is refused once the server noticed (it checks every few seconds).
    apply_through(server, {"connections": [{"name": "web", "type": "http", "write_key": "wk_rotated"},
                                           {"name": "app", "type": "http", "write_key": "wk_app"}]})
    wait_for(lambda: post(server, "/v1/track", track(uid())).status_code == 401, timeout=30,
             what="the old key to be refused")
    assert post(server, "/v1/track", track(uid()), auth=("wk_rotated", "")).status_code == 200
    server.wait_loaded()
    assert by_id(events(path))[app_id]["connection"] == "app"
    assert set(server.health()["collect"]["connections"]) == {"web", "app"}


def test_the_same_server_answers_the_rest_api(shared_server):
    response = shared_server.api("GET", "/api/status")
    assert response.status_code == 200 and "datasets" in response.json()
    anonymous = httpx.get(f"{shared_server.url}/api/status", timeout=60)
    assert_error(anonymous, 401, "unauthorized", "local credential")


def test_the_routes_are_documented(shared_server):
    spec = httpx.get(f"{shared_server.url}/openapi.json").json()
    for route in ("batch", "import", "identify", "track", "page", "screen", "group", "alias"):
        operation = spec["paths"][f"/v1/{route}"]["post"]
        assert operation["summary"] and "requestBody" in operation


def test_a_folder_that_is_not_a_workspace_is_refused_before_serving(tmp_path):
    from tessera.api.app import create_app
    from tessera.errors import WorkspaceError

    with pytest.raises(WorkspaceError, match="tessera init"):
        create_app(tmp_path)
