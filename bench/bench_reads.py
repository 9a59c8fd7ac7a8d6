"""Reads of a served workspace kept between runs of the benchmark: latency with 1 and with N
readers, and the server's CPU per read against the same reads in-process (the bare baseline).

``bench/bench_api.py`` builds a new workspace each time (a first run of N contacts); this one
serves a workspace that exists already, so the cost of a read can be compared before and after
a change of the code in a few minutes. Make one once, e.g. with bench_api's data::

    .venv/bin/python bench/bench_reads.py --make /tmp/ws1m --records 1000000
    .venv/bin/python bench/bench_reads.py --workspace /tmp/ws1m --readers 1,20 --seconds 15
    .venv/bin/python bench/bench_reads.py --workspace /tmp/ws1m --readers 20 --seconds 40 --during-run
    .venv/bin/python bench/bench_reads.py --workspace /tmp/ws1m --readers 20 --seconds 120 --during-run --runs 7
    .venv/bin/python bench/bench_reads.py --workspace /tmp/ws1m --readers 1,20 --bare --ids 1000000

Printed per reader count: requests, p50/p95/p99 per route (status, profile), errors, the share
of profile reads that repeat a customer (the server keeps a profile's answer: a repeat is
cheaper; ``--ids`` sets how many customers the readers pick from, 5,000 by default), reads per
second, the server's CPU per read (``psutil`` over the phase), and first the CPU of a profile
and of a status read in this process without a server, with the ratio. With ``--bare``, each
phase is followed by the same readers on a bare FastAPI app answering constants
(``bench/bare_server.py``): the floor of HTTP and Python on this machine at that moment, and
the ratio of the p95s to it. With ``--during-run``, the run's time is printed at the end; with
``--timeline SECONDS`` too, one reader goes through a first whole run job (the build, the indexes
made before publication, the publication) and its latencies are printed per window of SECONDS
beside the job's log, before the phases read during a second run.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_api import _pct, _print_reads, _read_phase  # noqa: E402
from served import start_server  # noqa: E402


def make(path: Path, records: int, data: Path) -> None:
    """A workspace of ``records`` contacts (bench_api's generator), run once."""
    import yaml

    from bench_collect import WRITE_KEY
    from tessera.demo.identity_bench import generate_identity_bench
    from tessera.workspace import Workspace

    data_dir = data / f"identity_{records}_1"
    if not (data_dir / "workspace.yaml").exists():
        generate_identity_bench(data_dir, n_records=records, seed=1)
    config = yaml.safe_load((data_dir / "workspace.yaml").read_text())
    config["connections"].append({"name": "web", "type": "http", "write_key": WRITE_KEY})
    for conn in config["connections"]:
        if conn.get("type") == "local" and not os.path.isabs(conn["path"]):
            conn["path"] = str((data_dir / conn["path"]).resolve())
    with Workspace.init(path) as ws:
        ws.apply(config)
        t0 = time.perf_counter()
        ws.run()
        print(f"{records:,} records: run {time.perf_counter() - t0:.1f} s; workspace {path}")


def customer_ids(path: Path, n: int = 5000) -> list[str]:
    from tessera.workspace import Workspace

    with Workspace.open(path) as ws:
        dataset = next(d.name for d in ws.config.datasets if d.deduplicate)
        t = ws.table(dataset)
        return [r["tessera_id"] for r in ws.adapter.to_arrow(t.select("tessera_id").limit(n)).to_pylist()]


def in_process(path: Path, ids: list[str], n: int = 1000) -> dict[str, float]:
    """CPU per profile and per status read on a reader of the workspace, without a server (ms)."""
    from tessera.workspace import Workspace

    out = {}
    with Workspace.open(path) as ws:
        reader = ws.reader()

        def profile(i: int) -> None:
            with reader.pinned():
                reader.profile(ids[i % len(ids)], events=20)

        def status(_i: int) -> None:
            with reader.pinned():
                reader.status()

        for name, fn in (("profile", profile), ("status", status)):
            for i in range(50):
                fn(i)
            c0 = time.process_time()
            for i in range(n):
                fn(i)
            out[name] = (time.process_time() - c0) / n * 1000
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workspace", type=Path, help="a workspace that was run (see --make)")
    ap.add_argument("--make", type=Path, help="make a workspace here first (a run of --records contacts)")
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--data", type=Path, default=ROOT / ".bench")
    ap.add_argument("--readers", default="1,20", help="reader counts, one phase each (default 1,20)")
    ap.add_argument("--ids", type=int, default=5000,
                    help="customers the readers pick from (the server keeps answers: fewer ids, more repeats)")
    ap.add_argument("--seconds", type=float, default=15, help="seconds per phase")
    ap.add_argument("--during-run", action="store_true", help="queue a full run first and read while it goes")
    ap.add_argument("--runs", type=int, default=1,
                    help="with --during-run: full runs queued one after the other (a loop longer than one run)")
    ap.add_argument("--timeline", type=float, metavar="SECONDS",
                    help="with --during-run: first one reader through the whole job, its latencies "
                         "printed per window of SECONDS with the job's log (then the phases, on a second run)")
    ap.add_argument("--bare", action="store_true",
                    help="after each phase, the same readers on a bare FastAPI app answering constants "
                         "(bench/bare_server.py): the floor of HTTP and Python on this machine")
    args = ap.parse_args()
    if args.make:
        make(args.make, args.records, args.data)
    path = args.make or args.workspace
    if path is None:
        ap.error("give --workspace (or --make)")

    import httpx
    import psutil

    ids = customer_ids(path, args.ids)
    bare = in_process(path, ids)
    print(f"in-process, no server: profile {bare['profile']:.2f} ms of CPU, status {bare['status']:.3f} ms")

    server, url, token = start_server(path)
    floor_server = None
    try:
        proc = psutil.Process(server.pid)
        api = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60, trust_env=False)
        for _ in range(1200):  # the jobs of the server's start (dashboards) end first
            if not any(j.get("state") in ("queued", "running") for j in api.get("/api/jobs").json()):
                break
            time.sleep(0.5)
        _read_phase(url, token, ids, 2, 4)  # warm: the profile's queries compiled
        floor_server = start_bare(api, ids[0], token) if args.bare else None
        job = None
        if args.during_run:
            if args.timeline:
                timeline(api, start_run(api), ids, args.timeline)
            job = {"id": start_run(api)}
            # more full runs queued behind it: the loop can last longer than one run
            queued = [api.post("/api/jobs", json={"kind": "run", "params": {"full": True}}).json()["id"]
                      for _ in range(args.runs - 1)]
        for n in [int(x) for x in args.readers.split(",")]:
            c0 = sum(proc.cpu_times()[:2])
            phase = _read_phase(url, token, ids, args.seconds, n)
            cpu = sum(proc.cpu_times()[:2]) - c0
            reads = sum(len(v) for v in phase["lat"].values())
            _print_reads(f"{'during a run' if job else 'idle'}: {n} reader(s) for {args.seconds:.0f} s", phase)
            per_read = cpu / reads * 1000
            mixed = (3 * bare["profile"] + bare["status"]) / 4  # the readers' mix: 3 profiles for 1 status
            print(f"  {reads / args.seconds:,.0f} reads/s; server CPU per read {per_read:.2f} ms "
                  f"(in-process {mixed:.2f} ms: ratio {per_read / mixed:.2f}); load {os.getloadavg()[0]:.1f}")
            if floor_server is not None:
                floor = _read_phase(floor_server[1], token, ids, args.seconds, n)
                floor.pop("distinct", None)  # constants: which customer does not matter
                running = ""
                if job is not None:
                    state = api.get(f"/api/jobs/{job['id']}").json()["state"]
                    running = f" (the run's job: {state})"
                p95 = _print_reads(f"  the floor: a bare FastAPI app answering constants, {n} reader(s){running}", floor)
                ours = {r: _pct(v, 0.95) for r, v in phase["lat"].items()}
                print("  ratio to the floor (p95): " + ", ".join(f"{r} {ours[r] / p95[r]:.1f}" for r in ours)
                      + f"; {sum(len(v) for v in floor['lat'].values()) / args.seconds:,.0f} reads/s; "
                      f"load {os.getloadavg()[0]:.1f}")
        if job is not None:
            runs = [job["id"], *queued]
            state = api.get(f"/api/jobs/{runs[-1]}").json()["state"]
            print(f"the {'last ' if queued else ''}run's job at the end of the loop: {state}")
            for i, job_id in enumerate(runs, 1):
                done = api.get(f"/api/jobs/{job_id}", params={"wait": 30}).json()
                while done["state"] in ("queued", "running"):
                    done = api.get(f"/api/jobs/{job_id}", params={"wait": 30}).json()
                print(f"the run{f' {i}' if queued else ''}: {done['state']} in "
                      f"{(done.get('result') or {}).get('seconds', float('nan')):.1f} s")
    finally:
        if floor_server is not None:
            floor_server[0].terminate()
            floor_server[0].wait(timeout=60)
        server.terminate()
        server.wait(timeout=900)
    return 0


def start_run(api) -> int:
    """Queue a full run on the server; its job id, once it runs."""
    job = api.post("/api/jobs", json={"kind": "run", "params": {"full": True}}).json()
    while api.get(f"/api/jobs/{job['id']}").json()["state"] == "queued":
        time.sleep(0.05)
    return job["id"]


def timeline(api, job_id: int, ids: list[str], window: float) -> None:
    """One reader reading profiles of random customers until the job ``job_id`` ends: p50, p95
    and the slowest read per ``window`` seconds, and the job's log (which says when each part of
    it ended)."""
    import random

    t0 = time.perf_counter()
    lat: list[tuple[float, float]] = []
    rng = random.Random(1)
    while True:
        a = time.perf_counter()
        api.get(f"/api/profiles/{rng.choice(ids)}", params={"events": 20})
        lat.append((a - t0, time.perf_counter() - a))
        if len(lat) % 50 == 0 and api.get(f"/api/jobs/{job_id}").json()["state"] not in ("queued", "running"):
            break
    print(f"one reader through the job ({time.perf_counter() - t0:.1f} s), per {window:g} s:")
    for start in range(0, int(lat[-1][0] // window) + 1):
        part = [s for t, s in lat if start * window <= t < (start + 1) * window]
        if part:
            print(f"  {start * window:6.0f} s  {len(part):5,} reads  p50 {_pct(part, 0.5):6.1f} ms  "
                  f"p95 {_pct(part, 0.95):6.1f} ms  slowest {max(part) * 1000:7.1f} ms")
    every = [s for _, s in lat]
    print(f"  whole job: p50 {_pct(every, 0.5):.1f} ms, p95 {_pct(every, 0.95):.1f} ms, p99 {_pct(every, 0.99):.1f} ms, "
          f"slowest {max(every) * 1000:.0f} ms; load {os.getloadavg()[0]:.1f}")
    for line in api.get(f"/api/jobs/{job_id}").json().get("log") or []:
        print(f"  log: {line[:160]}")


def start_bare(api, tessera_id: str, token: str):
    """bench/bare_server.py in a child process, answering bodies of the size of the real server's
    (one status and one profile read first); (the process, its URL)."""
    import subprocess

    import httpx

    from served import free_port

    sizes = (len(api.get("/api/status").content), len(api.get(f"/api/profiles/{tessera_id}?events=20").content))
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(ROOT / "bench" / "bare_server.py"), "--port", str(port),
                             "--status-bytes", str(sizes[0]), "--profile-bytes", str(sizes[1]), "--token", token])
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.terminate()
    raise SystemExit("the bare server did not start")


if __name__ == "__main__":
    sys.exit(main())
