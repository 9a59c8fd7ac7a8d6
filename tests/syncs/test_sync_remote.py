"""Syncs to FTP, FTPS and SFTP folders (the in-process servers of tests/remote_fixtures.py)."""

from __future__ import annotations

import csv
import io

import pyarrow.parquet as pq

from sync_helpers import CONTACTS, reconfigure
from tessera.syncs import run_syncs


def _sync(**extra) -> dict:
    return {"name": "crm_files", "dataset": "contacts", "connection": "remote", "key": "crm_id", "mode": "mirror",
            "fields": {"id": "crm_id", "town": "city"}, "folder": "exports/crm", **extra}


def test_changes_are_uploaded_to_the_server(remote_folder, make_ws, change):
    ws = make_ws([_sync()], [remote_folder.connection(name="remote")])
    [result] = run_syncs(ws)
    assert result.status == "succeeded", result.errors
    assert remote_folder.files() == [f"exports/crm/crm_files_{result.run_id}.csv"]
    rows = list(csv.DictReader(io.StringIO((remote_folder.dir / remote_folder.files()[0]).read_text())))
    assert sorted((r["_tessera_op"], r["id"], r["town"]) for r in rows) == [
        ("insert", "1", "Paris"), ("insert", "2", "Lyon"), ("insert", "3", "Paris"), ("insert", "4", "Nice")]
    [again] = run_syncs(ws)
    assert again.unchanged == 4 and len(remote_folder.files()) == 1  # nothing changed, nothing uploaded
    change(ws, CONTACTS.replace("Lyon", "Lille").replace("4,dan@example.com,Dan,Nice,yes,7\n", ""))
    [result] = run_syncs(ws)
    assert (result.updated, result.deleted) == (1, 1)
    newest = f"exports/crm/crm_files_{result.run_id}.csv"
    assert newest in remote_folder.files()
    rows = list(csv.DictReader(io.StringIO((remote_folder.dir / newest).read_text())))
    assert sorted((r["_tessera_op"], r["id"]) for r in rows) == [("delete", "4"), ("update", "2")]
    assert not [f for f in remote_folder.files() if "tessera-tmp" in f]  # uploads are atomic


def test_parquet_to_sftp(sftp_folder, make_ws):
    ws = make_ws([_sync(format="parquet", file_name="{sync}.parquet", folder=".")],
                 [sftp_folder.connection(name="remote")])
    [result] = run_syncs(ws)
    assert result.status == "succeeded", result.errors
    assert sftp_folder.files() == ["crm_files.parquet"]
    table = pq.read_table(sftp_folder.dir / "crm_files.parquet")
    assert table.num_rows == 4 and table.column_names == ["_tessera_op", "id", "town"]


def test_server_down_for_one_run_receives_everything_next(ftp_folder, make_ws, closed_port, tmp_path):
    good = ftp_folder.connection(name="remote", timeout=3)
    ws = make_ws([_sync()], [{**good, "port": closed_port}])
    [down] = run_syncs(ws)
    assert down.status == "failed" and down.failed == 4 and down.errors
    assert ftp_folder.files() == []
    reconfigure(ws, tmp_path, [_sync()], [good])
    [up] = run_syncs(ws)
    assert up.status == "succeeded" and (up.inserted, up.retried) == (4, 4)
    assert len(ftp_folder.files()) == 1


def test_wrong_password_fails_clearly(sftp_folder, make_ws):
    ws = make_ws([_sync()], [sftp_folder.connection(name="remote", password="wrong")])
    [result] = run_syncs(ws)
    assert result.status == "failed" and result.failed == 4
    assert "remote" in result.errors[0]
