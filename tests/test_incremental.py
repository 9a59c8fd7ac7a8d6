"""Runs that find nothing new keep the published state as it is; anything a run reads that
changes (a file, the configuration, an identity override, the date) makes it build again."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from datetime import date
from pathlib import Path

from tests.test_pipeline import CONFIG, CRM, ORDERS, SHOP, rows

ROOT = Path(__file__).resolve().parents[1]
FILES = {"crm_1.csv": CRM.encode("utf-8"), "shop.json": json.dumps(SHOP),
         "orders.ndjson": "\n".join(json.dumps(o) for o in ORDERS) + "\n"}
VIEWS = ("contacts", "contacts__records", "orders", "tessera_rejects")


def published(ws) -> dict[str, str]:
    return {v: ws.adapter.published_target(v) for v in VIEWS}


def test_a_run_with_nothing_new_keeps_the_publication(make_workspace, tmp_path):
    ws = make_workspace(CONFIG, FILES)
    first = ws.run()
    assert not first.unchanged
    before, contacts = published(ws), rows(ws, "contacts", ["tessera_id"])
    versions = len(ws.store.list_publications("contacts"))

    again = ws.run()
    assert again.unchanged and again.status == "succeeded"
    assert [s["step"] for s in again.steps] == ["import", "unchanged"]
    assert again.sources["crm"]["files_skipped"] == 1 and again.sources["crm"]["staged"] == 5
    assert again.datasets["contacts"]["rows"] == first.datasets["contacts"]["rows"] == 6
    assert published(ws) == before  # the same tables, not rebuilt copies
    assert len(ws.store.list_publications("contacts")) == versions
    assert rows(ws, "contacts", ["tessera_id"]) == contacts
    assert ws.runs(1)[0]["counts"]["unchanged"] is True

    # --full rebuilds all the same, to the same content
    forced = ws.run(full=True)
    assert not forced.unchanged and published(ws)["contacts"] != before["contacts"]
    assert rows(ws, "contacts", ["tessera_id"]) == contacts

    # a new file is read and published
    (tmp_path / "data" / "crm_2.csv").write_text("id;prenom;nom;courriel;telephone;date_naissance;maj\n"
                                                 "7;Nina;Simone;nina@example.com;;;2024-05-01\n")
    grown = ws.run()
    assert not grown.unchanged
    assert "nina@example.com" in {c["email"] for c in rows(ws, "contacts")}
    assert ws.run().unchanged


def test_what_a_run_reads_changing_makes_it_build_again(make_workspace, tmp_path):
    ws = make_workspace(CONFIG, FILES)
    ws.run()
    # the configuration
    (tmp_path / "workspace.yaml").write_text(textwrap.dedent(CONFIG.replace("shared_value_threshold: 10",
                                                                            "shared_value_threshold: 11")))
    ws.apply(tmp_path / "workspace.yaml")
    assert not ws.run().unchanged
    assert ws.run().unchanged
    # an identity override
    jean = [r["_tessera_record"] for r in rows(ws, "contacts__records") if r["email"] == "jean.dupont@example.com"]
    ws.identity_override("split", jean[:1])
    split = ws.run()
    assert not split.unchanged
    assert len([c for c in rows(ws, "contacts") if c["email"] == "jean.dupont@example.com"]) == 2
    # the day scores and segments are computed at
    assert not ws.run(as_of=date(2030, 1, 1)).unchanged
    assert ws.run(as_of=date(2030, 1, 1)).unchanged
    # a published table gone (dropped by hand): the next run builds it again
    ws.adapter.drop_table(ws.adapter.published_target("orders"))
    assert not ws.run(as_of=date(2030, 1, 1)).unchanged
    assert len(rows(ws, "orders")) == 3


def test_the_run_command_says_nothing_was_new(make_workspace, tmp_path):
    ws = make_workspace(CONFIG, FILES, run=True)
    ws.close()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TESSERA_WORKSPACE": str(ws.path), "COLUMNS": "200"}
    proc = subprocess.run([sys.executable, "-m", "tessera.cli.main", "run"], capture_output=True, text=True,
                          env=env, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "Nothing new since the last run" in proc.stdout
