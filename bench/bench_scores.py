"""Score library benchmark: every library score for N customers from M orders (and their lines)
and E events.

Generates the orders in an embedded DuckDB (random customers, dates, amounts, discounts, stores,
channels, 1-4 lines per order with a category) and the events (page views, e-mail opens and
clicks, cart additions), then computes the order scores in one materialized table and the
engagement score group in another, and prints the time, rows/s and peak RSS.

    .venv/bin/python bench/bench_scores.py --customers 1000000 --orders 5000000 --events 5000000
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import ibis  # noqa: E402

from tessera.enrich.engagement import compute_engagement  # noqa: E402
from tessera.enrich.scores import EVENT_SCORES, LIBRARY, compute_scores  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--customers", type=int, default=1_000_000)
    ap.add_argument("--orders", type=int, default=5_000_000)
    ap.add_argument("--events", type=int, default=5_000_000)
    args = ap.parse_args()

    con = ibis.duckdb.connect()
    raw = con.con
    t0 = time.perf_counter()
    raw.execute(f"""
        CREATE TABLE orders AS
        SELECT 'O' || i AS _order,
               'C' || (hash(i * 7919) % {args.customers}) AS _customer,
               DATE '2020-01-01' + CAST(hash(i * 31) % 1800 AS INTEGER) AS day,
               round(5 + (hash(i * 17) % 30000) / 100.0, 2) AS amount,
               CASE WHEN hash(i * 13) % 5 = 0 THEN round((hash(i * 19) % 2000) / 100.0, 2) ELSE 0 END AS discount,
               'S' || (hash(i * 23) % 40) AS store,
               CASE hash(i * 29) % 3 WHEN 0 THEN 'web' WHEN 1 THEN 'app' ELSE 'pos' END AS channel
        FROM range({args.orders}) t(i)""")
    raw.execute("""
        CREATE TABLE items AS
        SELECT _order, CAST(1 + (hash(_order || l) % 3) AS INTEGER) AS qty,
               (['Luminaires', 'Textile', 'Cuisine', 'Décoration', 'Mobilier', 'Jardin'])[CAST(1 + hash(_order || l) % 6 AS INTEGER)]
                   AS category
        FROM orders CROSS JOIN range(4) r(l)
        WHERE l <= hash(_order) % 4""")
    n_items = raw.execute("SELECT count(*) FROM items").fetchone()[0]
    print(f"generated {args.orders:,} orders and {n_items:,} lines in {time.perf_counter() - t0:.1f} s")

    fields = {"OrderDate": "day", "OrderAmount": "amount", "DiscountAmount": "discount", "Store": "store",
              "Channel": "channel"}
    raw.execute(f"""
        CREATE TABLE events AS
        SELECT 'C' || (hash(i * 104729) % {args.customers}) AS _customer,
               TIMESTAMP '2024-10-01' + to_seconds(CAST(hash(i * 37) % (92 * 86400) AS BIGINT)) AS at,
               (['Page Viewed', 'Page Viewed', 'Email Opened', 'Email Clicked', 'Product Added'])
                   [CAST(1 + hash(i * 41) % 5 AS INTEGER)] AS name
        FROM range({args.events}) t(i)""")
    print(f"generated {args.events:,} events")

    order_scores = [s for s in LIBRARY if s not in EVENT_SCORES]
    expr = compute_scores(con.table("orders"), fields, order_scores, as_of=date(2025, 1, 1),
                          items=con.table("items"), item_fields={"Quantity": "qty", "ProductCategory": "category"})
    t0 = time.perf_counter()
    con.create_table("scores", expr)
    seconds = time.perf_counter() - t0
    n = con.table("scores").count().execute()
    cols = len([c for c in con.table("scores").columns if c.startswith("score_")])
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{len(order_scores)} order score groups ({cols} columns) for {n:,} customers from "
          f"{args.orders:,} orders: {seconds:.2f} s ({args.orders / seconds:,.0f} orders/s)")

    orders = con.table("orders")
    spans = orders.select(_customer=orders._customer, _start=orders.day.cast("timestamp"),
                          _end=(orders.day.cast("timestamp") + ibis.interval(days=1)))
    expr = compute_engagement(con.table("events"), {"EventTime": "at", "EventName": "name"},
                              as_of=date(2025, 1, 1), orders=spans)
    t0 = time.perf_counter()
    con.create_table("engagement", expr)
    seconds = time.perf_counter() - t0
    n = con.table("engagement").count().execute()
    print(f"{len(EVENT_SCORES)} event score group (engagement) for {n:,} customers from {args.events:,} events: "
          f"{seconds:.2f} s ({args.events / seconds:,.0f} events/s)")
    print(f"peak RSS: {peak:,.0f} MB")


if __name__ == "__main__":
    main()
