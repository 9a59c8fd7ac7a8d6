"""``tessera sources list|show|preview``, run as a user runs them (a real process)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tessera.workspace import Workspace

TESSERA = [sys.executable, "-m", "tessera.cli.main"]
ROOT = Path(__file__).resolve().parents[1]

CRM = (
    "id;prenom;courriel;pays\n"
    "1;  jean ;Jean.Dupont@Example.com;France\n"
    "2;marie;marie@example.com;N/A\n"
    "3;paul;paul@example.com;espagne;extra\n"
    "1;jean;jean@example.com;France\n"
)


def tessera(*args, check=True):
    proc = subprocess.run([*TESSERA, *map(str, args)], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "COLUMNS": "200", "PYTHONPATH": str(ROOT)})
    if check:
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


@pytest.fixture(scope="module")
def ws_path(tmp_path_factory):
    base = tmp_path_factory.mktemp("sources")
    (base / "data").mkdir()
    (base / "data" / "crm_1.csv").write_text(CRM)
    ws = Workspace.init(base / "ws")
    ws.apply({
        "connections": [{"name": "files", "type": "local", "path": str(base / "data")}],
        "sources": [{"name": "crm", "connection": "files", "pattern": "crm_*.csv", "record_keys": ["id"],
                     "normalize": {"prenom": ["trim", "title"], "courriel": ["email"], "pays": ["null_like", "country"]},
                     "relations": []}],
        "datasets": [{"name": "contacts", "mappings": [
            {"source": "crm", "columns": {"crm_id": "id", "first_name": "prenom", "email": "courriel",
                                          "country": "pays"}}]}],
    })
    ws.run()
    ws.close()
    return base / "ws"


def test_list(ws_path):
    out = tessera("-w", ws_path, "sources", "list").stdout
    line = next(x for x in out.splitlines() if "crm " in x)
    assert "files" in line and "crm_*.csv" in line and "id" in line


def test_show(ws_path):
    out = tessera("-w", ws_path, "sources", "show", "crm").stdout
    assert "record key(s): id" in out and "feeds: contacts" in out
    assert "crm_1.csv" in out
    assert "null_like, country" in out  # the column's normalization
    assert "line 5 was kept" in out  # the duplicate key's reject
    assert "Rejected rows (2" in out


def test_preview_shows_normalized_rows(ws_path):
    out = tessera("-w", ws_path, "sources", "preview", "crm").stdout
    assert "Jean" in out and "jean@example.com" in out and " FR " in out
    assert "N/A" not in out  # null-like values are empty after normalization
    assert "Jean.Dupont" not in out  # line 2 lost to line 5 (the later state of id 1)


def test_unknown_source_is_a_clear_error(ws_path):
    proc = tessera("-w", ws_path, "sources", "show", "crmm", check=False)
    assert proc.returncode == 1
    assert "unknown source 'crmm' (sources: crm)" in proc.stderr and "Traceback" not in proc.stderr
