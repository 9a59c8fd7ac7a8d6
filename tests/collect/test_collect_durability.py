"""Durability: a server killed under load loses no acknowledged event and stores none twice;
the CLI runs the pipeline while the server is up."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections import Counter

import httpx
import orjson
from collect_helpers import ROOT, WRITE_KEY, events, free_port, make_workspace, wait_for

from tessera.workspace import Workspace


class Senders:
    """Client threads that send batches as fast as the server answers, noting what was acknowledged."""

    def __init__(self, url: str, prefix: str, threads: int = 4, batch: int = 50):
        self.url = url
        self.prefix = prefix
        self.batch = batch
        self.acknowledged: set[str] = set()
        self.refused: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._send, args=(n,), daemon=True) for n in range(threads)]
        for t in self._threads:
            t.start()

    def _send(self, n: int) -> None:
        with httpx.Client(auth=(WRITE_KEY, ""), timeout=30) as http:
            i = 0
            while not self._stop.is_set():
                ids = [f"{self.prefix}-{n}-{i}-{j}" for j in range(self.batch)]
                body = {"batch": [{"type": "track", "userId": f"u{j}", "event": "Load", "messageId": m,
                                   "properties": {"n": n, "i": i}} for j, m in enumerate(ids)]}
                try:
                    response = http.post(f"{self.url}/v1/batch", content=orjson.dumps(body),
                                         headers={"Content-Type": "application/json"})
                except httpx.HTTPError:
                    return  # the server is gone: this batch may or may not have been logged
                with self._lock:
                    if response.status_code == 200:
                        self.acknowledged.update(ids)
                    else:
                        self.refused.append(response.text)
                i += 1

    def count(self) -> int:
        with self._lock:
            return len(self.acknowledged)

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=60)


def test_a_server_killed_under_load_loses_no_acknowledged_event(make_server, tmp_path):
    path = make_workspace(tmp_path / "ws")
    acknowledged: set[str] = set()
    # Kill it twice, at different points: while the log grows, and right after a restart's replay began.
    for round_, target in enumerate((6000, 3000)):
        server = make_server(path)
        senders = Senders(server.url, f"r{round_}")
        wait_for(lambda: senders.count() >= target, timeout=120, what=f"{target} acknowledged events")
        server.kill()
        senders.stop()
        assert senders.refused == []
        acknowledged |= senders.acknowledged

    server = make_server(path)
    server.wait_loaded(timeout=120)
    counts = Counter(r["message_id"] for r in events(path))
    doubled = [m for m, c in counts.items() if c > 1]
    missing = acknowledged - counts.keys()
    assert not doubled, f"{len(doubled)} events stored twice, e.g. {doubled[:3]}"
    assert not missing, f"{len(missing)} acknowledged events lost, e.g. {sorted(missing)[:3]}"
    assert len(acknowledged) >= 9000


CONFIG = {
    "connections": [{"name": "files", "type": "local", "path": "{data}"},
                    {"name": "web", "type": "http", "write_key": WRITE_KEY}],
    "sources": [{"name": "crm", "connection": "files", "pattern": "crm*.csv", "record_keys": ["id"]}],
    "datasets": [{"name": "contacts", "mappings": [{"source": "crm", "columns": {"id": "id", "email": "email"}}]}],
}


def test_tessera_run_works_while_the_server_collects(make_server, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "crm.csv").write_text("id,email\n" + "".join(f"{i},c{i}@example.com\n" for i in range(200)))
    config = orjson.loads(orjson.dumps(CONFIG).replace(b"{data}", str(data).encode()))
    path = tmp_path / "ws"
    ws = Workspace.init(path)
    ws.apply(config)
    ws.close()
    server = make_server(path)
    before = Senders(server.url, "before", threads=1)
    wait_for(lambda: before.count() >= 500, what="events before the run")
    before.stop()
    server.wait_loaded()

    # The server owns the workspace: the CLI's run is a job of its writer queue.
    run = subprocess.Popen([sys.executable, "-m", "tessera.cli.main", "-w", str(path), "run"], cwd=ROOT,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def running_job():
        jobs = server.api("GET", "/api/jobs").json()
        return jobs and jobs[0]["kind"] == "run" and jobs[0]["state"] != "queued" or run.poll() is not None

    wait_for(running_job, what="the run to start on the server")
    # While it runs, events keep being accepted and loaded.
    during = Senders(server.url, "during", threads=2)
    wait_for(lambda: during.count() >= 500 or run.poll() is not None, timeout=120, what="events during the run")
    output, _ = run.communicate(timeout=600)
    during.stop()
    assert run.returncode == 0, output
    assert "sent to the server" in output and "succeeded" in output
    assert during.refused == [] and during.count() > 0

    server.wait_loaded()
    ids = {r["message_id"] for r in events(path)}
    assert before.acknowledged <= ids and during.acknowledged <= ids
    status = server.api("GET", "/api/status").json()
    assert {d["dataset"]: d["rows"] for d in status["datasets"]}["contacts"] == 200
    assert server.api("GET", "/api/jobs").json()[0]["state"] == "succeeded"


def test_a_second_server_on_the_same_workspace_is_refused(make_server, tmp_path):
    path = make_workspace(tmp_path / "ws")
    make_server(path)
    second = subprocess.run([sys.executable, "-m", "tessera.api.server", "--workspace", str(path),
                             "--port", str(free_port())], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert second.returncode == 1
    assert "Error: the event log" in second.stderr and "already written by another process" in second.stderr
