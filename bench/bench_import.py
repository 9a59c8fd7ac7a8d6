"""Full import + unify benchmark: a CRM export of N contacts and an e-shop export of M orders, as CSV.

The data (``contacts.csv``: ';' separated, BOM, French headers, 20% duplicate persons, day-first
dates; ``orders.csv``: ',' separated, e-mails of the contacts with case/space variations) is
generated once under ``.bench/`` and reused. Two sides run, each in a fresh process of its own
(its peak RSS is its own), alternately ``--rounds`` times (the best of each is kept):

* **tessera**: creates a new workspace, applies the benchmark's ``workspace.yaml`` and runs the
  pipeline once (import, stage, unify, publish);
* **bare**: the same work written as plain SQL on one DuckDB connection (same memory cap as a
  workspace's): reads both files, normalizes the e-mails, phones and dates, builds the identity
  key table, labels its connected components with SciPy, merges each unified contact (most
  frequent values, latest birth date and city, every CRM id) and links each order to the unified
  contact of its e-mail.

Prints the seconds of each step of the run, the whole run, rows/s, each side's peak RSS and CPU,
the ratios, the row counts, the unified contacts and the share of orders linked to a contact.

    .venv/bin/python bench/bench_import.py                       # 1M contacts, 5M orders
    .venv/bin/python bench/bench_import.py --contacts 100000 --orders 500000
    .venv/bin/python bench/bench_import.py --profile /tmp/run.prof   # cProfile of the run
    .venv/bin/python bench/bench_import.py --rounds 2                # alternate the sides twice
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bare_identity import components  # noqa: E402
from peak_rss import PeakRSS, run_in_child  # noqa: E402
from rounds import best_of_rounds  # noqa: E402

TARGET_SECONDS = 20.0
TARGET_PEAK_MB = 2048

# The bare side: the same work as plain DuckDB SQL ({contacts} and {orders}: the files' paths).
BARE_SQL = """
CREATE TABLE raw_contacts AS SELECT * FROM read_csv('{contacts}', delim = ';', header = true, all_varchar = true);
CREATE TABLE raw_orders AS SELECT * FROM read_csv('{orders}', delim = ',', header = true,
    types = {{'order_id': 'VARCHAR', 'store_id': 'VARCHAR', 'order_date': 'TIMESTAMP', 'amount': 'DOUBLE',
              'discount': 'DOUBLE'}});
CREATE TABLE contacts_n AS
SELECT row_number() OVER () - 1 AS idx, id_client AS crm_id,
       nullif(lower(trim(courriel)), '') AS email,
       CASE WHEN length(d) = 9 THEN '+33' || d END AS phone,
       trim(prenom) AS first_name, trim(nom) AS last_name,
       coalesce(try_strptime(date_naissance, '%d/%m/%Y'), try_strptime(date_naissance, '%d-%m-%Y'),
                try_strptime(date_naissance, '%d.%m.%Y'))::DATE AS birth_date,
       trim(ville) AS city
FROM (SELECT *, ltrim(CASE WHEN starts_with(p, '0033') THEN p[5:] WHEN starts_with(p, '33') THEN p[3:] ELSE p END,
                      '0') AS d
      FROM (SELECT *, regexp_replace(coalesce(telephone, ''), '[^0-9]', '', 'g') AS p FROM raw_contacts));
CREATE TABLE keys AS
  SELECT idx, 0 AS level, email AS value FROM contacts_n WHERE email IS NOT NULL
  UNION ALL SELECT idx, 1, phone FROM contacts_n WHERE phone IS NOT NULL;
CREATE TABLE vals AS SELECT level, value, row_number() OVER () - 1 AS vidx FROM (SELECT DISTINCT level, value FROM keys);
"""

BARE_MERGE_SQL = """
CREATE TABLE contacts_c AS SELECT c.*, m.cluster FROM contacts_n c JOIN comp m USING (idx);
CREATE TABLE contacts AS
SELECT cluster AS contact_id, mode(email) AS email, mode(phone) AS phone, mode(first_name) AS first_name,
       mode(last_name) AS last_name, arg_max(birth_date, crm_id) FILTER (WHERE birth_date IS NOT NULL) AS birth_date,
       arg_max(city, crm_id) FILTER (WHERE city IS NOT NULL) AS city,
       string_agg(DISTINCT crm_id, ', ' ORDER BY crm_id) AS crm_id
FROM contacts_c GROUP BY cluster;
CREATE TABLE orders AS
SELECT o.order_id, o.order_date, o.amount, o.discount, o.channel, o.store_id, o.email AS customer_email, l.cluster AS contact_id
FROM (SELECT *, nullif(lower(trim(customer_email)), '') AS email FROM raw_orders) o
LEFT JOIN (SELECT email, min(cluster) AS cluster FROM contacts_c WHERE email IS NOT NULL GROUP BY email) l
  ON o.email = l.email;
"""


def _tessera(data_dir: str, ws_dir: str, profile: str | None, queue) -> None:
    try:
        with PeakRSS() as rss:
            from tessera.workspace import Workspace

            t0 = time.perf_counter()
            ws = Workspace.init(ws_dir)
            ws.apply(Path(data_dir) / "workspace.yaml")
            setup = time.perf_counter() - t0
            t0, c0 = time.perf_counter(), time.process_time()
            if profile:
                import cProfile

                prof = cProfile.Profile()
                result = prof.runcall(ws.run)
                prof.dump_stats(profile)
            else:
                result = ws.run()
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            orders = ws.table("orders")
            linked = int(ws.adapter.execute(orders.tessera_contacts_id.notnull().sum()) or 0)
            n_orders = ws.adapter.count(orders)
            ws.close()
        queue.put({"steps": result.steps, "wall": wall, "cpu": cpu, "setup": setup, "sources": result.sources,
                   "datasets": result.datasets, "linked": linked, "orders": n_orders, "peak": rss.peak})
    except BaseException:
        queue.put({"error": traceback.format_exc()})


def _bare(data_dir: str, db_dir: str, queue) -> None:
    try:
        with PeakRSS() as rss:
            import duckdb
            import numpy as np
            import pyarrow as pa
            import scipy.sparse.csgraph  # noqa: F401 - loaded before the clock starts, as on the tessera side

            from tessera.demo.import_bench import CONTACTS_FILE, ORDERS_FILE
            from tessera.engine.duckdb import DEFAULT_MEMORY_LIMIT

            t0, c0 = time.perf_counter(), time.process_time()  # like the tessera side: modules loaded before
            con = duckdb.connect(str(Path(db_dir) / "bare.duckdb"))
            con.execute(f"SET memory_limit = '{DEFAULT_MEMORY_LIMIT}'")
            con.execute("SET preserve_insertion_order = false")
            sql = BARE_SQL.format(contacts=Path(data_dir) / CONTACTS_FILE, orders=Path(data_dir) / ORDERS_FILE)
            for statement in sql.split(";\n"):
                if statement.strip():
                    con.execute(statement)
            n_records = con.execute("SELECT count(*) FROM contacts_n").fetchone()[0]
            labels = components(con, n_records)
            con.register("comp", pa.table({"idx": np.arange(n_records, dtype=np.int64), "cluster": labels}))
            for statement in BARE_MERGE_SQL.split(";\n"):
                if statement.strip():
                    con.execute(statement)
            con.unregister("comp")
            for table in ("raw_contacts", "raw_orders", "contacts_n", "keys", "vals", "contacts_c"):
                con.execute(f"DROP TABLE {table}")
            unified = con.execute("SELECT count(*) FROM contacts").fetchone()[0]
            linked, n_orders = con.execute("SELECT count(contact_id), count(*) FROM orders").fetchone()
            con.close()
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        queue.put({"wall": wall, "cpu": cpu, "unified": unified, "linked": linked, "orders": n_orders,
                   "records": n_records, "peak": rss.peak})
    except BaseException:
        queue.put({"error": traceback.format_exc()})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--contacts", type=int, default=1_000_000)
    ap.add_argument("--orders", type=int, default=5_000_000)
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=1, help="alternated runs of each side (the best is kept)")
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
    load_before = os.getloadavg()
    best = best_of_rounds(args.rounds, {
        "bare": lambda tmp: run_in_child(_bare, str(data_dir), str(tmp)),
        "tessera": lambda tmp: run_in_child(_tessera, str(data_dir), str(tmp / "ws"),
                                            str(args.profile) if args.profile else None),
    })
    load_after = os.getloadavg()
    t, b = best["tessera"], best["bare"]
    steps = {s["step"]: s for s in t["steps"]}

    def sec(name: str) -> float:
        return steps.get(name, {}).get("seconds", 0.0)

    imp, stg = steps.get("import", {}), steps.get("stage", {})
    contacts = t["datasets"]["contacts"]
    rows_read = imp.get("rows_read", 0)
    wall, peak_mb = t["wall"], t["peak"] / 2**20
    print(f"input: {args.contacts:,} contact rows + {args.orders:,} order rows, {size_mb:,.0f} MB of CSV")
    print(f"import (parse + archive): {sec('import'):.2f} s")
    print(f"stage (normalize, type, check): {sec('stage'):.2f} s")
    print(f"unify (map, relations, identity, merge): {sec('unify'):.2f} s")
    print(f"publish: {sec('publish'):.2f} s")
    print(f"whole run: {wall:.2f} s ({t['cpu']:.2f} s CPU, {rows_read / wall:,.0f} rows/s), peak RSS {peak_mb:,.0f} MB"
          f"   [workspace init + apply: {t['setup']:.2f} s]")
    print(f"bare DuckDB + SciPy script: {b['wall']:.2f} s ({b['cpu']:.2f} s CPU), "
          f"peak RSS {b['peak'] / 2**20:,.0f} MB")
    print(f"ratio tessera / bare: time {wall / b['wall']:.2f}x (CPU {t['cpu'] / b['cpu']:.2f}x), "
          f"peak RSS {t['peak'] / b['peak']:.2f}x")
    print(f"target import + unify <= {TARGET_SECONDS:.0f} s and peak <= {TARGET_PEAK_MB:,} MB: time "
          f"{'met' if wall <= TARGET_SECONDS else 'not met'} ({wall:.1f} s), peak "
          f"{'met' if peak_mb <= TARGET_PEAK_MB else 'not met'} ({peak_mb:,.0f} MB)")
    print(f"rows read: {rows_read:,}  rejected on read: {imp.get('rows_rejected', 0):,}  "
          f"staged: {stg.get('rows_staged', 0):,}  rejected (all): {stg.get('rows_rejected', 0):,}")
    print(f"contacts: {contacts['records']:,} records -> {contacts['unified']:,} unified "
          f"({contacts['duplicates_merged']:,} duplicates merged); bare: {b['records']:,} -> {b['unified']:,}")
    share = t["linked"] / t["orders"] if t["orders"] else 0.0
    bshare = b["linked"] / b["orders"] if b["orders"] else 0.0
    print(f"orders linked to a contact: {t['linked']:,} of {t['orders']:,} ({share:.2%}); "
          f"bare: {b['linked']:,} of {b['orders']:,} ({bshare:.2%})")
    print(f"{os.cpu_count()} CPUs; load average before: {load_before[0]:.2f} / {load_before[1]:.2f} / "
          f"{load_before[2]:.2f}, after: {load_after[0]:.2f} / {load_after[1]:.2f} / {load_after[2]:.2f} "
          "(1 / 5 / 15 min)")
    if args.profile:
        print(f"cProfile statistics: {args.profile}")


if __name__ == "__main__":
    main()
