"""Compressed files (.csv.gz, .json.gz, .ndjson.gz, .zip) imported like plain files, from a local
folder and from real FTP, FTPS and SFTP servers."""

from __future__ import annotations

import gzip
import io
import json
import zipfile

import pytest

from tessera.workspace import Workspace

CSV = "id;email;city\n1;ann@example.com;Lyon\n2;bob@example.com;Paris\n3;;\n4;x;y;z\n"


def config(conn: dict, pattern: str, **source) -> dict:
    return {
        "connections": [{"name": "inbox", **conn}],
        "sources": [{"name": "crm", "connection": "inbox", "pattern": pattern, "record_keys": ["id"], **source}],
        "datasets": [{"name": "contacts",
                      "mappings": [{"source": "crm", "columns": {"crm_id": "id", "email": "email", "city": "city"}}]}],
    }


@pytest.fixture
def workspace(tmp_path):
    ws = Workspace.init(tmp_path / "ws")
    yield ws
    ws.close()


def contacts(ws) -> dict[str, dict]:
    return {r["crm_id"]: r for r in ws.adapter.to_arrow(ws.table("contacts")).to_pylist()}


def gz(text: str) -> bytes:
    return gzip.compress(text.encode())


def zipped(members: dict[str, str]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, text in members.items():
            z.writestr(name, text)
    return buf.getvalue()


def test_gzip_csv_on_every_connection_type(any_folder, workspace):
    any_folder.write("contacts_1.csv.gz", gz(CSV))
    workspace.apply(config(any_folder.connection(), "contacts_*.csv.gz"))
    result = workspace.run()
    assert result.sources["crm"]["files_new"] == 1
    got = contacts(workspace)
    assert sorted(got) == ["1", "2", "3"]
    assert got["2"]["city"] == "Paris"
    # the reject names the plain file's real line
    [reject] = workspace.adapter.to_arrow(workspace.rejects("crm")).to_pylist()
    assert reject["line"] == 5
    [record] = workspace.store.list_imported_files("crm")
    assert record["name"] == "contacts_1.csv.gz" and record["archive_path"].endswith(".gz")
    again = workspace.run()
    assert (again.sources["crm"]["files_new"], again.sources["crm"]["files_skipped"]) == (0, 1)


def test_zip_members_are_files_of_their_own(sftp_folder, workspace):
    sftp_folder.write("export.zip", zipped({
        "a/contacts_1.csv": "id;email;city\n1;ann@example.com;Lyon\n",
        "b/contacts_2.csv": "id;email;city\n2;bob@example.com;Paris\n",
        "__MACOSX/._contacts_1.csv": "junk",
    }))
    workspace.apply(config(sftp_folder.connection(), "*.zip"))
    result = workspace.run()
    assert result.sources["crm"]["files_new"] == 2
    assert sorted(contacts(workspace)) == ["1", "2"]
    names = sorted(f["name"] for f in workspace.store.list_imported_files("crm"))
    assert names == ["export.zip/a/contacts_1.csv", "export.zip/b/contacts_2.csv"]
    # a new archive repeating one member: only the new member is imported
    sftp_folder.write("export2.zip", zipped({
        "contacts_1.csv": "id;email;city\n1;ann@example.com;Lyon\n",
        "contacts_3.csv": "id;email;city\n3;cid@example.com;Nice\n",
    }))
    again = workspace.run()
    # skipped: both members of export.zip, and export2.zip's copy of contacts_1.csv
    assert (again.sources["crm"]["files_new"], again.sources["crm"]["files_skipped"]) == (1, 3)
    assert sorted(contacts(workspace)) == ["1", "2", "3"]


@pytest.mark.parametrize("name,text", [
    ("contacts.json.gz", json.dumps([{"id": "1", "email": "ann@example.com", "city": "Lyon"}])),
    ("contacts.ndjson.gz", '{"id": "1", "email": "ann@example.com", "city": "Lyon"}\n'),
])
def test_gzip_json_and_ndjson(local_folder, workspace, name, text):
    local_folder.write(name, gz(text))
    workspace.apply(config(local_folder.connection(), "*.gz"))
    workspace.run()
    assert contacts(workspace)["1"]["email"] == "ann@example.com"


def test_a_broken_gzip_file_is_named(local_folder, workspace):
    local_folder.write("contacts.csv.gz", b"not gzip at all")
    workspace.apply(config(local_folder.connection(), "*.gz"))
    # the file is refused (kept aside with its reason); with no other file, the run says why
    result = workspace.run()
    assert result.status == "succeeded with warnings"
    [refused] = result.refused
    assert refused["file"] == "contacts.csv.gz"
    assert refused["reason"].startswith("File 'contacts.csv.gz' is not a valid gzip file")
    assert any("source 'crm' has no data: its file(s) were refused (contacts.csv.gz)" in w for w in result.warnings)
