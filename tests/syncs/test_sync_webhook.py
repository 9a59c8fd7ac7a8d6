"""Syncs to a webhook served by a local HTTP receiver (tests/syncs/conftest.py): the signed JSON
batches, retries, a receiver down for one run, per-record errors, consent and connection checks."""

from __future__ import annotations

import pytest

from sync_helpers import CONTACTS, SECRET, Receiver, webhook_connection
from servers import free_port
from tessera.connectors.webhook import check, sign, verify
from tessera.errors import ConnectionFailed
from tessera.syncs import run_syncs

SYNC = {"name": "crm_hook", "dataset": "contacts", "connection": "hook", "key": "crm_id", "mode": "mirror",
        "fields": {"id": "crm_id", "mail": "email", "amount": "amount", "optin": "email_optin"}}


def test_batches_are_signed_json_with_op_key_and_fields(make_ws, receiver):
    ws = make_ws([SYNC], [webhook_connection(receiver.url, batch_size=3, headers={"Authorization": "Bearer t0k"})])
    [result] = run_syncs(ws)
    assert result.status == "succeeded", result.errors
    assert result.inserted == 4
    assert len(receiver.requests) == 2  # batch_size 3
    for req in receiver.requests:
        assert req["signature_ok"]
        headers = {k.lower(): v for k, v in req["headers"].items()}
        assert headers["x-tessera-signature"] == sign(SECRET, req["body"])
        assert verify(SECRET, req["body"], headers["x-tessera-signature"])
        assert headers["authorization"] == "Bearer t0k"
        assert headers["content-type"] == "application/json"
        assert int(headers["x-tessera-timestamp"]) == req["json"]["sent_at"]
        assert headers["x-tessera-batch"] == req["json"]["batch_id"]
        assert req["json"]["sync"] == "crm_hook" and req["json"]["run"] == result.run_id
    records = {r["key"]: r for r in receiver.accepted()}
    assert records["1"] == {"op": "insert", "key": "1",
                            "fields": {"id": "1", "mail": "ann@example.com", "amount": 10.5, "optin": True}}
    assert records["3"]["fields"]["amount"] is None
    receiver.clear()
    [again] = run_syncs(ws)
    assert again.unchanged == 4 and receiver.requests == []  # nothing changed: nothing sent


def test_updates_and_deletes(make_ws, change, receiver):
    ws = make_ws([SYNC], [webhook_connection(receiver.url)])
    run_syncs(ws)
    receiver.clear()
    change(ws, CONTACTS.replace("Lyon,false,20", "Lyon,false,25").replace("3,cyd@example.com,Cyd,Paris,true,\n", ""))
    [result] = run_syncs(ws)
    assert (result.inserted, result.updated, result.deleted, result.unchanged) == (0, 1, 1, 2)
    ops = sorted((r["op"], r["key"], r["fields"]) for r in receiver.accepted())
    assert ops == [("delete", "3", {"id": "3"}),
                   ("update", "2", {"id": "2", "mail": "bob@example.com", "amount": 25.0, "optin": False})]


def test_receiver_down_for_one_run_receives_everything_on_the_next(make_ws, receiver):
    port = receiver.port
    receiver.stop()
    ws = make_ws([SYNC], [webhook_connection(receiver.url)])
    [down] = run_syncs(ws)
    assert down.status == "failed"
    assert (down.inserted, down.failed) == (0, 4)
    assert "cannot reach" in down.errors[0] and "after 2 attempts" in down.errors[0]
    again = Receiver(port=port).start()
    try:
        [up] = run_syncs(ws)
        assert up.status == "succeeded", up.errors
        assert (up.inserted, up.failed, up.retried) == (4, 0, 4)
        assert sorted(r["key"] for r in again.accepted()) == ["1", "2", "3", "4"]
        again.clear()
        [idle] = run_syncs(ws)
        assert idle.unchanged == 4 and again.requests == []
    finally:
        again.stop()


def test_per_record_errors_fail_only_those_records_and_they_are_retried(make_ws, receiver):
    receiver.record_error = lambda record: "mailbox unknown" if record["key"] == "2" else None
    ws = make_ws([SYNC], [webhook_connection(receiver.url)])
    [result] = run_syncs(ws)
    assert result.status == "failed"
    assert (result.inserted, result.failed) == (3, 1)
    assert result.errors == ["mailbox unknown"]
    run = ws.runs(1)[0]
    assert run["status"] == "failed" and run["counts"]["failed"] == 1 and "mailbox unknown" in run["error"]
    # the state keeps the error; the record is sent again next run, alone
    state = ws.adapter.to_arrow(ws.adapter.table("_tessera_sync_crm_hook")).to_pylist()
    failed = [s for s in state if s["status"] == "failed"]
    assert [(s["key"], s["error"], s["attempts"], s["pending"], s["hash"]) for s in failed] == \
        [("2", "mailbox unknown", 1, "insert", None)]
    receiver.record_error = None
    receiver.clear()
    [retry] = run_syncs(ws)
    assert retry.status == "succeeded"
    assert (retry.inserted, retry.retried, retry.unchanged) == (1, 1, 3)
    assert [r["key"] for r in receiver.accepted()] == ["2"]


def test_429_and_5xx_are_retried_honouring_retry_after(make_ws, receiver):
    receiver.answers = [(503, {"error": "busy"}, {}), (429, None, {"Retry-After": "0"})]
    ws = make_ws([SYNC], [webhook_connection(receiver.url, max_retries=2)])
    [result] = run_syncs(ws)
    assert result.status == "succeeded" and result.inserted == 4
    assert [r["status"] for r in receiver.requests] == [503, 429, 200]
    assert len({r["json"]["batch_id"] for r in receiver.requests}) == 1  # the same batch, retried


def test_a_batch_refused_after_retries_fails_with_the_answer(make_ws, receiver):
    receiver.answers = [(500, {"error": "database is down"}, {})] * 2
    ws = make_ws([SYNC], [webhook_connection(receiver.url, batch_size=2)])
    [result] = run_syncs(ws)
    # first batch: 500 twice (max_retries 1); second batch accepted
    assert (result.inserted, result.failed) == (2, 2)
    assert "HTTP 500" in result.errors[0] and "database is down" in result.errors[0]


def test_other_4xx_are_not_retried_and_401_stops_the_run(make_ws, receiver):
    receiver.answers = [(422, {"error": "unprocessable"}, {})]
    ws = make_ws([SYNC], [webhook_connection(receiver.url, batch_size=2, max_retries=3)])
    [result] = run_syncs(ws)
    assert (result.inserted, result.failed) == (2, 2)
    assert [r["status"] for r in receiver.requests] == [422, 200]
    assert "HTTP 422" in result.errors[0]
    receiver.clear()
    receiver.answers = [(401, {"error": "who are you"}, {})]
    ws2_conn = webhook_connection(receiver.url, batch_size=2, max_retries=3)
    from sync_helpers import reconfigure

    reconfigure(ws, ws.path.parent, [SYNC], [ws2_conn])
    [retry] = run_syncs(ws)
    # the two failed records are sent again, refused with 401: the run stops
    assert retry.status == "failed" and retry.failed == 2
    assert len(receiver.requests) == 1 and "refused" in retry.errors[0]


def test_wrong_secret_is_refused_by_the_receiver(make_ws, receiver):
    ws = make_ws([SYNC], [webhook_connection(receiver.url, secret="not-the-secret")])
    [result] = run_syncs(ws)
    assert result.status == "failed" and result.failed == 4
    assert "HTTP 401" in result.errors[0]


def test_consent_never_sends_contacts_without_email_opt_in(make_ws, change, receiver):
    ws = make_ws([SYNC], [webhook_connection(receiver.url, requires_consent=["email"])])
    [result] = run_syncs(ws)
    assert result.inserted == 3
    assert sorted(r["key"] for r in receiver.accepted()) == ["1", "3", "4"]
    receiver.clear()
    # Bob changes but still has not opted in: still never sent
    change(ws, CONTACTS.replace("Lyon,false,20", "Lyon,false,30"))
    [result] = run_syncs(ws)
    assert receiver.accepted() == [] and result.unchanged == 3


def test_one_failing_sync_does_not_block_another(make_ws, receiver, tmp_path):
    dead = f"http://127.0.0.1:{free_port()}/hook"
    syncs = [{**SYNC, "name": "to_dead", "connection": "dead"}, {**SYNC, "name": "to_live"}]
    ws = make_ws(syncs, [webhook_connection(dead, name="dead"), webhook_connection(receiver.url)])
    dead_result, live = run_syncs(ws)
    assert dead_result.status == "failed" and dead_result.failed == 4
    assert live.status == "succeeded" and live.inserted == 4
    runs = {r["target"]: r["status"] for r in ws.runs(5) if r["kind"] == "sync"}
    assert runs == {"to_dead": "failed", "to_live": "succeeded"}


def test_check_webhook_connection(receiver):
    from tessera.config.models import WebhookConnectionConfig

    conn = WebhookConnectionConfig(name="hook", type="webhook", url=receiver.url, secret=SECRET)
    lines = check(conn, [])
    assert lines[0].startswith(f"POST {receiver.url}: HTTP 200")
    req = receiver.requests[-1]
    assert req["signature_ok"] and req["json"]["batch"] == [] and req["json"]["check"] is True
    with pytest.raises(ConnectionFailed) as refused:
        check(conn.model_copy(update={"secret": "wrong"}), [])
    assert refused.value.reason == "auth_refused"
    with pytest.raises(ConnectionFailed) as down:
        check(conn.model_copy(update={"url": f"http://127.0.0.1:{free_port()}/"}), [])
    assert down.value.reason == "unreachable" and "hook" in str(down.value)
    receiver.answers = [(404, None, {})]
    with pytest.raises(ConnectionFailed) as missing:
        check(conn, [])
    assert missing.value.reason == "not_found"
