"""REST API benchmark: reads beside a run, on a server that owns its workspace.

A workspace of N contacts (three sources, 20% duplicates, three identity keys; the identity
benchmark's generator) is run once, then served by ``tessera serve``. Three phases:

1. *idle*: 20 concurrent readers ask ``/api/profiles/{id}`` (random customers) and
   ``/api/status`` for ``--idle-seconds``;
2. *during a run*: a full run is queued (a job of the writer queue) and the same readers loop for
   ``--busy-seconds`` while it builds the next publication; at the same time a client process sends
   events at ``--rate`` events/s (bench_collect's open-loop client) and a probe measures how long an
   acknowledged event takes to be readable in the warehouse (``/api/events?message_id=``);
3. the run's own time, and the same run in-process without a server (the bare baseline) for the ratio.

Printed: p50/p95/p99 latency and errors per route and phase, events/s and acknowledgement p99
during the run, acknowledgement-to-warehouse delay, run time beside the baseline, peak RSS of the
server, and the load average (the machine is shared: compare the ratios).

    .venv/bin/python bench/bench_api.py --records 1000000
    .venv/bin/python bench/bench_api.py --records 20000 --idle-seconds 5 --busy-seconds 10 --rate 2000
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import random
import shutil
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_collect import WRITE_KEY  # noqa: E402 - the key its event clients send
from served import start_server  # noqa: E402

TARGETS = {"busy_p95_ms": 50.0, "idle_profile_p95_ms": 20.0, "events_per_s": 20_000, "ack_p99_ms": 100.0,
           "to_warehouse_s": 5.0}


def _readers(url: str, token: str, ids: list[str], seconds: float, concurrency: int, out) -> None:
    """A client process: ``concurrency`` tasks alternate status and profile reads for ``seconds``.

    It speaks HTTP/1.1 over kept-alive sockets (bench_collect's minimal client): httpx costs a few
    milliseconds of CPU per request, which on two shared cores the server would lose."""
    from bench_collect import _RawConnections

    async def main() -> dict:
        lat: dict[str, list[float]] = {"status": [], "profile": []}
        errors: dict[str, int] = {"status": 0, "profile": 0}
        asked: set[str] = set()  # the customers read (a server keeps answers: the repeats are cheaper)
        deadline = time.perf_counter() + seconds
        client = _RawConnections(url, {"Authorization": f"Bearer {token}"}, concurrency)

        async def task(n: int) -> None:
            rng = random.Random(n)
            i = 0
            while time.perf_counter() < deadline:
                route = "status" if i % 4 == 0 else "profile"
                if route == "status":
                    path = "/api/status"
                else:
                    tid = rng.choice(ids)
                    asked.add(tid)
                    path = f"/api/profiles/{tid}?events=20"
                t0 = time.perf_counter()
                try:
                    ok = await client.get(path) == 200
                except (OSError, ValueError, IndexError, asyncio.IncompleteReadError):
                    ok = False
                lat[route].append(time.perf_counter() - t0)
                errors[route] += 0 if ok else 1
                i += 1

        await asyncio.gather(*(task(n) for n in range(concurrency)))
        await client.close()
        return {"lat": lat, "errors": errors, "distinct": len(asked)}

    out.put(asyncio.run(main()))


def _read_phase(url: str, token: str, ids: list[str], seconds: float, concurrency: int) -> dict:
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    p = ctx.Process(target=_readers, args=(url, token, ids, seconds, concurrency, out))
    p.start()
    result = out.get()
    p.join()
    return result


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] * 1000


def _print_reads(title: str, phase: dict) -> dict:
    print(title)
    out = {}
    for route, lat in phase["lat"].items():
        p50, p95, p99 = _pct(lat, 0.5), _pct(lat, 0.95), _pct(lat, 0.99)
        out[route] = p95
        print(f"  {route:<8} {len(lat):>7,} requests  p50 {p50:6.1f} ms  p95 {p95:6.1f} ms  p99 {p99:6.1f} ms"
              f"  errors {phase['errors'][route]}")
    if phase.get("distinct") and phase["lat"].get("profile"):
        # The server keeps a profile's answer until something it shows changes: a repeat is cheaper.
        print(f"  {phase['distinct']:,} customers in {len(phase['lat']['profile']):,} profile reads "
              f"({1 - phase['distinct'] / len(phase['lat']['profile']):.0%} repeats in this loop)")
    return out


def _probe_to_warehouse(url: str, token: str, stop: threading.Event, delays: list[float]) -> None:
    """Send one identified event every second; note when it becomes readable through the API."""
    import httpx

    with httpx.Client(base_url=url, timeout=30, trust_env=False) as client:
        while not stop.is_set():
            message_id = f"probe-{uuid.uuid4()}"
            body = {"type": "track", "userId": "probe", "event": "Probe", "messageId": message_id}
            r = client.post("/v1/track", json=body, auth=(WRITE_KEY, ""))
            acked = time.perf_counter()
            if r.status_code != 200:
                continue
            while not stop.is_set():
                rows = client.get("/api/events", params={"message_id": message_id, "limit": 1},
                                  headers={"Authorization": f"Bearer {token}"}).json()
                if rows:
                    delays.append(time.perf_counter() - acked)
                    break
                time.sleep(0.05)
            stop.wait(1.0)


def _baseline_run(data_dir: Path, queue) -> None:
    """The same first run, in-process, without a server: the bare baseline of the run's time."""
    from tessera.workspace import Workspace

    ws_dir = Path(tempfile.mkdtemp(prefix="tessera-bench-api-base-")) / "ws"
    with Workspace.init(ws_dir) as ws:
        ws.apply(data_dir / "workspace.yaml")
        t0 = time.perf_counter()
        ws.run()
        first = time.perf_counter() - t0
        t0 = time.perf_counter()
        ws.run(full=True)  # the same work as the server's run below (nothing new: a run would stop early)
        again = time.perf_counter() - t0
    shutil.rmtree(ws_dir.parent, ignore_errors=True)
    queue.put({"first": first, "again": again})


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--idle-seconds", type=float, default=30)
    ap.add_argument("--busy-seconds", type=float, default=120)
    ap.add_argument("--readers", type=int, default=20, help="concurrent readers")
    ap.add_argument("--rate", type=float, default=20_000, help="events/s sent during the run (0: none)")
    ap.add_argument("--data", type=Path, default=ROOT / ".bench")
    args = ap.parse_args()

    import httpx
    import psutil
    import yaml

    from bench_collect import _phase
    from tessera.demo.identity_bench import generate_identity_bench
    from tessera.workspace import Workspace

    data_dir = args.data / f"identity_{args.records}_1"
    if not (data_dir / "workspace.yaml").exists():
        generate_identity_bench(data_dir, n_records=args.records, seed=1)
    config = yaml.safe_load((data_dir / "workspace.yaml").read_text())
    config["connections"].append({"name": "web", "type": "http", "write_key": WRITE_KEY})
    for conn in config["connections"]:
        if conn.get("type") == "local" and not os.path.isabs(conn["path"]):
            conn["path"] = str((data_dir / conn["path"]).resolve())

    base = Path(tempfile.mkdtemp(prefix="tessera-bench-api-"))
    ws_dir = base / "ws"
    with Workspace.init(ws_dir) as ws:
        ws.apply(config)
        t0 = time.perf_counter()
        ws.run()
        print(f"{args.records:,} records: first run (no server) {time.perf_counter() - t0:.1f} s")
        contacts = ws.table("contacts")
        ids = [r["tessera_id"] for r in ws.adapter.to_arrow(contacts.select("tessera_id").limit(5000)).to_pylist()]

    server, url, token = start_server(ws_dir)
    peak = [0]
    sampling = threading.Event()
    try:
        proc = psutil.Process(server.pid)

        def sample() -> None:
            while not sampling.is_set():
                try:
                    peak[0] = max(peak[0], proc.memory_info().rss)
                except psutil.Error:
                    pass
                time.sleep(0.05)

        threading.Thread(target=sample, daemon=True).start()
        api = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60, trust_env=False)

        idle = _print_reads(f"1. idle: {args.readers} concurrent readers for {args.idle_seconds:.0f} s",
                            _read_phase(url, token, ids, args.idle_seconds, args.readers))

        # A full run: with nothing new since the first run, an incremental run ends at once.
        job = api.post("/api/jobs", json={"kind": "run", "params": {"full": True}}).json()
        while api.get(f"/api/jobs/{job['id']}").json()["state"] == "queued":
            time.sleep(0.05)
        run_started = time.perf_counter()
        stop = threading.Event()
        delays: list[float] = []
        prober = threading.Thread(target=_probe_to_warehouse, args=(url, token, stop, delays), daemon=True)
        prober.start()
        events_out: dict = {}
        sender = None
        if args.rate > 0:
            ns = argparse.Namespace(events=int(args.rate * min(args.busy_seconds, 60)), batch=100, clients=2,
                                    concurrency=8, gzip=False, httpx=False)
            sender = threading.Thread(target=lambda: events_out.update(_phase(url, ns, args.rate, 3000, proc, None)))
            sender.start()
        busy_phase = _read_phase(url, token, ids, args.busy_seconds, args.readers)
        state = api.get(f"/api/jobs/{job['id']}").json()["state"]
        busy = _print_reads(f"2. during a run (job state at the end of the loop: {state}): {args.readers} "
                            f"concurrent readers for {args.busy_seconds:.0f} s", busy_phase)
        if sender is not None:
            sender.join()
        stop.set()
        prober.join(timeout=60)
        done = api.get(f"/api/jobs/{job['id']}", params={"wait": 30}).json()
        while done["state"] in ("queued", "running"):
            done = api.get(f"/api/jobs/{job['id']}", params={"wait": 30}).json()
        run_seconds = (done.get("result") or {}).get("seconds") or (time.perf_counter() - run_started)
        if events_out:
            lat = sorted(events_out["latencies"])
            rate = events_out["events"] / events_out["seconds"]
            ack99 = _pct(lat, 0.99)
            print(f"  events   {rate:,.0f} events/s sent beside the run, ack p99 {ack99:.1f} ms, "
                  f"non-200 {events_out['failures']}")
        else:
            rate, ack99 = float("nan"), float("nan")
        worst = max(delays) if delays else float("nan")
        print(f"  to warehouse: {len(delays)} probes, median {_pct(delays, 0.5) / 1000:.2f} s, max {worst:.2f} s "
              "from acknowledgement to readable")
    finally:
        sampling.set()
        server.terminate()
        server.wait(timeout=300)

    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    p = ctx.Process(target=_baseline_run, args=(data_dir, queue))
    p.start()
    baseline = queue.get()
    p.join()
    shutil.rmtree(base, ignore_errors=True)

    print(f"3. the run through the server {run_seconds:.1f} s (readers and events beside it); "
          f"the same re-run in-process without a server {baseline['again']:.1f} s "
          f"(ratio {run_seconds / baseline['again']:.2f})")
    print(f"peak RSS of the server {peak[0] / 2**20:,.0f} MB; machine {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.1f}")
    errors = sum(busy_phase["errors"].values())
    checks = {
        f"reads during the run p95 <= {TARGETS['busy_p95_ms']:.0f} ms, no error":
            max(busy.values()) <= TARGETS["busy_p95_ms"] and errors == 0,
        f"idle profile p95 <= {TARGETS['idle_profile_p95_ms']:.0f} ms": idle["profile"] <= TARGETS["idle_profile_p95_ms"],
        f"events >= {TARGETS['events_per_s']:,}/s, ack p99 <= {TARGETS['ack_p99_ms']:.0f} ms during the run":
            rate >= TARGETS["events_per_s"] * 0.98 and ack99 <= TARGETS["ack_p99_ms"],
        f"acknowledged events in the warehouse <= {TARGETS['to_warehouse_s']:.0f} s":
            bool(delays) and worst <= TARGETS["to_warehouse_s"],
    }
    for what, ok in checks.items():
        print(f"target {what}: {'met' if ok else 'NOT met'}")
    return 0 if errors == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
