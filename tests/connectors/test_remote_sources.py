"""Importing file sources from real FTP, FTPS and SFTP servers (and a local folder) through a
workspace: new files only, changed files, archive folders on the server, and failures that name
the source and connection and keep what was imported."""

from __future__ import annotations

import os
import time

import pytest

from tessera.connectors import files as files_module
from tessera.errors import ConnectionFailed, SourceError
from tessera.workspace import Workspace

CONTACTS_1 = "id;email;city\n1;ann@example.com;Lyon\n2;bob@example.com;Paris\n"
CONTACTS_2 = "id;email;city\n3;cid@example.com;Nice\n"


def config(conn: dict, **source) -> dict:
    return {
        "connections": [{"name": "inbox", **conn}],
        "sources": [{"name": "crm", "connection": "inbox", "pattern": "contacts_*.csv", "record_keys": ["id"],
                     **source}],
        "datasets": [{"name": "contacts",
                      "mappings": [{"source": "crm", "columns": {"crm_id": "id", "email": "email", "city": "city"}}]}],
    }


@pytest.fixture
def workspace(tmp_path):
    ws = Workspace.init(tmp_path / "ws")
    yield ws
    ws.close()


@pytest.fixture
def downloads(monkeypatch) -> list[str]:
    """The names of the files downloaded from any folder during the test."""
    seen: list[str] = []
    real = files_module.Folder.download

    def counting(self, name, dest):
        seen.append(name)
        return real(self, name, dest)

    monkeypatch.setattr(files_module.Folder, "download", counting)
    return seen


def contacts(ws) -> dict[str, dict]:
    return {r["crm_id"]: r for r in ws.adapter.to_arrow(ws.table("contacts")).to_pylist()}


def test_import_new_files_only_from_a_server(remote_folder, workspace, downloads):
    remote_folder.write("contacts_1.csv", CONTACTS_1)
    remote_folder.write("orders_1.csv", "id\n1\n")  # not the source's pattern
    workspace.apply(config(remote_folder.connection()))

    first = workspace.run()
    assert first.sources["crm"]["files_new"] == 1
    assert sorted(contacts(workspace)) == ["1", "2"]
    assert downloads == ["contacts_1.csv"]
    [record] = workspace.store.list_imported_files("crm")
    assert record["name"] == "contacts_1.csv"
    assert record["path"].startswith(f"{remote_folder.kind}://tessera@127.0.0.1:")
    assert record["path"].endswith(f"{remote_folder.path}/contacts_1.csv")
    assert "s3cret" not in record["path"]
    assert os.path.exists(record["archive_path"])

    downloads.clear()
    again = workspace.run()  # unchanged name, size and time: not even downloaded
    assert (again.sources["crm"]["files_new"], again.sources["crm"]["files_skipped"]) == (0, 1)
    assert downloads == []

    remote_folder.write("contacts_2.csv", CONTACTS_2)
    third = workspace.run()
    assert (third.sources["crm"]["files_new"], third.sources["crm"]["files_skipped"]) == (1, 1)
    assert downloads == ["contacts_2.csv"]
    assert sorted(contacts(workspace)) == ["1", "2", "3"]
    assert not any((workspace.path / "archive" / ".incoming").iterdir())  # downloads cleaned up


def test_a_file_rewritten_with_new_content_is_imported(remote_folder, workspace):
    path = remote_folder.write("contacts_1.csv", CONTACTS_1)
    workspace.apply(config(remote_folder.connection()))
    workspace.run()
    path.write_text(CONTACTS_1.replace("Lyon", "Lille"))  # same size, new content and time
    os.utime(path, (time.time() + 5, time.time() + 5))
    result = workspace.run()
    assert result.sources["crm"]["files_new"] == 1
    assert contacts(workspace)["1"]["city"] == "Lille"
    assert [f["name"] for f in workspace.store.list_imported_files("crm")] == ["contacts_1.csv"] * 2


def test_a_touched_file_with_the_same_content_is_downloaded_and_skipped(remote_folder, workspace, downloads):
    path = remote_folder.write("contacts_1.csv", CONTACTS_1)
    workspace.apply(config(remote_folder.connection()))
    workspace.run()
    downloads.clear()
    os.utime(path, (time.time() + 60, time.time() + 60))
    result = workspace.run()
    assert (result.sources["crm"]["files_new"], result.sources["crm"]["files_skipped"]) == (0, 1)
    assert downloads == ["contacts_1.csv"]  # the time changed: the content hash decides
    downloads.clear()
    workspace.run()
    assert downloads == []  # the new time is remembered


def test_archive_folder_moves_processed_files_on_the_server(any_folder, workspace):
    any_folder.write("contacts_1.csv", CONTACTS_1)
    any_folder.write("in/contacts_2.csv", CONTACTS_2)
    workspace.apply(config(any_folder.connection(), pattern="**/contacts_*.csv", archive_folder="done"))
    result = workspace.run()
    assert result.sources["crm"]["files_new"] == 2
    assert any_folder.files() == ["done/contacts_1.csv", "done/contacts_2.csv"]

    again = workspace.run()  # files in the archive folder match the pattern but are never imported
    assert (again.sources["crm"]["files_new"], again.sources["crm"]["files_skipped"]) == (0, 0)

    any_folder.write("contacts_1.csv", CONTACTS_1.replace("Lyon", "Lille"))  # a new delivery, same name
    third = workspace.run()
    assert third.sources["crm"]["files_new"] == 1
    assert any_folder.files() == ["done/contacts_1-1.csv", "done/contacts_1.csv", "done/contacts_2.csv"]
    assert contacts(workspace)["1"]["city"] == "Lille"

    any_folder.write("contacts_9.csv", CONTACTS_2)  # content already imported: skipped, and moved too
    fourth = workspace.run()
    assert (fourth.sources["crm"]["files_new"], fourth.sources["crm"]["files_skipped"]) == (0, 1)
    assert "contacts_9.csv" not in any_folder.files()


def test_unreachable_server_names_source_and_connection_and_keeps_imported_files(ftp_folder, local_folder,
                                                                                  workspace, closed_port):
    local_folder.write("stores_1.csv", "id;name\nS1;Lyon\n")
    ftp_folder.write("contacts_1.csv", CONTACTS_1)
    cfg = config(ftp_folder.connection(port=closed_port, timeout=5))
    cfg["connections"].append({"name": "disk", **local_folder.connection()})
    cfg["sources"].insert(0, {"name": "stores", "connection": "disk", "pattern": "stores_*.csv",
                              "record_keys": ["id"]})
    cfg["datasets"].append({"name": "stores", "mappings": [{"source": "stores", "columns": {"store_id": "id"}}]})
    workspace.apply(cfg)
    with pytest.raises(ConnectionFailed) as err:
        workspace.run()
    assert err.value.reason == "unreachable"
    message = str(err.value)
    assert "Source 'crm'" in message and "connection 'inbox'" in message
    assert f"127.0.0.1:{closed_port}" in message
    assert [f["name"] for f in workspace.store.list_imported_files()] == ["stores_1.csv"]  # kept
    assert workspace.store.list_runs()[0]["status"] == "failed"

    cfg["connections"][0]["port"] = ftp_folder.server.port
    workspace.apply(cfg)
    result = workspace.run()
    assert result.sources["stores"]["files_skipped"] == 1
    assert result.sources["crm"]["files_new"] == 1


def test_wrong_password_is_reported_for_the_source(sftp_folder, workspace):
    sftp_folder.write("contacts_1.csv", CONTACTS_1)
    workspace.apply(config(sftp_folder.connection(password="nope")))
    with pytest.raises(ConnectionFailed) as err:
        workspace.import_sources()
    assert err.value.reason == "auth_refused"
    assert "Source 'crm'" in str(err.value) and "nope" not in str(err.value)


def test_missing_server_folder_is_not_found(ftps_folder, workspace):
    workspace.apply(config(ftps_folder.connection(path=ftps_folder.path + "/nowhere")))
    with pytest.raises(ConnectionFailed) as err:
        workspace.import_sources()
    assert err.value.reason == "not_found"
    assert "nowhere" in str(err.value) and "Source 'crm'" in str(err.value)


def test_a_bad_file_is_named_by_its_server_path_and_earlier_files_stay(remote_folder, workspace, downloads):
    remote_folder.write("contacts_1.csv", CONTACTS_1)
    remote_folder.write("contacts_2.csv", "id;email;Email\n3;c@example.com;Nice\n")  # unreadable header
    workspace.apply(config(remote_folder.connection()))
    counts = workspace.import_sources()  # the bad file is refused and kept aside; the good one goes on
    assert counts["crm"]["files_new"] == 1 and counts["crm"]["files_refused"] == 1
    message = " ".join(counts["crm"]["warnings"])
    assert "Source 'crm'" in message and "duplicate column names" in message and "--retry-refused" in message
    assert f"{remote_folder.path}/contacts_2.csv" in message and ".incoming" not in message
    assert [f["name"] for f in workspace.store.list_imported_files("crm")] == ["contacts_1.csv"]
    assert not any((workspace.path / "archive" / ".incoming").iterdir())

    remote_folder.write("contacts_2.csv", CONTACTS_2)
    downloads.clear()
    counts = workspace.import_sources()
    assert counts["crm"]["files_new"] == 1
    assert downloads == ["contacts_2.csv"]  # the first file was remembered, not downloaded again


def test_parquet_and_json_files_from_sftp(sftp_folder, workspace):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"id": ["1", "2"], "email": ["a@x.com", "b@x.com"], "city": ["Lyon", "Nice"]}),
                   sftp_folder.dir / "contacts_1.parquet")
    sftp_folder.write("contacts_2.json", '[{"id": "3", "email": "c@x.com", "city": "Metz"}]')
    workspace.apply(config(sftp_folder.connection(), pattern="contacts_*"))
    assert workspace.run().sources["crm"]["files_new"] == 2
    assert sorted(contacts(workspace)) == ["1", "2", "3"]


def test_test_connection_of_a_workspace(ftps_folder, workspace):
    ftps_folder.write("contacts_1.csv", CONTACTS_1)
    workspace.apply(config(ftps_folder.connection()))
    lines = workspace.test_connection("inbox")
    assert any("source 'crm': 1 file(s) match 'contacts_*.csv'" in line for line in lines)


@pytest.mark.parametrize("kind", ["ftp", "sftp"])
def test_a_file_that_cannot_be_moved_is_imported_and_reported(kind, request, workspace, downloads):
    served = request.getfixturevalue(f"{kind}_folder")
    served.write("contacts_1.csv", CONTACTS_1)
    server = served.server
    workspace.apply(config(served.connection(user=server.reader, password=server.reader_password),
                           archive_folder="done"))
    with pytest.raises(SourceError) as err:
        workspace.import_sources()
    message = str(err.value)
    assert "Source 'crm': imported, but 1 file(s) could not be moved to its archive_folder 'done'" in message
    assert "permission denied" in message
    assert [f["name"] for f in workspace.store.list_imported_files("crm")] == ["contacts_1.csv"]
    assert served.files() == ["contacts_1.csv"]
    downloads.clear()
    with pytest.raises(SourceError):
        workspace.import_sources()  # skipped without a download, and the move is tried again
    assert downloads == []
    assert len(workspace.store.list_imported_files("crm")) == 1
