"""Event collection benchmark: sustained ingestion through ``POST /v1/batch`` with durability on.

A server process (``python -m tessera.api.server``: one uvicorn worker with uvloop and
httptools, its loader a thread beside the requests) serves a new workspace. Client processes, each an
asyncio client with keep-alive connections on loopback (a minimal HTTP/1.1 client by default,
httpx with ``--httpx``), send Segment ``track`` messages (about 530 bytes of JSON each:
context with library, page, user agent and IP, a few properties) in batches of 100. Every 200
means the batch was synced to the log (fdatasync) first.

Two phases, each of ``--events`` events:

1. *as fast as possible*: each client keeps ``--concurrency`` requests in flight (closed loop),
   which gives the highest rate; latency there is mostly queueing (in flight / rate);
2. *at a fixed rate* (``--rate``, default 20,000 events/s): requests leave on a timetable
   whatever the answers (open loop), and latency counts from the time a request was due, so a
   slow server cannot hide behind a slow client.

Printed per phase: events/s, acknowledgement latency p50/p95/p99/max, CPU of the server (its
loader included) and clients. Then: the peak RSS of the server, the time until every event is in
``_tessera_events``, and the rows there (they must equal the events sent: no loss, no duplicate).

    .venv/bin/python bench/bench_collect.py                   # 2 x 200k events, 2 client processes
    .venv/bin/python bench/bench_collect.py --events 500000 --rate 30000 --gzip

The machine's cores are shared by the server, the clients and whatever else runs:
the load average is printed. The clients build their bodies before the clock starts.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import queue
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TARGET_EVENTS_PER_S = 20_000
TARGET_P99_MS = 100.0
WRITE_KEY = "wk_bench"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _bodies(seed: int, requests: int, batch: int, gzip: bool) -> list[bytes]:
    import gzip as gz
    import random

    import orjson

    rng = random.Random(seed)
    now = time.time()
    out = []
    for _ in range(requests):
        messages = []
        for _ in range(batch):
            ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now - rng.random() * 5)) + ".000Z"
            messages.append({
                "type": "track", "event": rng.choice(["Product Viewed", "Product Added", "Order Completed"]),
                "userId": f"user-{rng.randrange(1_000_000)}", "anonymousId": str(uuid.UUID(int=rng.getrandbits(128))),
                "messageId": str(uuid.uuid4()), "timestamp": ts,
                "properties": {"product_id": f"sku-{rng.randrange(5000)}", "price": round(rng.random() * 200, 2),
                               "currency": "EUR", "quantity": rng.randrange(1, 4)},
                "context": {"library": {"name": "analytics-python", "version": "2.4.0"},
                            "ip": f"10.0.{rng.randrange(256)}.{rng.randrange(256)}",
                            "userAgent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/120.0",
                            "page": {"path": "/products", "url": "https://shop.example.com/products"}},
                "integrations": {},
            })
        sent_at = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + ".000Z"
        body = orjson.dumps({"batch": messages, "sentAt": sent_at})
        out.append(gz.compress(body, 1) if gzip else body)
    return out


class _RawConnections:
    """A minimal HTTP/1.1 keep-alive client: pre-encoded requests, status and body read back.

    The machine has two cores shared by everything: httpx costs ~1-3 ms of CPU per request, which
    the server would lose; this costs a few tens of microseconds.
    """

    def __init__(self, url: str, headers: dict[str, str], limit: int):
        host, port = url.removeprefix("http://").split(":")
        self.host, self.port = host, int(port)
        self.head = "".join(f"{k}: {v}\r\n" for k, v in headers.items()).encode()
        self.idle: list = []
        self.slots = asyncio.Semaphore(limit)

    async def post(self, path: str, body: bytes) -> int:
        request = (b"POST %s HTTP/1.1\r\nHost: %s:%d\r\n%sContent-Length: %d\r\n\r\n"
                   % (path.encode(), self.host.encode(), self.port, self.head, len(body)) + body)
        return await self.send(request)

    async def get(self, path: str) -> int:
        return await self.send(b"GET %s HTTP/1.1\r\nHost: %s:%d\r\n%s\r\n"
                               % (path.encode(), self.host.encode(), self.port, self.head))

    async def send(self, request: bytes) -> int:
        async with self.slots:
            while self.idle:
                # A connection idle for long may have been closed by the server (keep-alive timeout 5 s).
                reader, writer, since = self.idle.pop()
                if time.monotonic() - since < 4:
                    try:
                        return await self._exchange(reader, writer, request)
                    except (ConnectionError, IndexError, asyncio.IncompleteReadError):
                        writer.close()  # closed by the server before it read the request: try another
                else:
                    writer.close()
            reader, writer = await asyncio.open_connection(self.host, self.port)
            return await self._exchange(reader, writer, request)

    async def _exchange(self, reader, writer, request: bytes) -> int:
        writer.write(request)
        status = int((await reader.readline()).split()[1])
        length = 0
        while (line := await reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        await reader.readexactly(length)
        self.idle.append((reader, writer, time.monotonic()))
        return status

    async def close(self) -> None:
        for _, writer, _ in self.idle:
            writer.close()


def _client(url: str, seed: int, requests: int, batch: int, concurrency: int, rate: float, gzip: bool,
            use_httpx: bool, ready, go, results) -> None:
    """One client process. ``rate`` > 0: requests per second on a timetable; else closed loop."""
    import base64

    import httpx

    bodies = _bodies(seed, requests, batch, gzip)
    headers = {"Content-Type": "application/json"}
    if gzip:
        headers["Content-Encoding"] = "gzip"

    async def run():
        latencies: list[float] = []
        failures = 0
        if use_httpx:
            limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
            http = httpx.AsyncClient(base_url=url, auth=(WRITE_KEY, ""), headers=headers, limits=limits, timeout=60)

            async def post(body: bytes) -> int:
                return (await http.post("/v1/batch", content=body)).status_code
        else:
            auth = "Basic " + base64.b64encode(f"{WRITE_KEY}:".encode()).decode()
            raw = _RawConnections(url, {**headers, "Authorization": auth}, concurrency)

            async def post(body: bytes) -> int:
                return await raw.post("/v1/batch", body)

        async def send(body: bytes, due: float) -> None:
            nonlocal failures
            status = await post(body)
            latencies.append(time.perf_counter() - due)
            if status != 200:
                failures += 1

        ready.set()
        go.wait()
        start, cpu = time.time(), time.process_time()
        if rate > 0:
            t0 = time.perf_counter()
            tasks = []
            for i, body in enumerate(bodies):
                due = t0 + i / rate
                delay = due - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.create_task(send(body, due)))
            await asyncio.gather(*tasks)
        else:
            queue = list(reversed(bodies))

            async def worker() -> None:
                while queue:
                    await send(queue.pop(), time.perf_counter())

            await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.time(), time.process_time() - cpu
        await (http.aclose() if use_httpx else raw.close())
        return latencies, failures, start, *elapsed

    results.put(asyncio.run(run()))


def _cpu(proc) -> float:
    if proc is None:
        return 0.0
    times = proc.cpu_times()
    return times.user + times.system


def _phase(url: str, args, rate: float, seed: int, server, loader) -> dict:
    """Run one phase with ``args.clients`` client processes; ``rate`` 0 means as fast as possible."""
    ctx = mp.get_context("spawn")
    requests = args.events // args.batch
    go, results = ctx.Event(), ctx.Queue()
    readies, clients = [], []
    for i in range(args.clients):
        share = requests // args.clients + (1 if i < requests % args.clients else 0)
        ready = ctx.Event()
        per_client = rate / args.batch / args.clients
        concurrency = args.concurrency if rate == 0 else 256
        p = ctx.Process(target=_client, args=(url, seed + i, share, args.batch, concurrency, per_client,
                                              args.gzip, args.httpx, ready, go, results))
        p.start()
        readies.append(ready)
        clients.append(p)
    for ready in readies:
        ready.wait()
    cpu0 = (_cpu(server), _cpu(loader))
    go.set()
    outcomes = []
    while len(outcomes) < len(clients):
        try:
            outcomes.append(results.get(timeout=1))
        except queue.Empty:
            if any(p.exitcode not in (None, 0) for p in clients):
                raise SystemExit("a client process failed (its traceback is above)") from None
    for p in clients:
        p.join()
    latencies = sorted(x for o in outcomes for x in o[0])
    seconds = max(o[3] for o in outcomes) - min(o[2] for o in outcomes)
    return {
        "events": len(latencies) * args.batch, "requests": len(latencies), "seconds": seconds,
        "failures": sum(o[1] for o in outcomes), "latencies": latencies,
        "cpu": {"server": _cpu(server) - cpu0[0], "clients": sum(o[4] for o in outcomes)},
    }


def _report(title: str, phase: dict) -> bool:
    lat = phase["latencies"]

    def pct(q: float) -> float:
        return lat[min(len(lat) - 1, int(q * len(lat)))] * 1000

    rate = phase["events"] / phase["seconds"]
    cpu = ", ".join(f"{k} {v:.1f} s ({v / phase['seconds']:.0%} of a core)" for k, v in phase["cpu"].items())
    print(title)
    print(f"  throughput       {rate:,.0f} events/s ({phase['events']:,} events in {phase['requests']:,} requests, "
          f"{phase['seconds']:.2f} s); non-200 answers: {phase['failures']}")
    print(f"  ack latency      p50 {pct(0.50):.1f} ms   p95 {pct(0.95):.1f} ms   p99 {pct(0.99):.1f} ms   "
          f"max {lat[-1] * 1000:.1f} ms")
    print(f"  CPU              {cpu}")
    return rate >= TARGET_EVENTS_PER_S * 0.98 and pct(0.99) <= TARGET_P99_MS and phase["failures"] == 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000, help="events per phase")
    parser.add_argument("--batch", type=int, default=100, help="events per request")
    parser.add_argument("--clients", type=int, default=2, help="client processes")
    parser.add_argument("--concurrency", type=int, default=8, help="requests in flight per client (phase 1)")
    parser.add_argument("--rate", type=float, default=TARGET_EVENTS_PER_S, help="events/s of phase 2 (0: skip it)")
    parser.add_argument("--gzip", action="store_true", help="compress the bodies (RudderStack's default)")
    parser.add_argument("--httpx", action="store_true",
                        help="send with httpx instead of the minimal keep-alive client (more client CPU)")
    parser.add_argument("--loader-interval", type=float, default=1.0,
                        help="seconds between two loads into the warehouse (the server's setting)")
    parser.add_argument("--keep", action="store_true", help="keep the workspace")
    args = parser.parse_args()

    import httpx
    import psutil

    from tessera.workspace import Workspace

    base = Path(tempfile.mkdtemp(prefix="tessera-bench-collect-"))
    ws_dir = base / "ws"
    ws = Workspace.init(ws_dir)
    ws.apply({"connections": [{"name": "web", "type": "http", "write_key": WRITE_KEY}]})
    ws.close()
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([sys.executable, "-m", "tessera.api.server", "--workspace", str(ws_dir),
                               "--port", str(port), "--log-level", "warning",
                               "--loader-interval", str(args.loader_interval)], cwd=ROOT)
    phases = {}
    try:
        for _ in range(600):
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        else:
            raise SystemExit("the server did not start")
        server_proc = psutil.Process(server.pid)
        loader_proc = None  # the loader is a thread of the server: its CPU and memory count there

        peak = {"server": 0, "loader": 0}
        sampling = True

        def sample() -> None:
            while sampling:
                for name, proc in (("server", server_proc),):
                    try:
                        peak[name] = max(peak[name], proc.memory_info().rss if proc else 0)
                    except psutil.Error:
                        pass
                time.sleep(0.05)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        phases["max"] = _phase(url, args, 0, 1000, server_proc, loader_proc)
        if args.rate > 0:
            phases["rate"] = _phase(url, args, args.rate, 2000, server_proc, loader_proc)
        end = time.time()
        while time.time() < end + 600:
            status = httpx.get(f"{url}/health", timeout=5).json()["collect"]
            if status["loaded_offset"] >= status["log_end"]:
                break
            time.sleep(0.05)
        loaded_after = time.time() - end
        sampling = False
        sampler.join()
    finally:
        server.terminate()
        server.wait(timeout=120)

    with Workspace.open(ws_dir) as w, w.writing():
        rows = w.adapter.count(w.adapter.table("_tessera_events"))
        w.close()
    sent = sum(p["events"] for p in phases.values())
    load1 = os.getloadavg()[0]
    client = "httpx" if args.httpx else "minimal HTTP/1.1"
    ok = _report(f"1. as fast as possible ({args.clients} {client} client processes x {args.concurrency} requests "
                 f"in flight{', gzip' if args.gzip else ''})", phases["max"])
    if "rate" in phases:
        ok = _report(f"2. at {args.rate:,.0f} events/s (open loop, latency from when each request was due)",
                     phases["rate"]) and ok
    print(f"peak RSS           server {peak['server'] / 2**20:.0f} MB (its event loader included)")
    print(f"loaded             {rows:,} rows in _tessera_events for {sent:,} events sent; all loaded "
          f"{loaded_after:.1f} s after the last answer")
    print(f"machine            {os.cpu_count()} cores, load average {load1:.1f} at the end")
    print(f"target             >= {TARGET_EVENTS_PER_S:,} events/s with p99 <= {TARGET_P99_MS:.0f} ms: "
          + ("met" if ok and rows == sent else "NOT met"))
    if args.keep:
        print(f"workspace kept at {ws_dir}")
    else:
        shutil.rmtree(base, ignore_errors=True)
    return 0 if rows == sent and all(p["failures"] == 0 for p in phases.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
