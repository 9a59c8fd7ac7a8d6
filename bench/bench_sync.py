"""Sync benchmark: a dataset of N contacts synced to a PostgreSQL table, re-synced after 1% of the
rows changed, re-synced after a pipeline run that changed nothing (every row compared, nothing
sent), and once more with nothing published since (nothing compared).

The dataset is what ``run_syncs`` reads in real use: a workspace's published dataset, built by a
pipeline run from a generated CSV (``id, email, first_name, last_name, city, country,
birth_date, amount, email_optin, created_at``; ``import_strategy: full``). A throwaway
PostgreSQL server is started with ``tests/servers.py`` (the Debian packages ``scripts/test.sh``
installs). The sync (``mode: mirror``, key ``crm_id``, every column) goes to a new table.

Each step runs in its own child process; this prints its seconds, rows/s and the child's peak
RSS (psutil, sampled every 20 ms, and ``ru_maxrss``), for each ``--rows`` given, so that the
RSS of 100k and 1M rows can be compared:

    .venv/bin/python bench/bench_sync.py                        # 1,000,000 rows
    .venv/bin/python bench/bench_sync.py --rows 100000 1000000  # RSS stays flat
    .venv/bin/python bench/bench_sync.py --change 0.05          # 5% of the rows change
    .venv/bin/python bench/bench_sync.py --memory-limit 512MB   # DuckDB's memory bounded
    .venv/bin/python bench/bench_sync.py --mariadb --rows 200000  # MariaDB: LOAD DATA vs INSERT

The warehouse engine's working memory (DuckDB's joins over the keys and hashes) grows with the
rows unless ``--memory-limit`` bounds it; what the sync itself holds in Python is a few Arrow
batches (the "Arrow memory pool peak").
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

from peak_rss import PeakRSS, run_in_child  # bench/ is on sys.path when run as a script

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

FULL_TARGET = 20.0  # seconds for the first sync of 1,000,000 rows
CHANGED_TARGET = 5.0  # seconds for a re-sync with 1% changed rows


def generate(path: Path, rows: int, *, change: float = 0.0, seed: int = 7) -> None:
    """The contacts CSV; with ``change``, that share of rows (every 1/change-th id) has a new city
    and amount."""
    import duckdb

    every = max(1, round(1 / change)) if change else 0
    changed_city = f"CASE WHEN {every} > 0 AND i % {every} = 0 THEN 'Moved' ELSE" if every else "CASE WHEN false THEN '' ELSE"
    con = duckdb.connect()
    con.execute(f"SELECT setseed({seed / 100})")
    con.execute(f"""
        COPY (
          SELECT i AS id,
                 'user' || i || '@example.com' AS email,
                 (['Ann', 'Bob', 'Cyd', 'Dan', 'Eve', 'Fay', 'Gus', 'Hal'])[1 + i % 8] AS first_name,
                 'Name' || (i % 9973) AS last_name,
                 {changed_city} (['Paris', 'Lyon', 'Nice', 'Lille', 'Nantes', 'Brest'])[1 + i % 6] END AS city,
                 (['FR', 'BE', 'ES', 'DE'])[1 + i % 4] AS country,
                 DATE '1950-01-01' + CAST(i % 20000 AS INTEGER) AS birth_date,
                 round((i % 100000) / 100.0 + CASE WHEN {every} > 0 AND i % {max(every, 1)} = 0 THEN 1 ELSE 0 END, 2)
                   AS amount,
                 i % 3 <> 0 AS email_optin,
                 TIMESTAMP '2020-01-01 00:00:00' + to_seconds(i * 37) AS created_at
          FROM range(1, {rows} + 1) t(i)
        ) TO '{path}' (FORMAT csv, HEADER true)""")
    con.close()


def workspace_yaml(data: Path, pg_port: int, database: str, maria=None) -> str:
    maria_conn = maria_syncs = ""
    if maria is not None:
        maria_conn = (f"  - {{name: maria, type: mariadb, host: 127.0.0.1, port: {maria.port}, database: {database}, "
                      f"user: {maria.user}, password: {maria.password}}}\n")
        maria_syncs = "".join(
            f"  - {{name: contacts_maria_{m}, dataset: contacts, connection: maria, table: contacts_{m}, key: crm_id, "
            "mode: mirror}\n" for m in ("load", "insert"))
    return f"""
connections:
  - {{name: files, type: local, path: {data}}}
  - {{name: warehouse_pg, type: postgresql, host: 127.0.0.1, port: {pg_port}, database: {database}, user: postgres}}
{maria_conn}sources:
  - name: crm
    connection: files
    pattern: contacts.csv
    record_keys: [id]
    import_strategy: full
    types: {{id: string, amount: float, email_optin: boolean, birth_date: date, created_at: timestamp}}
datasets:
  - name: contacts
    mappings:
      - source: crm
        columns: {{crm_id: id, email: email, first_name: first_name, last_name: last_name, city: city,
                  country: country, birth_date: birth_date, amount: amount, email_optin: email_optin,
                  created_at: created_at}}
syncs:
  - {{name: contacts_pg, dataset: contacts, connection: warehouse_pg, table: contacts, key: crm_id, mode: mirror}}
{maria_syncs}"""


def _child(step: str, ws_dir: str, queue) -> None:
    try:
        from tessera.workspace import Workspace

        ws = Workspace.open(ws_dir)
        with PeakRSS() as peak:
            t0 = time.perf_counter()
            if step == "pipeline":
                ws.run()
                out = {}
            else:
                from tessera.syncs import run_syncs, tables

                name = "contacts_pg"
                if step.startswith("sync:"):  # sync:<name>:<MySQL method>
                    _, name, tables.MYSQL_METHOD = step.split(":")
                [result] = run_syncs(ws, [name])
                out = {"result": result.counts(), "status": result.status, "errors": result.errors[:3]}
            seconds = time.perf_counter() - t0
        ws.close()
        import pyarrow as pa

        out.update(seconds=seconds, peak_mb=peak.peak / 2**20, start_mb=peak.start / 2**20,
                   arrow_mb=pa.default_memory_pool().max_memory() / 2**20,
                   maxrss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
        queue.put(out)
    except BaseException:
        queue.put({"error": traceback.format_exc()})


def run_step(step: str, ws_dir: Path) -> dict:
    return run_in_child(_child, step, str(ws_dir))


def bench(rows: int, change: float, pg, work: Path, maria=None) -> dict:
    from tessera.workspace import Workspace

    database = f"bench_{rows}"
    pg.create_database(database)
    if maria is not None:
        maria.create_database(database)
    data = work / f"data_{rows}"
    data.mkdir()
    t0 = time.perf_counter()
    generate(data / "contacts.csv", rows)
    gen_s = time.perf_counter() - t0
    ws_dir = work / f"ws_{rows}"
    (work / f"workspace_{rows}.yaml").write_text(workspace_yaml(data, pg.port, database, maria))
    ws = Workspace.init(ws_dir)
    ws.apply(work / f"workspace_{rows}.yaml")
    ws.close()
    print(f"\n== {rows:,} contacts ({gen_s:.1f} s to generate the CSV)")
    pipe = run_step("pipeline", ws_dir)
    print(f"pipeline run (import, publish): {pipe['seconds']:.1f} s")

    full = run_step("sync", ws_dir)
    _report("first sync (every row inserted)", full, rows)
    if maria is not None:
        for method, label in (("load", "LOAD DATA LOCAL INFILE + INSERT ... SELECT"),
                              ("insert", "multi-row INSERT ... ON DUPLICATE KEY UPDATE")):
            out = run_step(f"sync:contacts_maria_{method}:{method}", ws_dir)
            _report(f"first sync to MariaDB, {label}", out, rows)
    import psycopg

    with psycopg.connect(f"host=127.0.0.1 port={pg.port} user=postgres dbname={database}") as con:
        in_table = con.execute("SELECT count(*) FROM contacts").fetchone()[0]
    print(f"  rows in the PostgreSQL table: {in_table:,}")

    generate(data / "contacts.csv", rows, change=change)
    pipe2 = run_step("pipeline", ws_dir)
    print(f"pipeline run after {change:.0%} of the rows changed: {pipe2['seconds']:.1f} s")
    changed = run_step("sync", ws_dir)
    _report(f"re-sync ({change:.0%} of the rows changed)", changed, changed["result"]["updated"])
    with psycopg.connect(f"host=127.0.0.1 port={pg.port} user=postgres dbname={database}") as con:
        moved = con.execute("SELECT count(*) FROM contacts WHERE city = 'Moved'").fetchone()[0]
    print(f"  rows updated in the PostgreSQL table: {moved:,}")

    pipe3 = run_step("pipeline", ws_dir)
    print(f"pipeline run with nothing changed (a new publication of the same rows): {pipe3['seconds']:.1f} s")
    idle = run_step("sync", ws_dir)
    _report("re-sync of the new publication (every row compared, nothing sent)", idle, 0)
    again = run_step("sync", ws_dir)
    _report("re-sync with nothing published since (nothing compared)", again, 0)
    return {"rows": rows, "full": full, "changed": changed, "idle": idle}


def _report(label: str, out: dict, sent: int) -> None:
    r = out["result"]
    rate = f"{sent / out['seconds']:,.0f} rows/s" if sent else "-"
    print(f"{label}: {out['seconds']:.2f} s ({rate}); status {out['status']}: {r['inserted']:,} inserted, "
          f"{r['updated']:,} updated, {r['deleted']:,} deleted, {r['failed']:,} failed, {r['unchanged']:,} unchanged")
    print(f"  peak RSS of the sync's process: {out['peak_mb']:,.0f} MB (psutil; {out['start_mb']:,.0f} MB before the "
          f"sync, workspace open), ru_maxrss {out['maxrss_mb']:,.0f} MB; Arrow memory pool peak {out['arrow_mb']:,.0f} MB")
    for e in out["errors"]:
        print(f"  error: {e}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, nargs="+", default=[1_000_000], help="dataset sizes to run (each in turn)")
    ap.add_argument("--change", type=float, default=0.01, help="share of the rows changed before the re-sync")
    ap.add_argument("--mariadb", action="store_true",
                    help="also time the first sync to MariaDB with LOAD DATA LOCAL and with multi-row INSERT")
    ap.add_argument("--memory-limit", default=None,
                    help="DuckDB memory limit of the steps (TESSERA_DUCKDB_MEMORY_LIMIT), e.g. 512MB")
    args = ap.parse_args()
    if args.memory_limit:
        os.environ["TESSERA_DUCKDB_MEMORY_LIMIT"] = args.memory_limit  # inherited by the child processes

    from servers import PostgresServer, ServerUnavailable

    try:
        pg = PostgresServer()
    except ServerUnavailable as exc:
        sys.exit(str(exc))
    t0 = time.perf_counter()
    pg.start()
    print(f"PostgreSQL {pg.bindir.parent.name} started on port {pg.port} in {time.perf_counter() - t0:.1f} s")
    maria = None
    if args.mariadb:
        from servers import MariaDBServer

        maria = MariaDBServer().start()
        print(f"MariaDB started on port {maria.port}")
    work = Path(tempfile.mkdtemp(prefix="tessera-bench-sync-"))
    results = []
    try:
        for rows in args.rows:
            results.append(bench(rows, args.change, pg, work, maria))
    finally:
        pg.stop()
        if maria is not None:
            maria.stop()
        shutil.rmtree(work, ignore_errors=True)
    print("\nsummary")
    print(f"{'rows':>10}  {'first sync':>10}  {'rows/s':>9}  {'peak RSS':>8}  {'re-sync':>8}  {'sent':>7}  "
          f"{'peak RSS':>8}  {'idle':>6}")
    for r in results:
        full, changed, idle = r["full"], r["changed"], r["idle"]
        sent = changed["result"]["updated"] + changed["result"]["inserted"] + changed["result"]["deleted"]
        print(f"{r['rows']:>10,}  {full['seconds']:>9.2f}s  {r['rows'] / full['seconds']:>9,.0f}  "
              f"{full['peak_mb']:>6,.0f}MB  {changed['seconds']:>7.2f}s  {sent:>7,}  {changed['peak_mb']:>6,.0f}MB  "
              f"{idle['seconds']:>5.2f}s")
    big = next((r for r in results if r["rows"] == 1_000_000), None)
    if big:
        full_s, changed_s = big["full"]["seconds"], big["changed"]["seconds"]
        print(f"target: 1,000,000 rows to PostgreSQL <= {FULL_TARGET:.0f} s: "
              f"{'met' if full_s <= FULL_TARGET else 'not met'} ({full_s:.1f} s); "
              f"1% changed <= {CHANGED_TARGET:.0f} s: {'met' if changed_s <= CHANGED_TARGET else 'not met'} "
              f"({changed_s:.1f} s)")


if __name__ == "__main__":
    main()
