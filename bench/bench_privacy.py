"""Benchmark of privacy: erase one customer everywhere at 1M contacts, with its receipt.

Builds a workspace on the embedded DuckDB warehouse from generated files (a CRM export of N
contacts with e-mails normalized by the ``email`` rule, N orders pointing at them by e-mail) and
N collected events, runs the pipeline once (timed apart), then measures through the Workspace
facade:

1. the erase of one customer by e-mail (target: <= 60 s at 1M contacts): published datasets,
   records and lineage, raw batches, the two archived files rewritten, collected events; its
   receipt is printed;
2. the import of a new CRM file of N rows with the suppression list checked (the erased customer
   is in it): the import's time and the rows dropped.

Beside each figure, a bare baseline in the same process: the same rows deleted by hand-written
SQL on the same DuckDB connection (the customer's rows by their known keys), and the same file
imported with an empty suppression list.

    python bench/bench_privacy.py [--contacts 1000000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from peak_rss import PeakRSS

from tessera.workspace import Workspace

CONFIG = {
    "connections": [{"name": "files", "type": "local", "path": "data"},
                    {"name": "web", "type": "http", "write_key": "wk_bench"}],
    "sources": [
        {"name": "crm", "connection": "files", "pattern": "crm*.csv", "record_keys": ["customer_id"],
         "normalize": {"email": ["email"]}},
        {"name": "orders", "connection": "files", "pattern": "orders*.csv", "record_keys": ["order_id"],
         "relations": [{"column": "customer_email", "to": "crm.email"}]},
        {"name": "web_events", "connection": "web", "record_keys": ["message_id"],
         "relations": [{"column": "user_id", "to": "contacts.customer_id"}]},
    ],
    "datasets": [
        {"name": "contacts", "deduplicate": True,
         "identity_keys": [{"column": "customer_id"}, {"column": "email"}],
         "columns": [{"name": "email_optin", "semantic": "EmailOptIn"}],
         "mappings": [{"source": "crm", "columns": {"customer_id": "customer_id", "email": "email",
                                                   "first_name": "first_name", "email_optin": "email_optin"}}]},
        {"name": "orders", "mappings": [{"source": "orders", "columns": {
            "order_id": "order_id", "customer_email": "customer_email", "amount": "amount"}}]},
        {"name": "events", "mappings": [{"source": "web_events", "columns": {
            "message_id": "message_id", "event": "event", "at": "timestamp", "user_id": "user_id"}}]},
    ],
}


def generate(ws: Workspace, data: Path, n: int) -> None:
    """The CRM and orders files (written by DuckDB) and the collected events of ``n`` contacts."""
    a = ws.adapter
    data.mkdir(parents=True, exist_ok=True)
    a.sql(f"""COPY (SELECT 'C' || CAST(i AS VARCHAR) AS customer_id,
                      CASE WHEN i % 2 = 0 THEN upper('P' || CAST(i AS VARCHAR)) ELSE 'p' || CAST(i AS VARCHAR) END
                          || '@Example.com' AS email,
                      'Name' || CAST(i % 997 AS VARCHAR) AS first_name,
                      CASE WHEN hash(i) % 3 = 0 THEN 'no' ELSE 'yes' END AS email_optin
               FROM range({n}) t(i)) TO '{data / "crm_1.csv"}' (HEADER, DELIMITER ',')""")
    a.sql(f"""COPY (SELECT 'O' || CAST(i AS VARCHAR) AS order_id,
                      'p' || CAST(hash(i) % {n} AS VARCHAR) || '@example.com' AS customer_email,
                      CAST(hash(i * 7) % 20000 AS DOUBLE) / 100 AS amount
               FROM range({n}) t(i)) TO '{data / "orders_1.csv"}' (HEADER, DELIMITER ',')""")
    a.sql(f"""CREATE TABLE _tessera_events AS SELECT
            'm' || CAST(i AS VARCHAR) AS message_id, 'web' AS connection, 'track' AS type, 'Page Viewed' AS event,
            NULL::VARCHAR AS name, 'C' || CAST(hash(i) % {n} AS VARCHAR) AS user_id, NULL::VARCHAR AS anonymous_id,
            NULL::VARCHAR AS previous_id, NULL::VARCHAR AS group_id, NULL::VARCHAR AS email,
            TIMESTAMP '2024-01-01' + to_seconds(CAST(hash(i * 3) % 31536000 AS BIGINT)) AS timestamp,
            NULL::TIMESTAMP AS original_timestamp, NULL::TIMESTAMP AS sent_at,
            TIMESTAMP '2024-01-01' + to_seconds(CAST(hash(i * 3) % 31536000 AS BIGINT)) AS received_at,
            '{{}}' AS properties, '{{}}' AS traits, '{{}}' AS context, '{{}}' AS integrations, NULL::VARCHAR AS extra,
            CAST(i AS BIGINT) AS log_offset
        FROM range({n}) t(i)""")


def bare_erase(ws: Workspace, tid: str, email: str, customer_id: str) -> float:
    """The customer's rows deleted by hand-written SQL (keys known in advance): the floor of an erase."""
    a = ws.adapter
    t0 = time.perf_counter()
    for view, where in (("contacts", f"tessera_id = '{tid}'"), ("contacts__records", f"tessera_id = '{tid}'"),
                        ("orders", f"tessera_contacts_id = '{tid}'"), ("events", f"tessera_contacts_id = '{tid}'")):
        a.sql(f'DELETE FROM "{a.published_target(view)}" WHERE {where}')
    for name in a.list_tables():
        if name.startswith("_tessera_raw_crm_"):
            a.sql(f"DELETE FROM \"{name}\" WHERE lower(trim(email)) = '{email}'")
        elif name.startswith("_tessera_raw_orders_"):
            a.sql(f"DELETE FROM \"{name}\" WHERE lower(trim(customer_email)) = '{email}'")
    a.sql(f"DELETE FROM _tessera_events WHERE user_id = '{customer_id}'")
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=1_000_000)
    args = parser.parse_args()
    n = args.contacts
    with tempfile.TemporaryDirectory() as tmp, PeakRSS() as rss:
        base = Path(tmp)
        ws = Workspace.init(base / "ws")
        CONFIG["connections"][0]["path"] = str(base / "data")
        ws.apply(CONFIG)
        t0 = time.perf_counter()
        generate(ws, base / "data", n)
        print(f"{n:,} contacts, {n:,} orders and {n:,} events generated in {time.perf_counter() - t0:.1f} s "
              "(DuckDB)")
        t0 = time.perf_counter()
        ws.run()
        print(f"first run (import, unify, publish, consent history): {time.perf_counter() - t0:.1f} s")

        # 1. erase, by e-mail as the customer wrote it to us
        # a customer with orders and events, whose e-mail was upper-cased in the file (an even number)
        row = ws.adapter.sql(f"""SELECT CAST(substr(o.customer_email, 2, strpos(o.customer_email, '@') - 2) AS BIGINT) AS i
            FROM read_csv('{base / "data" / "orders_1.csv"}') o
            WHERE CAST(substr(o.customer_email, 2, strpos(o.customer_email, '@') - 2) AS BIGINT) % 2 = 0
              AND 'C' || substr(o.customer_email, 2, strpos(o.customer_email, '@') - 2)
                  IN (SELECT user_id FROM _tessera_events)
            LIMIT 1""").fetchone()
        target = int(row[0])
        email, customer_id = f"p{target}@example.com", f"C{target}"
        t0 = time.perf_counter()
        receipt = ws.erase(f"P{target}@EXAMPLE.com", actor="bench")
        seconds = time.perf_counter() - t0
        verdict = "meets the target (60 s)" if seconds <= 60 else "MISSES the target (60 s)"
        print(f"erase of one customer at {n:,} contacts: {seconds:.2f} s, {receipt['rows_removed']} rows removed, "
              f"{receipt['suppressed']} identifiers suppressed  {verdict}")
        for r in receipt["removed"]:
            print(f"    {r['where']:<60} {r['rows']:>6}  {r.get('how', 'deleted')}")
        print("    seconds per step: " + ", ".join(f"{k} {v:.2f}" for k, v in receipt["steps"].items()))
        # baseline: the same kind of deletes of another customer, by hand, on the same connection
        other = (target + 2) % n
        t = ws.table("contacts")
        tid = ws.adapter.to_arrow(t.filter(t.customer_id == f"C{other}").select("tessera_id")).column(0)[0].as_py()
        bare = bare_erase(ws, tid, f"p{other}@example.com", f"C{other}")
        print(f"bare baseline: the same deletes as hand-written SQL, keys known: {bare:.2f} s "
              f"(erase x{seconds / bare:.1f})")

        # 2. a new file with everyone again, the erased customer among them, checked at import
        (base / "data" / "crm_2.csv").write_bytes((base / "data" / "crm_1.csv").read_bytes()
                                                  .replace(b"Name1,", b"Name1b,"))
        t0 = time.perf_counter()
        counts = ws.import_sources(["crm"])
        seconds = time.perf_counter() - t0
        print(f"import of a new CRM file of {n:,} rows with the suppression list checked: {seconds:.2f} s, "
              f"{counts['crm']['rows_suppressed']} row(s) dropped "
              f"({n / seconds:,.0f} rows/s)")
        (base / "data" / "crm_3.csv").write_bytes((base / "data" / "crm_1.csv").read_bytes()
                                                  .replace(b"Name2,", b"Name2b,"))
        ws.adapter.sql("ALTER TABLE _tessera_suppressed RENAME TO _bench_suppressed")
        t0 = time.perf_counter()
        ws.import_sources(["crm"])
        plain = time.perf_counter() - t0
        ws.adapter.sql("ALTER TABLE _bench_suppressed RENAME TO _tessera_suppressed")
        print(f"bare baseline: the same import without a suppression list: {plain:.2f} s "
              f"(suppression check x{seconds / plain:.2f})")
        ws.close()
    print(f"peak RSS {rss.peak / 2**20:,.0f} MB (start {rss.start / 2**20:,.0f} MB)")


if __name__ == "__main__":
    main()
