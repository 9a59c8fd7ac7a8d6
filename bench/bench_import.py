"""Full import + unify benchmark: a CRM export of N contacts and an e-shop export of M orders, as CSV.

The data (``contacts.csv``: ';' separated, BOM, French headers, 20% duplicate persons, day-first
dates; ``orders.csv``: ',' separated, e-mails of the contacts with case/space variations) is
generated once under ``.bench/`` and reused. A child process creates a new workspace, applies the
benchmark's ``workspace.yaml`` and runs the pipeline once; this prints the seconds of each step of
the run (import, stage, unify, publish), the whole run, rows/s, the peak RSS of the child, the row
counts, the unified contacts and the share of orders linked to a contact.

    .venv/bin/python bench/bench_import.py                       # 1M contacts, 5M orders
    .venv/bin/python bench/bench_import.py --contacts 100000 --orders 500000
    .venv/bin/python bench/bench_import.py --profile /tmp/run.prof   # cProfile of the run
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import resource
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TARGET_SECONDS = 60.0


def _pipeline(data_dir: str, ws_dir: str, profile: str | None, queue) -> None:
    try:
        from tessera.workspace import Workspace

        t0 = time.perf_counter()
        ws = Workspace.init(ws_dir)
        ws.apply(Path(data_dir) / "workspace.yaml")
        setup = time.perf_counter() - t0
        t0 = time.perf_counter()
        if profile:
            import cProfile

            prof = cProfile.Profile()
            result = prof.runcall(ws.run)
            prof.dump_stats(profile)
        else:
            result = ws.run()
        wall = time.perf_counter() - t0
        orders = ws.table("orders")
        linked = int(ws.adapter.execute(orders.tessera_contacts_id.notnull().sum()) or 0)
        n_orders = ws.adapter.count(orders)
        ws.close()
        queue.put({"steps": result.steps, "wall": wall, "setup": setup, "sources": result.sources,
                   "datasets": result.datasets, "linked": linked, "orders": n_orders})
    except BaseException:
        queue.put({"error": traceback.format_exc()})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--contacts", type=int, default=1_000_000)
    ap.add_argument("--orders", type=int, default=5_000_000)
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--data", type=Path, default=ROOT / ".bench")
    ap.add_argument("--profile", type=Path, default=None, help="write the run's cProfile statistics here")
    args = ap.parse_args()

    from tessera.demo.import_bench import CONTACTS_FILE, ORDERS_FILE, generate_import_bench

    data_dir = args.data / f"import_{args.contacts}_{args.orders}_{args.seed}"
    if not (data_dir / "workspace.yaml").exists():
        info = generate_import_bench(data_dir, n_contacts=args.contacts, n_orders=args.orders, seed=args.seed)
        print(f"generated {args.contacts:,} contacts + {args.orders:,} orders in {info['seconds']:.1f} s "
              f"({data_dir})")
    size_mb = sum((data_dir / f).stat().st_size for f in (CONTACTS_FILE, ORDERS_FILE)) / 2**20
    ws_dir = Path(tempfile.mkdtemp(prefix="tessera-bench-")) / "ws"
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_pipeline, args=(str(data_dir), str(ws_dir),
                                               str(args.profile) if args.profile else None, queue))
    load_before = os.getloadavg()
    t_start = time.perf_counter()
    proc.start()
    out = queue.get()
    proc.join()
    t_child = time.perf_counter() - t_start
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    peak_mb = usage.ru_maxrss / 1024
    shutil.rmtree(ws_dir.parent, ignore_errors=True)
    if "error" in out:
        print(out["error"], file=sys.stderr)
        print(f"the run failed after {t_child:.1f} s (peak RSS {peak_mb:,.0f} MB)", file=sys.stderr)
        sys.exit(1)

    steps = {s["step"]: s for s in out["steps"]}

    def sec(name: str) -> float:
        return steps.get(name, {}).get("seconds", 0.0)

    imp, stg = steps.get("import", {}), steps.get("stage", {})
    contacts = out["datasets"]["contacts"]
    rows_read = imp.get("rows_read", 0)
    wall = out["wall"]
    print(f"input: {args.contacts:,} contact rows + {args.orders:,} order rows, {size_mb:,.0f} MB of CSV")
    print(f"import (parse + archive): {sec('import'):.2f} s")
    print(f"stage (normalize, type, check): {sec('stage'):.2f} s")
    print(f"unify (map, relations, identity, merge): {sec('unify'):.2f} s")
    print(f"publish: {sec('publish'):.2f} s")
    print(f"whole run: {wall:.2f} s  ({rows_read / wall:,.0f} rows/s)   "
          f"[workspace init + apply: {out['setup']:.2f} s; child process in all: {t_child:.2f} s]")
    print(f"target full import + unify <= {TARGET_SECONDS:.0f} s: "
          f"{'met' if wall <= TARGET_SECONDS else 'not met'} ({wall:.1f} s)")
    print(f"rows read: {rows_read:,}  rejected on read: {imp.get('rows_rejected', 0):,}  "
          f"staged: {stg.get('rows_staged', 0):,}  rejected (all): {stg.get('rows_rejected', 0):,}")
    print(f"contacts: {contacts['records']:,} records -> {contacts['unified']:,} unified "
          f"({contacts['duplicates_merged']:,} duplicates merged)")
    share = out["linked"] / out["orders"] if out["orders"] else 0.0
    print(f"orders linked to a contact: {out['linked']:,} of {out['orders']:,} ({share:.2%})")
    print(f"peak RSS of the run's process: {peak_mb:,.0f} MB")
    print(f"CPU of the run's process: user {usage.ru_utime:.1f} s, system {usage.ru_stime:.1f} s "
          f"({os.cpu_count()} CPUs); load average before the run: "
          f"{load_before[0]:.2f} / {load_before[1]:.2f} / {load_before[2]:.2f} (1 / 5 / 15 min)")
    if args.profile:
        print(f"cProfile statistics: {args.profile}")


if __name__ == "__main__":
    main()
