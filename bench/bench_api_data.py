"""REST API data benchmark: read routes, filtered pages of rows, customer lookups.

A workspace of N contact records (three sources, 20% duplicates, identity keys email, phone and
customer id; the identity benchmark's generator) is run once, then served by ``tessera serve``.
One client asks, one request at a time, and the latency of each request is measured:

- read routes: ``/api/status``, ``/api/config``, ``/api/datasets``, ``/api/datasets/contacts``,
  ``/api/sources``, ``/api/connections``;
- a page of 50 rows of ``contacts`` with a filter (a structured condition and an allow-listed SQL
  condition; about one contact in nine) and a sort, then the next pages through their cursors
  (keyset paging); the first 20 rows without a filter, with their total (the web's dataset page);
- a customer found by email and by phone, typed as a person types them (upper case, spaces, the
  national phone format), normalized by the server as at import.

The bare baseline is the same page and the same lookup asked of the engine in the benchmark's own
process (Ibis on DuckDB, no server, values already normalized), before the server starts and
again after it stops (the load of a shared machine moves): the ratio is what the API adds.
``--keep`` keeps the workspace run (the generated files are kept in ``--data`` anyway).

Printed: p50/p95/p99 per route against the targets at 1M records (read routes 50 ms, a filtered
page 200 ms, a lookup 50 ms), the baseline and ratios, and the server's peak RSS.

    .venv/bin/python bench/bench_api_data.py                       # 100,000 records, about a minute
    .venv/bin/python bench/bench_api_data.py --records 1000000
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from served import start_server  # noqa: E402

TARGETS_MS = {"read": 50.0, "page": 200.0, "lookup": 50.0}
READ_ROUTES = ["/api/status", "/api/config", "/api/datasets", "/api/datasets/contacts", "/api/sources",
               "/api/connections"]


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 if ordered else float("nan")


def _line(name: str, lat: list[float], target: float | None = None, base: list[float] | None = None) -> dict:
    p50, p95, p99 = _pct(lat, 0.5), _pct(lat, 0.95), _pct(lat, 0.99)
    extra = f"  target p95 {target:.0f} ms at 1M" if target else ""
    if base:
        extra += f"  baseline p95 {_pct(base, 0.95):.1f} ms (x{p95 / max(_pct(base, 0.95), 1e-6):.1f})"
    print(f"  {name:<44} n={len(lat):<4} p50 {p50:7.1f}  p95 {p95:7.1f}  p99 {p99:7.1f} ms{extra}")
    return {"p50": p50, "p95": p95, "p99": p99}


def _national(phone: str) -> str:
    """+33612345678 as a French person writes it: 06 12 34 56 78."""
    digits = "0" + phone[3:]
    return " ".join(digits[i:i + 2] for i in range(0, len(digits), 2))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--requests", type=int, default=200, help="requests per route")
    ap.add_argument("--data", type=Path, default=ROOT / ".bench")
    ap.add_argument("--keep", action="store_true", help="keep the workspace run (its path is printed)")
    args = ap.parse_args()

    import httpx
    import ibis
    import psutil
    import yaml

    from tessera.demo.identity_bench import generate_identity_bench
    from tessera.workspace import Workspace

    data_dir = args.data / f"identity_{args.records}_1"
    if not (data_dir / "workspace.yaml").exists():
        generate_identity_bench(data_dir, n_records=args.records, seed=1)
    config = yaml.safe_load((data_dir / "workspace.yaml").read_text())
    for conn in config["connections"]:
        if conn.get("type") == "local" and not os.path.isabs(conn["path"]):
            conn["path"] = str((data_dir / conn["path"]).resolve())

    base = Path(tempfile.mkdtemp(prefix="tessera-bench-api-data-"))
    if not args.keep:
        atexit.register(shutil.rmtree, base, ignore_errors=True)
    ws_dir = base / "ws"
    rng = random.Random(7)
    page_filter = [{"column": "last_name", "op": "starts_with", "value": "M"}]
    page_sql = "length(first_name) >= 4"
    baseline: dict[str, list[float]] = {"page": [], "lookup": []}
    with Workspace.init(ws_dir) as ws:
        ws.apply(config)
        t0 = time.perf_counter()
        ws.run()
        print(f"{args.records:,} records: run {time.perf_counter() - t0:.1f} s (before the server starts)")
        contacts = ws.table("contacts")
        rows = ws.adapter.to_arrow(contacts.filter(contacts.email.notnull() & contacts.phone.notnull())
                                   .select("tessera_id", "email", "phone").limit(5000)).to_pylist()
        people = [r for r in rows if r["phone"].startswith("+33")]
        n_contacts = ws.adapter.count(contacts)

    def bare() -> None:
        """The bare baseline: the same page and lookup asked of the engine directly (measured
        before the server starts and again after it stops: the machine's load moves meanwhile)."""
        with Workspace.open(ws_dir) as ws:
            contacts, records = ws.table("contacts"), ws.table("contacts__records")
            for _ in range(min(args.requests, 50)):
                t0 = time.perf_counter()
                page = contacts.filter(contacts.last_name.startswith("M") & (contacts.first_name.length() >= 4))
                ws.adapter.to_arrow(page.order_by([ibis.desc("updated_at"), "tessera_id"]).limit(51))
                baseline["page"].append(time.perf_counter() - t0)
                who = rng.choice(people)
                t0 = time.perf_counter()
                ids = records.filter(records.email == who["email"]).select("tessera_id").distinct()
                ws.adapter.to_arrow(contacts.semi_join(ids, "tessera_id").limit(20))
                baseline["lookup"].append(time.perf_counter() - t0)

    bare()

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

        def timed(path: str, params: dict | None = None) -> tuple[float, dict]:
            t0 = time.perf_counter()
            answer = api.get(path, params=params)
            took = time.perf_counter() - t0
            if answer.status_code != 200:
                raise SystemExit(f"{path} {params}: {answer.status_code} {answer.text[:300]}")
            return took, answer.json()

        for path in READ_ROUTES:  # warm-up
            timed(path)
        print(f"\n{n_contacts:,} unified contacts; {args.requests} sequential requests per route")
        print("read routes:")
        reads_all: list[float] = []
        for path in READ_ROUTES:
            lat = [timed(path)[0] for _ in range(args.requests)]
            reads_all += lat
            _line(path, lat)
        read = _line("all read routes", reads_all, TARGETS_MS["read"])

        print("rows: 50 per page, filtered (a condition and a SQL condition), sorted by -updated_at "
              "(printed at the end, against the bare baseline measured again once the server stopped)")
        params = {"filter": json.dumps(page_filter), "sql": page_sql, "sort": "-updated_at", "limit": 50}
        first, later = [], []
        cursor_pages = 0
        while len(first) < args.requests:
            took, page = timed("/api/datasets/contacts/rows", params)
            first.append(took)
            cursor = page["next_cursor"]
            for _ in range(4):  # the next pages through their cursors
                if not cursor:
                    break
                took, page = timed("/api/datasets/contacts/rows", {**params, "cursor": cursor})
                later.append(took)
                cursor_pages += 1
                cursor = page["next_cursor"]
        pages_at = len(baseline["page"])
        print("rows: the dataset's first 20 rows by tessera_id with the total, as the web's dataset page reads them:")
        plain_page = [timed("/api/datasets/contacts/rows", {"limit": 20, "total": "true"})[0]
                      for _ in range(args.requests)]
        _line("first page, no filter", plain_page, TARGETS_MS["page"])

        print("customer lookups, values typed as people type them:")
        by_email, by_phone, misses = [], [], 0
        for _ in range(args.requests):
            who = rng.choice(people)
            took, found = timed("/api/customers", {"email": f" {who['email'].upper()} "})
            by_email.append(took)
            misses += who["tessera_id"] not in {c["tessera_id"] for c in found["data"]}
            took, found = timed("/api/customers", {"phone": _national(who["phone"])})
            by_phone.append(took)
            misses += who["tessera_id"] not in {c["tessera_id"] for c in found["data"]}
        load = os.getloadavg()[0]
    finally:
        sampling.set()
        server.terminate()
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
    bare()  # again, the server stopped
    print(f"\nthe bare baseline, before the server started and after it stopped (p95 {_pct(baseline['page'][:pages_at], 0.95):.1f}"
          f" and {_pct(baseline['page'][pages_at:], 0.95):.1f} ms), against the API:")
    page_stats = _line("filtered first page", first, TARGETS_MS["page"], baseline["page"])
    _line(f"next pages by cursor ({cursor_pages})", later, TARGETS_MS["page"], baseline["page"])
    email_stats = _line("by email", by_email, TARGETS_MS["lookup"], baseline["lookup"])
    phone_stats = _line("by phone", by_phone, TARGETS_MS["lookup"], baseline["lookup"])
    print(f"  customers not found by their own email or phone: {misses}")
    print(f"\nserver peak RSS {peak[0] / 2**20:,.0f} MiB; load average {load:.1f} "
          f"on {os.cpu_count()} cores (a shared machine: compare the ratios)")
    print(json.dumps({"records": args.records, "contacts": n_contacts, "read_p95_ms": round(read["p95"], 1),
                      "page_p95_ms": round(page_stats["p95"], 1), "email_p95_ms": round(email_stats["p95"], 1),
                      "phone_p95_ms": round(phone_stats["p95"], 1), "not_found": misses,
                      "unfiltered_page_p95_ms": round(_pct(plain_page, 0.95), 1),
                      "peak_rss_mib": round(peak[0] / 2**20)}))
    if args.keep:
        print(f"the workspace is kept: {ws_dir}")
    return 1 if misses else 0


if __name__ == "__main__":
    raise SystemExit(main())
