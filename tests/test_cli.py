"""The command line, run as a user runs it: a real process, its exit code and its output."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from tessera.demo.generator import generate
from tessera.store import MetadataStore
from tessera.workspace import Workspace

TESSERA = [sys.executable, "-m", "tessera.cli.main"]


def tessera(*args, cwd=None, check=True):
    proc = subprocess.run([*TESSERA, *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"tessera {' '.join(map(str, args))} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.fixture(scope="module")
def company(tmp_path_factory):
    return generate(tmp_path_factory.mktemp("company"), size=300, seed=3)


def test_init_apply_run_status_explain_export(tmp_path, company):
    ws = tmp_path / "ws"
    tessera("init", ws)
    assert (ws / "metadata.sqlite").exists() and (ws / "warehouse.duckdb").exists()
    out = tessera("-w", ws, "apply", company.workspace_path).stdout
    assert "added: source crm_contacts" in out
    assert "No change." in tessera("-w", ws, "apply", company.workspace_path).stdout
    out = tessera("-w", ws, "run").stdout
    assert "succeeded" in out and "duplicates merged" in out
    assert "contacts" in tessera("-w", ws, "status").stdout
    segments = tessera("-w", ws, "segments", "list").stdout
    assert "Segments of contacts" in segments and "vip" in segments and "Best customers" in segments
    assert "line" in tessera("-w", ws, "rejects").stdout
    exported = tmp_path / "contacts.csv"
    tessera("-w", ws, "export-data", "contacts", "-o", exported)
    header, first = exported.read_text().splitlines()[:2]
    assert header.startswith("tessera_id,")
    # explain the customer with the most source records
    with Workspace.open(ws) as w:
        t = w.table("contacts")
        tid = w.adapter.to_arrow(t.order_by([t.tessera_record_count.desc(), t.tessera_id]).limit(1))["tessera_id"][0].as_py()
    out = tessera("-w", ws, "explain", tid).stdout
    assert "shares" in out
    config = tessera("-w", ws, "export").stdout
    assert "crm_contacts" in config
    again = tmp_path / "again.yaml"
    again.write_text(config)
    assert "No change." in tessera("-w", ws, "apply", again).stdout


def test_user_errors_exit_1_with_a_message(tmp_path, company):
    proc = tessera("-w", tmp_path / "nowhere", "run", check=False)
    assert proc.returncode == 1
    assert proc.stderr.startswith("Error:") and "tessera init" in proc.stderr
    ws = tmp_path / "ws"
    tessera("init", ws)
    bad = tmp_path / "bad.yaml"
    bad.write_text(company.workspace_path.read_text().replace("record_keys:", "record_key:", 1))
    proc = tessera("-w", ws, "apply", bad, check=False)
    assert proc.returncode == 1
    assert "unknown setting 'record_key'" in proc.stderr and "line" in proc.stderr
    assert "Traceback" not in proc.stderr
    proc = tessera("--debug", "-w", ws, "apply", bad, check=False)
    assert "Traceback" in proc.stderr


def test_a_mistyped_command_or_option_is_a_usage_error_not_a_bug(tmp_path):
    ws = tmp_path / "ws"
    tessera("init", ws)
    for args, said in ((("status", "--bogus"), "No such option: --bogus"),
                       (("statu",), "Did you mean 'status'"),
                       (("run", "--dry"), "No such option: --dry")):
        proc = tessera("-w", ws, *args, check=False)
        assert proc.returncode == 2, proc.stderr
        assert said in proc.stderr and "Usage: tessera" in proc.stderr and "--help" in proc.stderr
        assert "bug of Tessera" not in proc.stderr and "Traceback" not in proc.stderr

def test_killed_run_leaves_the_last_published_state(tmp_path):
    info = generate(tmp_path / "company", size=3000, seed=4)
    ws_dir = tmp_path / "ws"
    with Workspace.init(ws_dir) as ws:
        ws.apply(info.workspace_path)
        ws.run()
        before = ws.adapter.execute(ws.table("contacts").count())
    # a new file for the next run, which is killed while it unifies
    crm = info.out_dir / "data" / "crm"
    header = (crm / "contacts_crm.csv").read_text(encoding="utf-8-sig").splitlines()[0].split(";")
    lines = [";".join(header)]
    for i in range(50):
        values = {"id_client": f"NEW{i}", "prenom": "Jo", "nom": "Doe", "courriel": f"new{i}@example.org"}
        lines.append(";".join(values.get(col, "") for col in header))
    (crm / "contacts_2.csv").write_text("\n".join(lines) + "\n")
    proc = subprocess.Popen([*TESSERA, "-w", ws_dir, "run"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    store = MetadataStore(f"sqlite:///{ws_dir / 'metadata.sqlite'}")
    deadline = time.time() + 300
    killed_in = None
    while time.time() < deadline and proc.poll() is None:
        runs = store.list_runs(1)
        steps = {s["step"] for s in runs[0].get("steps", [])} if runs and runs[0]["id"] > 1 else set()
        if "stage" in steps:
            os.kill(proc.pid, signal.SIGKILL)
            killed_in = "unify"
            break
        time.sleep(0.05)
    proc.wait()
    store.close()
    assert killed_in, "the run finished before it could be killed"
    with Workspace.open(ws_dir) as ws:
        # readable, and still the previous publication
        assert ws.adapter.execute(ws.table("contacts").count()) == before
        result = ws.run()
        assert result.status == "succeeded"
        assert ws.adapter.execute(ws.table("contacts").count()) == before + 50
        statuses = [r["status"] for r in ws.runs(3)]
        assert statuses[:2] == ["succeeded", "interrupted"]
