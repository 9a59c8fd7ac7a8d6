"""Symbolic links on an SFTP server: a link leading outside the connection's folder (elsewhere on
the server, or outside what the server lets the user see) is left out of listings with a warning
and refused when read or written through, unless the connection sets allow_symlinks; source
patterns with '..' or an absolute path are refused at apply for every kind of folder."""

from __future__ import annotations

import os
import uuid

import pytest

from tessera.config.loader import parse_config
from tessera.connectors.sftp import SFTPFolder
from tessera.errors import ConfigError, ConnectionFailed
from tessera.workspace import Workspace

CONTACTS = "id,email\n1,ann@example.com\n2,bob@example.com\n"


@pytest.fixture
def linked(sftp_folder, sftp_server, tmp_path):
    """The test's folder on the server with a file link and a folder link to a sibling folder of
    the server, a link outside the server's root, and a link that stays inside."""
    outside = sftp_server.root / f"outside_{uuid.uuid4().hex[:6]}"
    (outside / "deep").mkdir(parents=True)
    (outside / "stolen.csv").write_text("id,email\n9,thief@example.com\n")
    (outside / "deep" / "x.csv").write_text("id,email\n8,deep@example.com\n")
    beyond = tmp_path / "beyond.csv"
    beyond.write_text("id,email\n7,far@example.com\n")
    sftp_folder.write("contacts.csv", CONTACTS)
    os.symlink(outside / "stolen.csv", sftp_folder.dir / "link.csv")
    os.symlink(outside, sftp_folder.dir / "linked_dir")
    os.symlink(beyond, sftp_folder.dir / "far.csv")
    os.symlink(sftp_folder.dir / "contacts.csv", sftp_folder.dir / "inner.csv")
    return sftp_folder


def conn(folder, **extra):
    cfg = {"connections": [{"name": "server", **folder.connection(**extra)}], "sources": [], "datasets": []}
    return parse_config(cfg).connections[0]


def test_links_leaving_the_folder_are_left_out_and_refused(linked):
    with SFTPFolder(conn(linked)) as folder:
        assert [f.name for f in folder.list("**/*.csv")] == ["contacts.csv", "inner.csv"]
        refused = " ".join(folder.refused)
        assert "'link.csv' is a symbolic link on the server" in refused and "'linked_dir'" in refused
        assert "'far.csv'" in refused and "allow_symlinks" in refused
        for name in ("link.csv", "linked_dir/deep/x.csv", "far.csv"):
            with pytest.raises(ConnectionFailed) as exc:
                folder.download(name, linked.dir.parent / "copy.csv")
            assert exc.value.reason == "config" and "allow_symlinks: true" in str(exc.value)
        with pytest.raises(ConnectionFailed, match="symbolic link"):
            folder.upload(linked.dir / "contacts.csv", "linked_dir/planted.csv")
    assert not (linked.dir.parent / "copy.csv").exists()


def test_links_are_followed_when_the_connection_allows_them(linked):
    with SFTPFolder(conn(linked, allow_symlinks=True)) as folder:
        names = [f.name for f in folder.list("**/*.csv")]
    assert names == ["contacts.csv", "far.csv", "inner.csv", "link.csv", "linked_dir/deep/x.csv", "linked_dir/stolen.csv"]


def test_a_run_on_the_server_imports_only_the_files_inside(linked, tmp_path):
    cfg = {"connections": [{"name": "server", **linked.connection()}],
           "sources": [{"name": "crm", "connection": "server", "pattern": "**/*.csv", "record_keys": ["id"],
                        "import_strategy": "full"}],
           "datasets": [{"name": "contacts", "mappings": [{"source": "crm", "columns": {"email": "email"}}]}]}
    with Workspace.init(tmp_path / "ws") as ws:
        ws.apply(cfg)
        result = ws.run()
        emails = set(ws.table("contacts").to_pyarrow().column("email").to_pylist())
    assert emails == {"ann@example.com", "bob@example.com"}
    assert result.status == "succeeded with warnings"
    assert any("link.csv" in w and "allow_symlinks" in w for w in result.warnings)


@pytest.mark.parametrize("kind", ["local", "ftp", "ftps", "sftp"])
@pytest.mark.parametrize("pattern", ["../*.csv", "/etc/*.csv", "a/../../*.csv", "~/x.csv"])
def test_patterns_leaving_the_folder_are_refused_at_apply_for_every_folder_kind(kind, pattern):
    connection = {"name": "files", "type": kind, "path": "/data"} if kind == "local" else \
        {"name": "files", "type": kind, "host": "example.com", "user": "u", "path": "/data"}
    with pytest.raises(ConfigError) as exc:
        parse_config({"connections": [connection],
                      "sources": [{"name": "crm", "connection": "files", "pattern": pattern, "record_keys": ["id"],
                                   "archive_folder": "../done"}],
                      "datasets": []})
    text = str(exc.value)
    assert "sources[0] (crm).pattern:" in text and "sources[0] (crm).archive_folder:" in text


def test_a_file_the_ftp_server_refuses_is_left_out_and_the_others_imported(ftp_folder, tmp_path):
    """pyftpdlib lists a link leading outside its root but refuses to send it: that file is left out
    with a warning (tried again next time), the source's other files are imported."""
    outside = tmp_path / "stolen.csv"
    outside.write_text("id,email\n9,thief@example.com\n")
    ftp_folder.write("contacts.csv", CONTACTS)
    os.symlink(outside, ftp_folder.dir / "link.csv")
    cfg = {"connections": [{"name": "server", **ftp_folder.connection()}],
           "sources": [{"name": "crm", "connection": "server", "pattern": "*.csv", "record_keys": ["id"]}],
           "datasets": [{"name": "contacts", "mappings": [{"source": "crm", "columns": {"email": "email"}}]}]}
    with Workspace.init(tmp_path / "ws") as ws:
        ws.apply(cfg)
        result = ws.run()
        emails = set(ws.table("contacts").to_pyarrow().column("email").to_pylist())
    assert emails == {"ann@example.com", "bob@example.com"}
    assert result.status == "succeeded with warnings"
    assert any("file 'link.csv' could not be downloaded and was left out of this import" in w
               for w in result.warnings)
