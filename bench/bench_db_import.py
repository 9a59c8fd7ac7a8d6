"""Database import benchmark: a PostgreSQL ``customers`` table of N rows into a workspace.

A throwaway PostgreSQL server (``tests/servers.py``) gets a table of N customers (10 columns:
bigint, text, numeric, boolean, date, timestamptz, timestamp; an index on ``updated_at``).
Each phase runs in its own child process against the same workspace, and prints its seconds,
rows/s and the peak RSS of that process (psutil, sampled every 10 ms):

1. full import (``import_strategy: full``): everything read into a new raw batch;
2. full import again, data unchanged: read, digest compared, nothing recorded;
3. incremental import, first time (``import_strategy: incremental``, cursor ``updated_at``,
   lookback ``10m``): everything read, the key table built;
4. 1% of the rows updated (``updated_at`` bumped), then the incremental import: only the rows
   at or after the last cursor minus the look-back window are read (PostgreSQL's index), the
   unchanged ones re-read inside the window are dropped, the changed ones recorded.

    .venv/bin/python bench/bench_db_import.py                      # 1,000,000 rows, DuckDB warehouse
    .venv/bin/python bench/bench_db_import.py --rows 100000        # to compare peak RSS
    .venv/bin/python bench/bench_db_import.py --warehouse postgres # a PostgreSQL warehouse (streamed path)
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

from peak_rss import PeakRSS, run_in_child  # bench/ is on sys.path when run as a script

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # the throwaway PostgreSQL server of the tests

TARGET_FULL = 10.0  # seconds for a full import of 1,000,000 rows (DuckDB warehouse)
TARGET_INCREMENTAL = 3.0  # seconds for an incremental import finding 1% changed rows

TABLE = """
CREATE TABLE customers (
    id bigint PRIMARY KEY, email text, first_name text, last_name text, city text, score numeric(10,2),
    vip boolean, birth date, created_at timestamptz, updated_at timestamp NOT NULL
);
INSERT INTO customers
SELECT g, 'user' || g || '@example.com', 'First' || (g % 1000), 'Last' || (g % 5000),
       (ARRAY['Paris', 'Lyon', 'Zürich', 'Köln', 'São Paulo'])[1 + g % 5], (g % 100000) / 100.0, g % 3 = 0,
       date '1950-01-01' + (g % 20000), timestamptz '2024-01-01 00:00:00+00' + g * interval '1 second',
       timestamp '2025-01-01' + g * interval '1 second'
FROM generate_series(1, %(rows)s) g;
CREATE INDEX customers_updated_at ON customers (updated_at);
ANALYZE customers;
"""


def _phase(ws_dir: str, strategy: str, queue) -> None:
    """One import in a fresh process: (seconds, counts, peak RSS MB, batch rows)."""
    try:
        from tessera.workspace import Workspace

        ws = Workspace.open(ws_dir)
        name = "full_customers" if strategy == "full" else "customers"
        with PeakRSS() as rss:
            t0 = time.perf_counter()
            counts = ws.import_sources([name])[name]
            seconds = time.perf_counter() - t0
        files = ws.store.list_imported_files(name)
        ws.close()
        queue.put({"seconds": seconds, "counts": counts, "rss": rss.peak / 2**20,
                   "batch_rows": files[-1]["rows"] if files else 0, "batches": len(files)})
    except BaseException:
        queue.put({"error": traceback.format_exc()})


def run_phase(ws_dir: str, strategy: str) -> dict:
    return run_in_child(_phase, ws_dir, strategy)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--changed", type=float, default=0.01, help="share of rows updated before the incremental import")
    ap.add_argument("--warehouse", choices=["duckdb", "postgres", "spark"], default="duckdb")
    args = ap.parse_args()

    import psycopg

    from servers import PostgresServer
    from tessera.workspace import Workspace

    load_before = os.getloadavg()
    server = PostgresServer().start()
    tmp = Path(tempfile.mkdtemp(prefix="tessera-bench-db-"))
    try:
        server.create_role("bench", "bench-pw", superuser=True)
        server.create_database("source")
        settings = {"type": "postgresql", "host": "127.0.0.1", "port": server.port, "database": "source",
                    "user": "bench", "password": "bench-pw"}
        dsn = dict(host="127.0.0.1", port=server.port, dbname="source", user="bench", password="bench-pw")
        t0 = time.perf_counter()
        with psycopg.connect(**dsn, autocommit=True) as con:
            con.execute(TABLE.replace("%(rows)s", str(int(args.rows))))
        seconds = time.perf_counter() - t0
        print(f"PostgreSQL {server.port}: created customers with {args.rows:,} rows in {seconds:.1f} s")

        warehouse = None
        if args.warehouse == "postgres":
            warehouse = server.create_database("warehouse")
        elif args.warehouse == "spark":
            warehouse = "spark"
        ws_dir = tmp / "ws"
        ws = Workspace.init(ws_dir, warehouse=warehouse)
        common = {"connection": "crm", "table": "customers", "record_keys": ["id"]}
        ws.apply({
            "connections": [{"name": "crm", **settings}],
            "sources": [{"name": "full_customers", **common, "import_strategy": "full"},
                        {"name": "customers", **common, "import_strategy": "incremental", "cursor": "updated_at",
                         "lookback": "10m"}],
            "datasets": [{"name": "contacts", "mappings": [{"source": "customers", "columns": {"email": "email"}}]}],
        })
        ws.close()

        print(f"warehouse: {args.warehouse}; each phase in its own process (peak RSS of that process)")

        def report(title: str, out: dict, rows_read: int) -> None:
            rate = rows_read / out["seconds"] if out["seconds"] else 0.0
            print(f"{title}: {out['seconds']:.2f} s, {rate:,.0f} rows/s read, peak RSS {out['rss']:,.0f} MB; "
                  f"batches recorded {out['batches']}, last batch {out['batch_rows']:,} rows, counts {out['counts']}")

        full = run_phase(str(ws_dir), "full")
        report("1. full import", full, args.rows)
        again = run_phase(str(ws_dir), "full")
        report("2. full import, unchanged data", again, args.rows)
        first = run_phase(str(ws_dir), "incremental")
        report("3. incremental import, first", first, args.rows)

        step = max(1, round(1 / args.changed)) if args.changed > 0 else 0
        t0 = time.perf_counter()
        with psycopg.connect(**dsn, autocommit=True) as con:
            changed = con.execute(
                "UPDATE customers SET score = score + 1, updated_at = updated_at + interval '400 days' "
                f"WHERE id % {step} = 0").rowcount if step else 0
        print(f"updated {changed:,} rows ({args.changed:.1%}) in {time.perf_counter() - t0:.1f} s")
        incr = run_phase(str(ws_dir), "incremental")
        report(f"4. incremental import, {changed:,} changed", incr, incr["counts"]["rows_read"])

        if args.rows >= 1_000_000:  # the targets are set for 1M rows: smaller runs say nothing of them
            print(f"target full import of 1M rows <= {TARGET_FULL:.0f} s: "
                  f"{'met' if full['seconds'] <= TARGET_FULL else 'not met'} "
                  f"({full['seconds']:.2f} s for {args.rows:,} rows)")
            print(f"target incremental import (1% changed) <= {TARGET_INCREMENTAL:.0f} s: "
                  f"{'met' if incr['seconds'] <= TARGET_INCREMENTAL else 'not met'} ({incr['seconds']:.2f} s)")
        print(f"{os.cpu_count()} CPUs; load average before the benchmark: "
              f"{load_before[0]:.2f} / {load_before[1]:.2f} / {load_before[2]:.2f} (1 / 5 / 15 min)")
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
