"""Benchmark of the guided setup: a proposal for a folder of 10 files holding 1,000,000 rows in all.

The folder is a shop's exports made by DuckDB: a French CRM (';' separated, BOM, day-first dates,
decimal commas), Spanish e-shop customers (NDJSON), two months of orders as a dated series, order
lines, loyalty cards, shop tickets, products and stores. Prints the time of the proposal, the rows
per second, the peak resident memory, and the ratio to a bare baseline in the same process (DuckDB
counting the rows of every file). Target: <= 10 s.

    python bench/bench_setup.py [--rows 1000000] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import duckdb

sys.path.insert(0, str(Path(__file__).resolve().parent))
from peak_rss import PeakRSS

from tessera.setup import propose_config

# share of the rows per file
FILES = {
    "crm/clientes_crm.csv": 0.15, "eshop/customers.ndjson": 0.12, "eshop/orders_2024-01.csv": 0.12,
    "eshop/orders_2024-02.csv": 0.12, "eshop/order_lines.ndjson": 0.2, "pos/cartes.csv": 0.08,
    "pos/tickets.csv": 0.1, "pos/lignes_tickets.csv": 0.1, "catalog/products.csv": 0.006, "catalog/stores.csv": 0.0005,
}


def make_folder(folder: Path, rows: int) -> dict[str, int]:
    con = duckdb.connect()
    n = {f: max(20, int(rows * share)) for f, share in FILES.items()}
    for sub in ("crm", "eshop", "pos", "catalog"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    people = n["crm/clientes_crm.csv"]

    def copy(sql: str, rel: str, opts: str) -> None:
        con.execute(f"COPY ({sql}) TO '{folder / rel}' ({opts})")

    copy(f"""SELECT 'CL' || (100000 + i) AS id_client, 'Prénom' || (i % 500) AS prenom,
                    upper('nom' || (i % 900)) AS nom, 'client' || i || '@exemple.fr' AS courriel,
                    '06 ' || lpad((i * 7919 % 100000000)::VARCHAR, 8, '0') AS telephone,
                    strftime(DATE '1950-01-01' + (i % 18000)::INT, '%d/%m/%Y') AS date_naissance,
                    ['France', 'FR', 'Belgique', 'france'][1 + i % 4] AS pays,
                    replace(printf('%.2f', (i % 5000) / 7.0), '.', ',') AS solde
             FROM range({people}) t(i)""", "crm/clientes_crm.csv", "HEADER, DELIMITER ';'")
    text = (folder / "crm/clientes_crm.csv").read_bytes()
    (folder / "crm/clientes_crm.csv").write_bytes(b"\xef\xbb\xbf" + text)
    copy(f"""SELECT 'W' || lpad(i::VARCHAR, 7, '0') AS id_cliente, 'client' || (i * 3) || '@exemple.fr' AS correo,
                    'nombre' || (i % 400) AS nombre, '+33 6 ' || lpad((i * 31 % 100000000)::VARCHAR, 8, '0') AS movil,
                    (DATE '2020-01-01' + (i % 1500)::INT)::VARCHAR AS fecha_alta
             FROM range({n['eshop/customers.ndjson']}) t(i)""", "eshop/customers.ndjson", "FORMAT JSON")
    start = 0
    for rel in ("eshop/orders_2024-01.csv", "eshop/orders_2024-02.csv"):
        copy(f"""SELECT 'CMD' || lpad(i::VARCHAR, 8, '0') AS order_id,
                        'W' || lpad((i % {n['eshop/customers.ndjson']})::VARCHAR, 7, '0') AS customer_id,
                        (TIMESTAMP '2024-01-01' + INTERVAL (i % 50000) MINUTE)::VARCHAR AS order_date,
                        printf('%.2f', (10 + i % 300) * 1.01) AS total_amount, ['web', 'app'][1 + i % 2] AS channel
                 FROM range({start}, {start + n[rel]}) t(i)""", rel, "HEADER")
        start += n[rel]
    copy(f"""SELECT 'CMD' || lpad((i // 2)::VARCHAR, 8, '0') AS order_id, 1 + i % 2 AS line_no,
                    'P' || (i % {n['catalog/products.csv']}) AS product_id, 1 + i % 3 AS quantity
             FROM range({min(n['eshop/order_lines.ndjson'], 2 * start)}) t(i)""", "eshop/order_lines.ndjson", "FORMAT JSON")
    copy(f"""SELECT (2900000000000 + i * 7)::VARCHAR AS card_number, 'client' || i || '@exemple.fr' AS email,
                    'S' || (i % 20) AS store_id FROM range({n['pos/cartes.csv']}) t(i)""", "pos/cartes.csv", "HEADER")
    copy(f"""SELECT 'T' || lpad(i::VARCHAR, 8, '0') AS ticket_id,
                    CASE WHEN i % 4 = 0 THEN NULL ELSE (2900000000000 + (i % {n['pos/cartes.csv']}) * 7)::VARCHAR END
                      AS card_number, 'S' || (i % 20) AS store_id,
                    (TIMESTAMP '2023-06-01' + INTERVAL (i) MINUTE)::VARCHAR AS ticket_date,
                    printf('%.2f', (5 + i % 200) * 1.01) AS amount FROM range({n['pos/tickets.csv']}) t(i)""",
         "pos/tickets.csv", "HEADER")
    copy(f"""SELECT 'T' || lpad((i // 2)::VARCHAR, 8, '0') AS ticket_id, 1 + i % 2 AS ligne,
                    'P' || (i % {n['catalog/products.csv']}) AS product_id, 1 + i % 4 AS quantite
             FROM range({n['pos/lignes_tickets.csv']}) t(i)""", "pos/lignes_tickets.csv", "HEADER")
    copy(f"""SELECT 'P' || i AS product_id, 'Produit ' || i AS name, ['Cuisine', 'Jardin', 'Salon'][1 + i % 3]
                    AS category FROM range({n['catalog/products.csv']}) t(i)""", "catalog/products.csv", "HEADER")
    copy(f"""SELECT 'S' || i AS store_id, 'Magasin ' || i AS name, 'Lyon' AS city
             FROM range({max(20, n['catalog/stores.csv'])}) t(i)""", "catalog/stores.csv", "HEADER")
    return n


def baseline(folder: Path) -> tuple[float, int]:
    """DuckDB counting the rows of every file: the bare cost of reading them once."""
    con = duckdb.connect()
    started, total = time.perf_counter(), 0
    for path in sorted(folder.rglob("*.*")):
        reader = "read_json_auto" if path.suffix == ".ndjson" else "read_csv_auto"
        total += con.execute(f"SELECT count(*) FROM {reader}(?)", [str(path)]).fetchone()[0]
    return time.perf_counter() - started, total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--keep", type=Path, help="write the folder and the proposal here")
    args = parser.parse_args()
    tmp = tempfile.TemporaryDirectory()
    folder = args.keep or Path(tmp.name) / "exports"
    folder.mkdir(parents=True, exist_ok=True)
    made = time.perf_counter()
    make_folder(folder, args.rows)
    made = time.perf_counter() - made
    cpu = time.process_time()
    base_s, rows = baseline(folder)
    base_cpu = time.process_time() - cpu
    cpu = time.process_time()
    with PeakRSS() as rss:
        proposal = propose_config(folder)
    cpu = time.process_time() - cpu
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    size = sum(p.stat().st_size for p in folder.rglob("*.*"))
    print(f"folder: {len(list(folder.rglob('*.*')))} files, {rows:,} rows, {size / 1e6:.1f} MB (made in {made:.1f} s)")
    print(f"machine: {os.cpu_count()} cores, load average {load:.1f} (other work slows every figure alike)")
    print(f"baseline (DuckDB counts every file's rows): {base_s:.2f} s, CPU {base_cpu:.2f} s")
    print(f"proposal: {proposal.seconds:.2f} s, {rows / proposal.seconds:,.0f} rows/s, "
          f"{proposal.rows:,} rows profiled, ratio to baseline {proposal.seconds / base_s:.1f}x, "
          f"peak RSS {rss.peak / 2**20:.0f} MiB (+{(rss.peak - rss.start) / 2**20:.0f} MiB), "
          f"CPU {cpu:.2f} s (all threads; ratio to baseline {cpu / max(base_cpu, 1e-9):.1f}x)")
    print("steps: " + ", ".join(f"{k} {v:.2f} s" for k, v in proposal.timings.items()))
    print(f"sources: {len(proposal.sources)}, datasets: {len(proposal.config['datasets'])}, "
          f"doubts: {len(proposal.doubts)}")
    for s in proposal.sources:
        print(f"  {s['name']:<24} {s['entity']:<12} {len(s['files'])} file(s) ~{s['rows']:>9,} rows  "
              f"keys {s['record_keys']}  -> {', '.join(s['relations']) or '-'}")
    print(f"target <= 10 s: {'met' if proposal.seconds <= 10 else 'NOT met'} on the wall clock"
          f" ({proposal.seconds:.1f} s at load {load:.1f}); the process used {cpu:.1f} s of CPU")
    if args.keep:
        (args.keep / "proposed.yaml").write_text(proposal.yaml, encoding="utf-8")


if __name__ == "__main__":
    main()
