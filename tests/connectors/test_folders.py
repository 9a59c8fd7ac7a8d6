"""The Folder interface on a local folder and on real FTP, FTPS and SFTP servers: listing by
pattern, download, atomic upload, moves that never overwrite."""

from __future__ import annotations

import threading
import time

import pytest
from pydantic import TypeAdapter

from tessera.config.models import ConnectionConfig
from tessera.connectors.files import TEMP_MARK, match_pattern, open_folder
from tessera.connectors.ftp import parse_list_line
from tessera.errors import ConnectionFailed

_CONN = TypeAdapter(ConnectionConfig)


def conn_of(settings: dict):
    """A connection model from a fixture's settings."""
    return _CONN.validate_python({"name": "files", **settings})


def test_patterns_match_segment_by_segment():
    assert match_pattern("*.csv", "a.csv")
    assert not match_pattern("*.csv", "sub/a.csv")
    assert match_pattern("**/*.csv", "a.csv")
    assert match_pattern("**/*.csv", "x/y/a.csv")
    assert match_pattern("crm/contacts_*.csv", "crm/contacts_2024.csv")
    assert not match_pattern("crm/contacts_*.csv", "crm/old/contacts_2024.csv")
    assert match_pattern("crm/**/c?.csv", "crm/a/b/c1.csv")
    assert not match_pattern("*.CSV", "a.csv")  # case-sensitive, as on disk
    assert match_pattern("data_[0-9].json", "data_7.json")


def test_list_line_parser_reads_unix_listings():
    entry = parse_list_line("-rw-r--r--    1 ftp      ftp          1234 Jan 01 12:00 contacts 2024.csv")
    assert (entry.name, entry.is_dir, entry.size, entry.mtime) == ("contacts 2024.csv", False, 1234, None)
    assert parse_list_line("drwxr-xr-x    2 ftp      ftp          4096 Jan 01 12:00 crm").is_dir
    assert parse_list_line("total 12") is None


def test_list_by_pattern_sorted_with_sizes_and_times(any_folder):
    any_folder.write("b.csv", "x\n2\n")
    any_folder.write("a.csv", "x\n1\n")
    any_folder.write("notes.txt", "hello")
    any_folder.write("crm/contacts_1.csv", "id\n1\n")
    any_folder.write("crm/deep/contacts_2.csv", "id\n2\n")
    any_folder.write(f".a.csv{TEMP_MARK}0123", "partial")  # an upload in progress is never listed
    with open_folder(conn_of(any_folder.connection())) as folder:
        assert [f.name for f in folder.list("*.csv")] == ["a.csv", "b.csv"]
        assert [f.name for f in folder.list("**/*.csv")] == [
            "a.csv", "b.csv", "crm/contacts_1.csv", "crm/deep/contacts_2.csv"]
        assert [f.name for f in folder.list("crm/*.csv")] == ["crm/contacts_1.csv"]
        assert [f.name for f in folder.list("crm/**")] == ["crm/contacts_1.csv", "crm/deep/contacts_2.csv"]
        assert folder.list("nothing_*.csv") == []
        [notes] = folder.list("notes.txt")
        assert notes.size == 5
        assert notes.mtime is not None and abs(notes.mtime - time.time()) < 120


def test_download_copies_the_file(any_folder, tmp_path):
    content = "id;name\n" + "".join(f"{i};name {i} é\n" for i in range(5000))
    any_folder.write("sub/big.csv", content)
    with open_folder(conn_of(any_folder.connection())) as folder:
        folder.download("sub/big.csv", tmp_path / "copy.csv")
    assert (tmp_path / "copy.csv").read_text(encoding="utf-8") == content


def test_upload_creates_folders_replaces_and_leaves_no_temporary_file(any_folder, tmp_path):
    src = tmp_path / "segment.csv"
    src.write_text("email\na@example.com\n")
    with open_folder(conn_of(any_folder.connection())) as folder:
        folder.upload(src, "exports/2024/segment.csv")
        assert (any_folder.dir / "exports/2024/segment.csv").read_text() == "email\na@example.com\n"
        src.write_text("email\nb@example.com\n")
        folder.upload(src, "exports/2024/segment.csv")  # replaces the previous file
        assert [f.name for f in folder.list("**")] == ["exports/2024/segment.csv"]
    assert (any_folder.dir / "exports/2024/segment.csv").read_text() == "email\nb@example.com\n"
    assert any_folder.files() == ["exports/2024/segment.csv"]


def test_upload_is_atomic_a_reader_never_sees_half_a_file(any_folder, tmp_path):
    """While a large file is uploaded, its final name either does not exist or holds the whole file."""
    src = tmp_path / "large.csv"
    src.write_bytes(b"0123456789abcdef" * (6 * 1024 * 1024 // 16))  # 6 MiB
    size = src.stat().st_size
    target = any_folder.dir / "out" / "large.csv"
    seen: set[int] = set()
    done = threading.Event()

    def watch():
        while not done.is_set():
            try:
                seen.add(target.stat().st_size)
            except FileNotFoundError:
                seen.add(-1)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        with open_folder(conn_of(any_folder.connection())) as folder:
            folder.upload(src, "out/large.csv")
    finally:
        done.set()
        watcher.join()
    assert seen <= {-1, size}, f"a partial file was visible: sizes {sorted(seen)}"
    assert target.stat().st_size == size
    assert any_folder.files() == ["out/large.csv"]


def test_upload_creates_a_missing_connection_folder(any_folder, tmp_path):
    src = tmp_path / "a.csv"
    src.write_text("x\n1\n")
    settings = any_folder.connection()
    settings["path"] = settings["path"].rstrip("/") + "/new/inbox"
    with open_folder(conn_of(settings)) as folder:
        folder.upload(src, "a.csv")
    assert any_folder.files() == ["new/inbox/a.csv"]


def test_move_into_a_folder_never_overwrites(any_folder):
    any_folder.write("contacts.csv", "first")
    with open_folder(conn_of(any_folder.connection())) as folder:
        assert folder.move("contacts.csv", "archive/2024") == "archive/2024/contacts.csv"
        any_folder.write("contacts.csv", "second")
        assert folder.move("contacts.csv", "archive/2024") == "archive/2024/contacts-1.csv"
        any_folder.write("contacts.csv", "third")
        assert folder.move("contacts.csv", "archive/2024") == "archive/2024/contacts-2.csv"
        assert folder.list("*.csv") == []
    assert any_folder.files() == ["archive/2024/contacts-1.csv", "archive/2024/contacts-2.csv",
                                  "archive/2024/contacts.csv"]
    assert (any_folder.dir / "archive/2024/contacts.csv").read_text() == "first"
    assert (any_folder.dir / "archive/2024/contacts-2.csv").read_text() == "third"


def test_listing_a_missing_folder_is_not_found(any_folder):
    settings = any_folder.connection()
    settings["path"] = settings["path"].rstrip("/") + "/missing"
    with pytest.raises(ConnectionFailed) as err:
        with open_folder(conn_of(settings)) as folder:
            folder.list("*.csv")
    assert err.value.reason == "not_found"
    assert "missing" in str(err.value) and "connection 'files'" in str(err.value)


def test_moving_a_missing_file_is_not_found(any_folder):
    with pytest.raises(ConnectionFailed) as err:
        with open_folder(conn_of(any_folder.connection())) as folder:
            folder.move("ghost.csv", "archive")
    assert err.value.reason == "not_found"


@pytest.mark.parametrize("kind", ["ftp", "sftp"])
def test_a_read_only_user_gets_permission_denied(kind, request, tmp_path):
    served = request.getfixturevalue(f"{kind}_folder")
    served.write("a.csv", "x\n1\n")
    server = served.server
    src = tmp_path / "b.csv"
    src.write_text("x\n2\n")
    with open_folder(conn_of(served.connection(user=server.reader, password=server.reader_password))) as folder:
        assert [f.name for f in folder.list("*.csv")] == ["a.csv"]
        with pytest.raises(ConnectionFailed) as err:
            folder.upload(src, "b.csv")
        assert err.value.reason == "permission_denied"
        assert server.reader in str(err.value)
        with pytest.raises(ConnectionFailed) as err:
            folder.move("a.csv", "archive")
        assert err.value.reason == "permission_denied"
    assert served.files() == ["a.csv"]


def test_relative_server_path_starts_at_the_login_folder(remote_folder):
    remote_folder.write("a.csv", "x\n1\n")
    settings = remote_folder.connection(path=remote_folder.path.lstrip("/"))
    with open_folder(conn_of(settings)) as folder:
        assert [f.name for f in folder.list("*.csv")] == ["a.csv"]
        assert folder.url("a.csv").endswith(remote_folder.path + "/a.csv")


def test_ftp_active_mode_and_list_fallback(ftp_folder, tmp_path):
    """passive: false uses active data connections; servers without MLSD are listed with LIST."""
    ftp_folder.write("a.csv", "x\n1\n")
    ftp_folder.write("sub dir/b c.csv", "x\n22\n")
    with open_folder(conn_of(ftp_folder.connection(passive=False))) as folder:
        assert [f.name for f in folder.list("**/*.csv")] == ["a.csv", "sub dir/b c.csv"]
        folder.download("sub dir/b c.csv", tmp_path / "b.csv")
        assert (tmp_path / "b.csv").read_text() == "x\n22\n"
    with open_folder(conn_of(ftp_folder.connection())) as folder:
        folder._mlsd = False  # as on a server that does not know MLSD
        listed = folder.list("**/*.csv")
        assert [(f.name, f.size, f.mtime) for f in listed] == [("a.csv", 4, None), ("sub dir/b c.csv", 5, None)]
