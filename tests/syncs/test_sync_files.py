"""Syncs to a local folder: file contents in CSV, NDJSON and Parquet, change detection, modes,
consent, dry runs, and the sync's run records."""

from __future__ import annotations

import csv
import io
import json

import pyarrow.parquet as pq
import pytest

from sync_helpers import CONTACTS, reconfigure
from tessera.syncs import run_syncs

OUT = {"name": "out", "type": "local", "path": "OUT"}


def out_conn(tmp_path, **extra):
    return {**OUT, "path": str(tmp_path / "out"), **extra}


def files(tmp_path, pattern="*"):
    return sorted(p for p in (tmp_path / "out").rglob(pattern) if p.is_file())


def read_csv(path):
    return list(csv.DictReader(io.StringIO(path.read_text())))


def by_id(rows, key="id"):
    return {r[key]: r for r in rows}


def test_csv_file_of_the_changes_then_nothing_when_nothing_changed(make_ws, tmp_path):
    sync = {"name": "crm_csv", "dataset": "contacts", "connection": "out", "key": "crm_id",
            "fields": {"id": "crm_id", "mail": "email", "town": "city", "amount": "amount"}}
    ws = make_ws([sync], [out_conn(tmp_path)])
    [result] = run_syncs(ws)
    assert result.status == "succeeded", result.errors
    assert (result.inserted, result.updated, result.deleted, result.failed) == (4, 0, 0, 0)
    [path] = files(tmp_path)
    assert path.name == f"crm_csv_{result.run_id}.csv"
    rows = read_csv(path)
    assert list(rows[0]) == ["_tessera_op", "id", "mail", "town", "amount"]
    assert {r["_tessera_op"] for r in rows} == {"insert"}
    assert by_id(rows)["1"] == {"_tessera_op": "insert", "id": "1", "mail": "ann@example.com", "town": "Paris",
                                "amount": "10.5"}
    assert by_id(rows)["3"]["amount"] == ""  # NULL
    # nothing changed: nothing sent, no new file
    [again] = run_syncs(ws)
    assert (again.inserted, again.updated, again.deleted, again.unchanged) == (0, 0, 0, 4)
    assert files(tmp_path) == [path]
    # the runs are recorded with their counts
    runs = [r for r in ws.runs(10) if r["kind"] == "sync"]
    assert [r["target"] for r in runs] == ["crm_csv", "crm_csv"]
    assert runs[1]["counts"]["inserted"] == 4 and runs[0]["counts"]["unchanged"] == 4
    assert all(r["status"] == "succeeded" for r in runs)


def test_a_changed_row_is_sent_as_an_update_only(make_ws, change, tmp_path):
    sync = {"name": "crm_csv", "dataset": "contacts", "connection": "out", "key": "crm_id",
            "fields": {"id": "crm_id", "town": "city"}}
    ws = make_ws([sync], [out_conn(tmp_path)])
    run_syncs(ws)
    change(ws, CONTACTS.replace("2,bob@example.com,Bob,Lyon", "2,bob@example.com,Bob,Lille"))
    [result] = run_syncs(ws)
    assert (result.inserted, result.updated, result.deleted, result.unchanged) == (0, 1, 0, 3)
    newest = files(tmp_path)[-1]
    assert read_csv(newest) == [{"_tessera_op": "update", "id": "2", "town": "Lille"}]
    # a change in a column the sync does not send changes nothing
    change(ws, CONTACTS.replace("2,bob@example.com,Bob,Lyon", "2,bob@example.com,Robert,Lille"))
    [result] = run_syncs(ws)
    assert (result.inserted, result.updated, result.unchanged) == (0, 0, 4)


def test_mirror_deletes_records_that_left_the_dataset_or_the_filter(make_ws, change, tmp_path):
    sync = {"name": "paris", "dataset": "contacts", "connection": "out", "key": "crm_id", "mode": "mirror",
            "filter": "city = 'Paris' or amount > 15", "fields": {"id": "crm_id", "town": "city"}}
    ws = make_ws([sync], [out_conn(tmp_path)])
    [first] = run_syncs(ws)
    assert first.inserted == 3  # 1 and 3 (Paris), 2 (amount 20)
    # Ann moves to Nice (leaves the filter), Bob leaves the source
    text = CONTACTS.replace("Ann,Paris", "Ann,Nice").replace("2,bob@example.com,Bob,Lyon,false,20\n", "")
    change(ws, text)
    [result] = run_syncs(ws)
    assert (result.inserted, result.updated, result.deleted, result.unchanged) == (0, 0, 2, 1)
    rows = read_csv(files(tmp_path)[-1])
    assert sorted((r["_tessera_op"], r["id"]) for r in rows) == [("delete", "1"), ("delete", "2")]
    assert all(r["town"] == "" for r in rows)  # a delete carries its key only
    # deleted records left the state: back in the filter, they are new again
    change(ws, CONTACTS + "6,fay@example.com,Fay,Lyon,true,1\n")
    [back] = run_syncs(ws)
    assert (back.inserted, back.deleted) == (2, 0)


def test_upsert_keeps_records_that_left_and_insert_mode_never_updates(make_ws, change, tmp_path):
    syncs = [
        {"name": "ups", "dataset": "contacts", "connection": "out", "key": "crm_id", "filter": "city = 'Paris'",
         "fields": {"id": "crm_id", "town": "city", "amount": "amount"}},
        {"name": "ins", "dataset": "contacts", "connection": "out", "key": "crm_id", "mode": "insert",
         "fields": {"id": "crm_id", "town": "city", "amount": "amount"}},
    ]
    ws = make_ws(syncs, [out_conn(tmp_path)])
    ups, ins = run_syncs(ws)
    assert (ups.inserted, ins.inserted) == (2, 4)
    text = CONTACTS.replace("Ann,Paris,true,10.5", "Ann,Nice,true,10.5").replace("Cyd,Paris,true,", "Cyd,Paris,true,99") \
        + "5,eve@example.com,Eve,Paris,true,1\n"
    change(ws, text)
    ups, ins = run_syncs(ws)
    # upsert: Cyd updated, Eve new, Ann left the filter: not deleted, not sent
    assert (ups.inserted, ups.updated, ups.deleted) == (1, 1, 0)
    # insert: only Eve; Ann and Cyd changed but are never updated
    assert (ins.inserted, ins.updated, ins.deleted, ins.unchanged) == (1, 0, 0, 4)
    ins_file = [p for p in files(tmp_path) if p.name.startswith("ins_")][-1]
    assert read_csv(ins_file) == [{"_tessera_op": "insert", "id": "5", "town": "Paris", "amount": "1.0"}]
    # Ann comes back to Paris unchanged from what the destination holds: nothing to send
    change(ws, text.replace("Ann,Nice", "Ann,Paris"))
    ups, _ = run_syncs(ws)
    assert (ups.inserted, ups.updated) == (0, 0)


def test_ndjson_and_parquet_with_every_column_and_file_name_template(make_ws, tmp_path):
    syncs = [
        {"name": "as_json", "dataset": "contacts", "connection": "out", "format": "json", "folder": "json/daily",
         "file_name": "{sync}-{timestamp}.ndjson"},
        {"name": "as_parquet", "dataset": "contacts", "connection": "out", "format": "parquet"},
    ]
    ws = make_ws(syncs, [out_conn(tmp_path)])
    as_json, as_parquet = run_syncs(ws)
    assert as_json.status == as_parquet.status == "succeeded"
    [ndjson] = files(tmp_path, "*.ndjson")
    assert ndjson.parent == tmp_path / "out" / "json" / "daily"
    assert ndjson.name.startswith("as_json-") and ndjson.name.endswith("Z.ndjson")
    records = [json.loads(line) for line in ndjson.read_text().splitlines()]
    assert len(records) == 4
    ann = next(r for r in records if r["crm_id"] == "1")
    # every column but the records' lineage columns; types kept
    assert set(ann) == {"_tessera_op", "tessera_id", "crm_id", "email", "first_name", "city", "email_optin", "amount"}
    assert ann["email_optin"] is True and ann["amount"] == 10.5 and ann["_tessera_op"] == "insert"
    [parquet] = files(tmp_path, "*.parquet")
    assert parquet.name == f"as_parquet_{as_parquet.run_id}.parquet"
    table = pq.read_table(parquet)
    assert table.num_rows == 4
    assert str(table.schema.field("amount").type) == "double"
    assert table.column("_tessera_op").to_pylist() == ["insert"] * 4


def test_consent_keeps_contacts_who_did_not_opt_in_out(make_ws, change, tmp_path):
    sync = {"name": "newsletter", "dataset": "contacts", "connection": "out", "key": "crm_id", "mode": "mirror",
            "fields": {"id": "crm_id", "mail": "email"}}
    ws = make_ws([sync], [out_conn(tmp_path, requires_consent=["email"])])
    [result] = run_syncs(ws)
    assert result.inserted == 3
    sent = read_csv(files(tmp_path)[-1])
    assert "2" not in by_id(sent)  # Bob: email_optin false, never sent
    # Ann opts out: deleted in mirror mode; Bob opts in: inserted
    change(ws, CONTACTS.replace("Ann,Paris,true", "Ann,Paris,false").replace("Bob,Lyon,false", "Bob,Lyon,true"))
    [result] = run_syncs(ws)
    assert (result.inserted, result.deleted) == (1, 1)
    assert sorted((r["_tessera_op"], r["id"]) for r in read_csv(files(tmp_path)[-1])) == [("delete", "1"),
                                                                                          ("insert", "2")]


def test_consent_column_of_the_sync_and_a_clear_error_without_one(make_ws, tmp_path):
    syncs = [
        {"name": "sms", "dataset": "contacts", "connection": "sms_out", "key": "crm_id", "fields": {"id": "crm_id"}},
        {"name": "sms_ok", "dataset": "contacts", "connection": "sms_out", "key": "crm_id",
         "fields": {"id": "crm_id"}, "consent_columns": {"sms": "email_optin"}},
    ]
    ws = make_ws(syncs, [out_conn(tmp_path, name="sms_out", requires_consent=["sms"])])
    failing, ok = run_syncs(ws)
    assert failing.status == "failed"
    assert "requires sms consent" in failing.errors[0] and "SmsOptIn" in failing.errors[0]
    assert "consent_columns" in failing.errors[0]
    assert ok.status == "succeeded" and ok.inserted == 3  # one sync failing does not stop the other


def test_dry_run_prints_the_plan_and_sends_nothing(make_ws, change, tmp_path):
    sync = {"name": "crm_csv", "dataset": "contacts", "connection": "out", "key": "crm_id", "mode": "mirror",
            "fields": {"id": "crm_id", "town": "city"}}
    ws = make_ws([sync], [out_conn(tmp_path)])
    [plan] = run_syncs(ws, dry_run=True)
    assert plan.status == "planned" and plan.plan == "4 new, 0 updated, 0 deleted, 0 unchanged"
    assert files(tmp_path) == [] and ws.runs(5)[0]["kind"] == "pipeline"
    run_syncs(ws)
    change(ws, CONTACTS.replace("Lyon", "Lille").replace("4,dan@example.com,Dan,Nice,yes,7\n", "")
           + "9,zoe@example.com,Zoe,Paris,true,1\n")
    before = files(tmp_path)
    [plan] = run_syncs(ws, dry_run=True)
    assert plan.plan == "1 new, 1 updated, 1 deleted, 2 unchanged"
    assert (plan.inserted, plan.updated, plan.deleted, plan.unchanged) == (1, 1, 1, 2)
    assert files(tmp_path) == before
    [real] = run_syncs(ws)
    assert (real.inserted, real.updated, real.deleted, real.unchanged) == (1, 1, 1, 2)


def test_changing_the_fields_sends_every_record_again_and_a_new_key_resets(make_ws, tmp_path):
    sync = {"name": "crm_csv", "dataset": "contacts", "connection": "out", "key": "crm_id",
            "fields": {"id": "crm_id", "town": "city"}}
    ws = make_ws([sync], [out_conn(tmp_path)])
    run_syncs(ws)
    reconfigure(ws, tmp_path, [{**sync, "fields": {"id": "crm_id", "town": "city", "mail": "email"}}],
                [out_conn(tmp_path)])
    [result] = run_syncs(ws)
    assert (result.inserted, result.updated) == (0, 4)
    assert any("fields" in n for n in result.notes)
    reconfigure(ws, tmp_path, [{**sync, "key": "email", "fields": {"mail": "email"}}], [out_conn(tmp_path)])
    [result] = run_syncs(ws)
    assert (result.inserted, result.updated) == (4, 0)
    assert any("key changed" in n for n in result.notes)


def test_unwritable_folder_fails_the_records_and_the_next_run_sends_them(make_ws, tmp_path):
    blocker = tmp_path / "blocked"
    blocker.write_text("a file where the folder should be")
    sync = {"name": "crm_csv", "dataset": "contacts", "connection": "out", "key": "crm_id",
            "fields": {"id": "crm_id"}}
    ws = make_ws([sync], [out_conn(tmp_path, path=str(blocker / "out"))])
    [result] = run_syncs(ws)
    assert result.status == "failed" and result.failed == 4 and result.inserted == 0
    assert result.errors
    run = ws.runs(1)[0]
    assert run["kind"] == "sync" and run["status"] == "failed" and run["counts"]["failed"] == 4
    reconfigure(ws, tmp_path, [sync], [out_conn(tmp_path)])
    [result] = run_syncs(ws)
    assert result.status == "succeeded" and result.inserted == 4 and result.retried == 4


def test_bad_filter_and_unknown_names_are_clear(make_ws, tmp_path):
    from tessera.errors import ConfigError

    sync = {"name": "crm_csv", "dataset": "contacts", "connection": "out", "filter": "city"}
    ws = make_ws([sync], [out_conn(tmp_path)])
    [result] = run_syncs(ws)
    assert result.status == "failed"
    assert "filter" in result.errors[0] and "condition" in result.errors[0]
    with pytest.raises(ConfigError, match="unknown sync"):
        run_syncs(ws, ["nope"])


def test_duplicate_keys_send_one_row_per_key(make_ws, tmp_path):
    sync = {"name": "by_city", "dataset": "contacts", "connection": "out", "key": "city",
            "fields": {"city": "city"}}
    ws = make_ws([sync], [out_conn(tmp_path)])
    [result] = run_syncs(ws)
    assert result.inserted == 3  # Paris twice
    assert any("share their key" in n for n in result.notes)


def test_nothing_published_since_the_last_run_is_not_even_compared(make_ws, change, tmp_path):
    from tessera.syncs import reset_sync

    syncs = [
        {"name": "plain", "dataset": "contacts", "connection": "out", "key": "crm_id", "fields": {"id": "crm_id"}},
        {"name": "dated", "dataset": "contacts", "connection": "out", "key": "crm_id", "fields": {"id": "crm_id"},
         "filter": "current_date > DATE '2000-01-01'"},
    ]
    ws = make_ws(syncs, [out_conn(tmp_path)])
    run_syncs(ws)
    plain, dated = run_syncs(ws)
    assert plain.unchanged == 4 and any("not published again" in n for n in plain.notes)
    assert dated.unchanged == 4 and not dated.notes  # a filter on the date is evaluated every time
    [plan] = run_syncs(ws, ["plain"], dry_run=True)
    assert plan.plan == "0 new, 0 updated, 0 deleted, 4 unchanged"
    # forgetting what was sent: everything is new again
    reset_sync(ws, "plain")
    [plain] = run_syncs(ws, ["plain"])
    assert plain.inserted == 4
