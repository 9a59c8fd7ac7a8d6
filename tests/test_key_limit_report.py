"""Merges refused by identity-key limits appear in the run summary and in ``tessera explain``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tessera.workspace import Workspace

ROOT = Path(__file__).resolve().parents[1]
CRM = "id;email;card\n1;ann@example.com;C1\n2;ann@example.com;C2\n3;bob@example.com;C3\n4;bob@example.com;C3\n"


def tessera(*args):
    proc = subprocess.run([sys.executable, "-m", "tessera.cli.main", *map(str, args)], capture_output=True, text=True,
                          timeout=600, env={**os.environ, "COLUMNS": "220", "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def test_refused_merges_are_reported(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "crm.csv").write_text(CRM)
    ws = Workspace.init(tmp_path / "ws")
    ws.apply({
        "connections": [{"name": "files", "type": "local", "path": str(tmp_path / "data")}],
        "sources": [{"name": "crm", "connection": "files", "pattern": "crm.csv", "record_keys": ["id"]}],
        "datasets": [{"name": "contacts", "deduplicate": True,
                      # one loyalty card per customer: two cards on one e-mail are two customers
                      "identity_keys": [{"column": "card", "limit": 1}, {"column": "email"}],
                      "mappings": [{"source": "crm", "columns": {"crm_id": "id", "email": "email", "card": "card"}}]}],
    })
    ws.close()
    out = tessera("-w", tmp_path / "ws", "run")
    # ann's two records, which the card limit kept apart
    assert "contacts: 2 record(s) kept apart by the identity key limits" in " ".join(out.split())
    ws = Workspace.open(tmp_path / "ws")
    rows = ws.adapter.to_arrow(ws.table("contacts")).to_pylist()
    ann = [r for r in rows if r["email"] == "ann@example.com"]
    assert len(ann) == 2
    ws.close()
    out = tessera("-w", tmp_path / "ws", "explain", ann[0]["tessera_id"])
    assert f"also on {ann[1]['tessera_id']}, kept apart by the identity key limits (card: at most 1)" in out
    assert "email='ann@example.com'" in out
