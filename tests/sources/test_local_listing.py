"""A local file imported before and unchanged since (same size, modification and change times,
inode) is skipped without being read again; any write to it, even one that puts its modification
time back, has it hashed and, when its content is new, imported."""

from __future__ import annotations

import os

import pytest

from tessera.sources import importer
from tessera.workspace import Workspace


def config(tmp_path) -> dict:
    return {
        "connections": [{"name": "files", "type": "local", "path": str(tmp_path / "data")}],
        "sources": [{"name": "crm", "connection": "files", "pattern": "*.csv", "record_keys": ["id"]}],
        "datasets": [{"name": "contacts", "mappings": [{"source": "crm", "columns": {"crm_id": "id",
                                                                                     "email": "email"}}]}],
    }


@pytest.fixture
def hashed(monkeypatch):
    """The names of the files hashed."""
    seen: list[str] = []
    real = importer.sha256_of

    def counting(path):
        seen.append(os.path.basename(path))
        return real(path)

    monkeypatch.setattr(importer, "sha256_of", counting)
    return seen


def emails(ws) -> list[str]:
    return sorted(ws.table("contacts").to_pyarrow().column("email").to_pylist())


def test_an_unchanged_local_file_is_not_read_again_and_a_rewritten_one_is(tmp_path, monkeypatch, hashed):
    monkeypatch.setattr(importer, "SETTLED_NS", 0)  # the files of this test count as settled at once
    (tmp_path / "data").mkdir()
    a = tmp_path / "data" / "a.csv"
    a.write_text("id,email\n1,ann@example.com\n")
    (tmp_path / "data" / "b.csv").write_text("id,email\n2,bob@example.com\n")
    with Workspace.init(tmp_path / "ws") as ws:
        ws.apply(config(tmp_path))
        assert ws.run().status == "succeeded"
        assert sorted(hashed) == ["a.csv", "b.csv"]

        hashed.clear()
        again = ws.run()
        assert again.unchanged and hashed == []

        # same size, new content, the modification time put back: its change time moved
        st = os.stat(a)
        a.write_text("id,email\n1,amy@example.com\n")
        os.utime(a, ns=(st.st_atime_ns, st.st_mtime_ns))
        assert os.stat(a).st_size == st.st_size and os.stat(a).st_mtime_ns == st.st_mtime_ns
        hashed.clear()
        assert ws.run().status == "succeeded"
        assert hashed == ["a.csv"]
        assert emails(ws) == ["amy@example.com", "bob@example.com"]


def test_a_file_changed_just_before_its_import_is_hashed_again_next_time(tmp_path, hashed):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "a.csv").write_text("id,email\n1,ann@example.com\n")
    with Workspace.init(tmp_path / "ws") as ws:
        ws.apply(config(tmp_path))
        ws.run()
        hashed.clear()
        # written less than SETTLED_NS ago: its times might not tell a write in the same clock tick
        again = ws.run()
        assert again.unchanged and hashed == ["a.csv"]
