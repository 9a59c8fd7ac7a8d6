"""Paths never leave their connection's folder: sync folders and file names, source patterns
and archive folders with '..' or absolute paths are refused at apply, and symbolic links that
lead outside a local folder are neither listed nor read (unless the connection allows them)."""

from __future__ import annotations

import os

import pytest

from tessera.config.loader import parse_config
from tessera.connectors.files import LocalFolder
from tessera.errors import ConfigError, ConnectionFailed
from tessera.workspace import Workspace

CONTACTS = "id,email\n1,ann@example.com\n2,bob@example.com\n"


def config(tmp_path, *, source: dict | None = None, sync: dict | None = None, conn: dict | None = None) -> dict:
    return {
        "connections": [{"name": "files", "type": "local", "path": str(tmp_path / "data"), **(conn or {})},
                        {"name": "out", "type": "local", "path": str(tmp_path / "out")}],
        "sources": [{"name": "crm", "connection": "files", "pattern": "*.csv", "record_keys": ["id"],
                     **(source or {})}],
        "datasets": [{"name": "contacts", "mappings": [{"source": "crm", "columns": {"crm_id": "id",
                                                                                     "email": "email"}}]}],
        "syncs": [{"name": "export", "dataset": "contacts", "connection": "out", **(sync or {})}],
    }


def problems_of(data) -> str:
    with pytest.raises(ConfigError) as exc:
        parse_config(data)
    return str(exc.value)


@pytest.mark.parametrize("sync, setting", [
    ({"folder": "../../"}, "folder"),
    ({"folder": "/tmp"}, "folder"),
    ({"folder": "a/../../b"}, "folder"),
    ({"file_name": "../../escaped_{run}.csv"}, "file_name"),
    ({"file_name": "/tmp/escaped_{run}.csv"}, "file_name"),
    ({"file_name": "{run:>999999999}.csv"}, "file_name"),
    ({"file_name": "{sync.__class__}.csv"}, "file_name"),
])
def test_sync_paths_leaving_the_folder_are_refused_at_apply(tmp_path, sync, setting):
    text = problems_of(config(tmp_path, sync=sync))
    assert f"syncs[0] (export).{setting}:" in text


@pytest.mark.parametrize("source, setting", [
    ({"pattern": "../*.csv"}, "pattern"),
    ({"pattern": "/etc/*.csv"}, "pattern"),
    ({"pattern": "**/../../x.csv"}, "pattern"),
    ({"archive_folder": "../archive"}, "archive_folder"),
    ({"archive_folder": "/var/archive"}, "archive_folder"),
])
def test_source_paths_leaving_the_folder_are_refused_at_apply(tmp_path, source, setting):
    text = problems_of(config(tmp_path, source=source))
    assert f"sources[0] (crm).{setting}:" in text
    assert "connection's folder" in text


def test_inside_paths_are_accepted(tmp_path):
    parse_config(config(tmp_path, source={"pattern": "**/x_*.csv", "archive_folder": "done/2024"},
                        sync={"folder": "exports/./daily", "file_name": "{sync}/{timestamp}_{run}.{format}"}))


def test_folder_refuses_names_outside_it_even_without_apply(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "secret.txt").write_text("no")
    conn = parse_config(config(tmp_path)).connections[0]
    with LocalFolder(conn) as folder:
        for name in ("../secret.txt", str(tmp_path / "secret.txt")):
            with pytest.raises(ConnectionFailed) as exc:
                folder.download(name, tmp_path / "copy.txt")
            assert exc.value.reason == "config"
            with pytest.raises(ConnectionFailed):
                folder.upload(tmp_path / "secret.txt", name)
        with pytest.raises(ConnectionFailed):
            folder.move("x.csv", "../elsewhere")
    assert not (tmp_path / "copy.txt").exists()


def _links(tmp_path):
    """A data folder with a file link, a folder link and an inner link, all but one leading outside."""
    outside = tmp_path / "outside"
    (outside / "deep").mkdir(parents=True)
    (outside / "stolen.csv").write_text("id,email\n9,thief@example.com\n")
    (outside / "deep" / "x.csv").write_text("id,email\n8,deep@example.com\n")
    data = tmp_path / "data"
    data.mkdir()
    (data / "contacts.csv").write_text(CONTACTS)
    os.symlink(outside / "stolen.csv", data / "link.csv")
    os.symlink(outside, data / "linked_dir")
    os.symlink(data / "contacts.csv", data / "inner.csv")  # stays inside: allowed


def test_symbolic_links_leaving_the_folder_are_not_imported(tmp_path):
    _links(tmp_path)
    with Workspace.init(tmp_path / "ws") as ws:
        ws.apply(config(tmp_path, source={"pattern": "**/*.csv", "import_strategy": "full"}))
        result = ws.run()
        emails = set(ws.table("contacts").to_pyarrow().column("email").to_pylist())
    assert emails == {"ann@example.com", "bob@example.com"}
    warnings = " ".join(result.warnings)
    assert "link.csv" in warnings and "linked_dir" in warnings and "allow_symlinks" in warnings


def test_a_link_is_refused_when_read_directly(tmp_path):
    _links(tmp_path)
    conn = parse_config(config(tmp_path)).connections[0]
    with LocalFolder(conn) as folder:
        assert [f.name for f in folder.list("**/*.csv")] == ["contacts.csv", "inner.csv"]
        with pytest.raises(ConnectionFailed) as exc:
            folder.local_path("linked_dir/deep/x.csv")
        assert "allow_symlinks" in str(exc.value)


def test_links_are_followed_when_the_connection_allows_them(tmp_path):
    _links(tmp_path)
    conn = parse_config(config(tmp_path, conn={"allow_symlinks": True})).connections[0]
    with LocalFolder(conn) as folder:
        names = [f.name for f in folder.list("**/*.csv")]
    assert names == ["contacts.csv", "inner.csv", "link.csv", "linked_dir/deep/x.csv", "linked_dir/stolen.csv"]
