"""The request path: body decoding (gzip, limits, bombs), write keys in headers, message checks."""

from __future__ import annotations

import base64
import gzip
import os

import orjson
import pytest

from tessera.collect.loader import build_batch
from tessera.collect.log import Record
from tessera.collect.messages import (
    MAX_BATCH_BYTES, BodyReader, RequestError, basic_auth_user, build_record, check_messages,
)


def read(body: bytes, encoding: str | None = None, chunk: int = 1000) -> bytes:
    reader = BodyReader(encoding)
    for i in range(0, len(body), chunk):
        reader.feed(body[i:i + chunk])
    return reader.finish()


def test_plain_and_gzip_bodies_whatever_the_headers_say():
    body = orjson.dumps({"batch": [{"type": "track"}] * 50})
    assert read(body) == body
    assert read(gzip.compress(body), "gzip") == body
    assert read(gzip.compress(body)) == body  # no Content-Encoding: found by its magic bytes
    assert read(gzip.compress(body[:10]) + gzip.compress(body[10:])) == body  # two gzip members


def test_too_large_after_decompression_is_413():
    big = b'{"batch": ["' + b"a" * MAX_BATCH_BYTES + b'"]}'
    with pytest.raises(RequestError) as exc:
        read(big)
    assert exc.value.status == 413 and "8192 KB" in exc.value.message


def test_a_decompression_bomb_is_refused_before_it_is_inflated():
    bomb = gzip.compress(b" " * (200 * 1024 * 1024), 9)  # 200 MB of blanks in ~200 KB
    reader = BodyReader("gzip")
    with pytest.raises(RequestError) as exc:
        for i in range(0, len(bomb), 65536):
            reader.feed(bomb[i:i + 65536])
        reader.finish()
    assert exc.value.status == 413
    assert sum(len(part) for part in reader._out) <= MAX_BATCH_BYTES  # never more than the limit held


def test_bad_or_truncated_gzip_is_400():
    with pytest.raises(RequestError, match="not valid gzip") as exc:
        read(b"\x1f\x8b" + os.urandom(100))
    assert exc.value.status == 400
    with pytest.raises(RequestError, match="truncated"):
        read(gzip.compress(b'{"batch": []}')[:-8])


def test_unknown_content_encoding_is_415():
    with pytest.raises(RequestError) as exc:
        BodyReader("br")
    assert exc.value.status == 415


def test_write_key_from_basic_auth():
    header = "Basic " + base64.b64encode(b"wk_test:").decode()
    assert basic_auth_user(header) == "wk_test"
    assert basic_auth_user("Basic " + base64.b64encode(b"wk_test").decode()) == "wk_test"
    assert basic_auth_user("Bearer abc") is None
    assert basic_auth_user("Basic !!!") is None
    assert basic_auth_user(None) is None


@pytest.mark.parametrize("message, reason", [
    ({"type": "track", "userId": "u", "event": "E"}, None),
    ({"type": "track", "anonymousId": "a", "event": "E", "properties": {"x": 1}}, None),
    ({"type": "identify", "userId": 42, "traits": {"email": "a@b.c"}}, None),
    ({"type": "alias", "userId": "u", "previousId": "a"}, None),
    ({"type": "group", "userId": "u", "groupId": "g"}, None),
    ({"type": "page", "userId": "u", "name": "Home", "timestamp": "2024-05-01T12:30:00.000Z"}, None),
    ("text", "must be a JSON object"),
    ({"type": "click", "userId": "u"}, "type 'click' is not one of"),
    ({"type": "track", "event": "E"}, "needs a userId or an anonymousId"),
    ({"type": "track", "userId": " ", "event": "E"}, "needs a userId or an anonymousId"),
    ({"type": "track", "userId": "u"}, "needs an event name"),
    ({"type": "alias", "userId": "u"}, "needs both userId and previousId"),
    ({"type": "group", "userId": "u"}, "needs a groupId"),
    ({"type": "track", "userId": True, "event": "E"}, "userId must be a string or a number"),
    ({"type": "track", "userId": "u", "event": "E", "properties": [1]}, "properties must be a JSON object"),
    ({"type": "track", "userId": "u", "event": "E", "timestamp": "yesterday"}, "not an ISO 8601 date-time"),
])
def test_message_checks(message, reason):
    checked = check_messages([message], "batch", connection="web")
    if reason is None:
        assert len(checked.accepted) == 1 and not checked.rejects
    else:
        assert not checked.accepted and reason in checked.rejects[0]["reason"]


def test_a_batch_keeps_its_valid_messages_and_records_why_the_others_were_refused():
    messages = [{"type": "track", "userId": "u", "event": "E", "messageId": "m1"}, {"type": "track"},
                {"type": "identify", "userId": "u", "messageId": "m3", "writeKey": "secret"},
                {"type": "track", "userId": "u", "event": "x" * (4 * 1024 * 1024 + 1)},
                {"type": "track", "userId": "u", "event": "E", "messageId": "m5", "properties": {"x": "y" * 40_000}}]
    checked = check_messages(messages, "batch", connection="web")
    assert checked.message_ids == ["m1", "m3", "m5"]  # 40 KB: rudder-sdk-python sends up to 4 MB
    assert [r["index"] for r in checked.rejects] == [1, 3]
    assert "more than 4096 KB" in checked.rejects[1]["reason"]
    assert b"secret" not in b"".join(checked.accepted)  # a key in a message is not logged


def test_single_calls_take_their_type_from_the_path_and_ids_are_generated_deterministically():
    first = check_messages([{"userId": "u", "event": "E"}], "track", connection="web")
    again = check_messages([{"userId": "u", "event": "E"}], "track", connection="web")
    assert first.message_ids == again.message_ids and first.message_ids[0].startswith("tessera-")
    assert orjson.loads(first.accepted[0])["type"] == "track"


def test_recent_ids_are_not_logged_twice():
    checked = check_messages([{"type": "track", "userId": "u", "event": "E", "messageId": "m1"}], "batch",
                             connection="web", recent={"m1"})
    assert checked.duplicates == 1 and not checked.accepted


def test_typed_columns_email_and_clock_skew():
    messages = [
        # The client's clock is 1 hour ahead: sent at 13:00:10 by its clock, the event at 13:00:00.
        {"type": "identify", "userId": "u1", "messageId": "m1", "traits": {"email": "  Jean@Example.COM "},
         "timestamp": "2024-05-01T13:00:00+00:00"},
        {"type": "track", "anonymousId": "a1", "messageId": "m2", "event": "Order", "properties": {"total": 10},
         "originalTimestamp": "2024-05-01T15:00:05+02:00", "context": {"traits": {"email": "x@y.z"}},
         "category": "shop"},
        {"type": "track", "userId": 7, "messageId": "m1", "event": "Dup"},
    ]
    checked = check_messages(messages, "batch", connection="web")
    received_us = 1714564810 * 1_000_000  # 2024-05-01T12:00:10Z by the server's clock
    record = build_record("web", received_us, "2024-05-01T13:00:10Z", checked)
    batch = build_batch([Record(0, record)])
    rows = batch.events.to_pylist()
    assert batch.duplicates == 1 and [r["message_id"] for r in rows] == ["m1", "m2"]
    first, second = rows
    assert first["email"] == "jean@example.com" and second["email"] == "x@y.z"
    assert str(first["received_at"]) == "2024-05-01 12:00:10"
    assert str(first["timestamp"]) == "2024-05-01 12:00:00"  # 10 s before it was received
    assert str(first["original_timestamp"]) == "2024-05-01 13:00:00"
    assert str(second["timestamp"]) == "2024-05-01 12:00:05"  # 13:00:05 UTC sent 5 s before 13:00:10
    assert orjson.loads(second["properties"]) == {"total": 10} and orjson.loads(second["extra"]) == {"category": "shop"}
    assert second["connection"] == "web" and second["log_offset"] == 0


def test_the_callers_timestamp_wins_over_the_devices_original_timestamp():
    # rudder-sdk-node sends both: timestamp (the caller's) and originalTimestamp (the device's clock).
    messages = [{"type": "track", "userId": "u", "messageId": "m1", "event": "Imported order",
                 "timestamp": "2023-11-02T08:00:00+01:00", "originalTimestamp": "2024-05-01T13:00:00Z"}]
    record = build_record("web", 1714564810 * 1_000_000, "2024-05-01T13:00:10Z",
                          check_messages(messages, "batch", connection="web"))
    [row] = build_batch([Record(0, record)]).events.to_pylist()
    assert str(row["timestamp"]) == "2023-11-02 07:00:00"
    assert str(row["original_timestamp"]) == "2024-05-01 13:00:00"
