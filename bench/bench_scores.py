"""Score library benchmark: every library score for N customers from M orders (and their lines)
and E events, against the same work written as plain DuckDB SQL.

The data is generated once into a DuckDB file under ``.bench/`` (random customers, dates, amounts,
discounts, stores, channels, 1-4 lines per order with a category; page views, e-mail opens and
clicks, cart additions), written as a workspace writes its tables (text columns plain, orders and
events in time order). Two sides then run, each in a fresh process of its own (its peak RSS is its
own), alternately ``--rounds`` times (the best of each is kept), on that file with a workspace's
memory cap (``DEFAULT_MEMORY_LIMIT``, or ``TESSERA_DUCKDB_MEMORY_LIMIT``):

* **tessera**: the order scores (``compute_scores``) in one table and the engagement group
  (``compute_engagement``) in another, as the enrichment step builds them;
* **bare**: the same columns as hand-written DuckDB SQL (two ``CREATE TABLE ... AS``).

Prints each side's time, CPU and peak RSS, the ratios, and the customers of both.

    .venv/bin/python bench/bench_scores.py --customers 1000000 --orders 5000000 --events 5000000
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
import traceback
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from peak_rss import PeakRSS, run_in_child  # noqa: E402
from rounds import best_of_rounds  # noqa: E402

AS_OF = date(2025, 1, 1)
TARGET_SECONDS = 10.0
TARGET_PEAK_MB = 2048
FIELDS = {"OrderDate": "day", "OrderAmount": "amount", "DiscountAmount": "discount", "Store": "store",
          "Channel": "channel"}
ITEM_FIELDS = {"Quantity": "qty", "ProductCategory": "category"}


def _generate(path: Path, customers: int, orders: int, events: int) -> None:
    from tessera.engine.duckdb import DuckDBAdapter

    adapter = DuckDBAdapter(str(path))
    raw = adapter.raw
    t0 = time.perf_counter()
    raw.execute(f"""
        CREATE TABLE orders AS
        SELECT 'O' || i AS _order,
               'C' || (hash(i * 7919) % {customers}) AS _customer,
               DATE '2020-01-01' + CAST(hash(i * 31) % 1800 AS INTEGER) AS day,
               round(5 + (hash(i * 17) % 30000) / 100.0, 2) AS amount,
               CASE WHEN hash(i * 13) % 5 = 0 THEN round((hash(i * 19) % 2000) / 100.0, 2) ELSE 0 END AS discount,
               'S' || (hash(i * 23) % 40) AS store,
               CASE hash(i * 29) % 3 WHEN 0 THEN 'web' WHEN 1 THEN 'app' ELSE 'pos' END AS channel
        FROM range({orders}) t(i) ORDER BY day""")
    raw.execute("""
        CREATE TABLE items AS
        SELECT _order, CAST(1 + (hash(_order || l) % 3) AS INTEGER) AS qty,
               (['Luminaires', 'Textile', 'Cuisine', 'Décoration', 'Mobilier', 'Jardin'])[CAST(1 + hash(_order || l) % 6 AS INTEGER)]
                   AS category
        FROM orders CROSS JOIN range(4) r(l)
        WHERE l <= hash(_order) % 4""")
    raw.execute(f"""
        CREATE TABLE events AS
        SELECT 'C' || (hash(i * 104729) % {customers}) AS _customer,
               TIMESTAMP '2024-10-01' + to_seconds(CAST(hash(i * 37) % (92 * 86400) AS BIGINT)) AS at,
               (['Page Viewed', 'Page Viewed', 'Email Opened', 'Email Clicked', 'Product Added'])
                   [CAST(1 + hash(i * 41) % 5 AS INTEGER)] AS name
        FROM range({events}) t(i) ORDER BY 2""")
    raw.execute("CHECKPOINT")
    n_items = raw.execute("SELECT count(*) FROM items").fetchone()[0]
    adapter.close()
    print(f"generated {orders:,} orders, {n_items:,} lines and {events:,} events in "
          f"{time.perf_counter() - t0:.1f} s ({path})")


def _tessera(db: str, queue) -> None:
    try:
        with PeakRSS() as rss:
            import ibis

            from tessera.engine.duckdb import DuckDBAdapter
            from tessera.enrich.engagement import compute_engagement
            from tessera.enrich.scores import EVENT_SCORES, LIBRARY, compute_scores

            adapter = DuckDBAdapter(db)
            t0, c0 = time.perf_counter(), time.process_time()
            order_scores = [s for s in LIBRARY if s not in EVENT_SCORES]
            expr = compute_scores(adapter.table("orders"), FIELDS, order_scores, as_of=AS_OF,
                                  items=adapter.table("items"), item_fields=ITEM_FIELDS)
            with adapter.shared_parts_recomputed():  # as the enrichment step creates its table
                adapter.create_table("t_scores", expr)
            orders_wall, orders_cpu = time.perf_counter() - t0, time.process_time() - c0
            orders = adapter.table("orders")
            spans = orders.select(_customer=orders._customer, _start=orders.day.cast("timestamp"),
                                  _end=(orders.day.cast("timestamp") + ibis.interval(days=1)))
            expr = compute_engagement(adapter.table("events"), {"EventTime": "at", "EventName": "name"},
                                      as_of=AS_OF, orders=spans)
            with adapter.shared_parts_recomputed():
                adapter.create_table("t_engagement", expr)
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            scores = adapter.table("t_scores")
            columns = len([c for c in scores.columns if c.startswith("score_")])
            n, n_eng = adapter.count(scores), adapter.count(adapter.table("t_engagement"))
            adapter.drop_table("t_scores")
            adapter.drop_table("t_engagement")
            adapter.close()
        queue.put({"wall": wall, "cpu": cpu, "orders_wall": orders_wall, "orders_cpu": orders_cpu,
                   "customers": n, "engaged": n_eng, "columns": columns, "groups": len(order_scores),
                   "peak": rss.peak})
    except BaseException:
        queue.put({"error": traceback.format_exc()})


# The bare side: the same columns as plain DuckDB SQL.
BARE_ORDERS_SQL = """
CREATE TABLE b_scores AS
WITH o AS (
    SELECT _customer, _order, day::DATE AS d, amount::DECIMAL(18, 4) AS amt,
           coalesce(discount::DECIMAL(18, 4), 0) AS disc, store::VARCHAR AS store, channel::VARCHAR AS channel
    FROM orders WHERE _customer IS NOT NULL),
base AS (
    SELECT _customer, count(*) AS n, min(d) AS first, max(d) AS last, sum(amt)::DOUBLE AS total,
           count(*) FILTER (WHERE disc > 0) AS nd, sum(amt + disc)::DOUBLE AS gross, sum(disc)::DOUBLE AS discount,
           arg_min(store, strftime(d, '%Y%m%d') || _order) FILTER (WHERE store IS NOT NULL) AS first_store,
           arg_max(store, strftime(d, '%Y%m%d') || _order) FILTER (WHERE store IS NOT NULL) AS last_store
    FROM o GROUP BY _customer),
s AS (
    SELECT *, date_diff('day', last, DATE '{as_of}') AS since,
           CASE WHEN n > 1 THEN date_diff('day', first, last) / (n - 1) END AS gap,
           least(greatest(ceil(cume_dist() OVER (ORDER BY date_diff('day', last, DATE '{as_of}') DESC) * 5), 1), 5)::BIGINT AS r,
           least(greatest(ceil(cume_dist() OVER (ORDER BY n) * 5), 1), 5)::BIGINT AS f,
           least(greatest(ceil(cume_dist() OVER (ORDER BY total) * 5), 1), 5)::BIGINT AS m
    FROM base),
per_store AS (SELECT _customer, store, count(*) AS k, max(d) AS recent FROM o WHERE store IS NOT NULL GROUP BY ALL),
stores AS (
    SELECT _customer, max(store) FILTER (WHERE rk = 1) AS favorite,
           array_to_string(list_sort(list(store)), ', ') AS all_, count(*) AS cnt
    FROM (SELECT *, row_number() OVER (PARTITION BY _customer ORDER BY k DESC, recent DESC, store) AS rk
          FROM per_store) GROUP BY _customer),
per_channel AS (SELECT _customer, channel, count(*) AS k, max(d) AS recent FROM o WHERE channel IS NOT NULL GROUP BY ALL),
channels AS (
    SELECT _customer, max(channel) FILTER (WHERE rk = 1) AS favorite, count(*) AS cnt
    FROM (SELECT *, row_number() OVER (PARTITION BY _customer ORDER BY k DESC, recent DESC, channel) AS rk
          FROM per_channel) GROUP BY _customer),
it AS (SELECT o._customer, i._order, i.qty, i.category::VARCHAR AS category FROM items i JOIN orders o USING (_order)
       WHERE o._customer IS NOT NULL),
per_cat AS (SELECT _customer, category, count(*) AS k FROM it WHERE category IS NOT NULL GROUP BY ALL),
cats AS (
    SELECT _customer, array_to_string(list_sort(list(category)), ', ') AS all_,
           concat_ws(', ', max(category) FILTER (WHERE rk = 1), max(category) FILTER (WHERE rk = 2),
                     max(category) FILTER (WHERE rk = 3)) AS top3, count(*) AS cnt
    FROM (SELECT *, row_number() OVER (PARTITION BY _customer ORDER BY k DESC, category) AS rk FROM per_cat)
    GROUP BY _customer),
qty AS (SELECT _customer, sum(coalesce(qty, 0))::DOUBLE AS total, count(DISTINCT _order) AS orders FROM it GROUP BY _customer)
SELECT s._customer,
       s.first AS score_first_order_date, s.last AS score_last_order_date, s.since AS score_days_since_last_order,
       s.n AS score_total_order_count, s.total AS score_orders_total_amount, s.total / s.n AS score_average_order_value,
       s.gap AS score_average_days_between_orders, s.n > 1 AS score_multi_buyer,
       date_diff('day', s.first, DATE '{as_of}') <= 90 AS score_new_customer, s.n >= 3 AS score_regular_customer,
       s.since <= 365 AS score_active_customer,
       s.r AS score_rfm_recency, s.f AS score_rfm_frequency, s.m AS score_rfm_monetary,
       s.r::VARCHAR || s.f::VARCHAR || s.m::VARCHAR AS score_rfm,
       CASE {segments} ELSE 'Need Attention' END AS score_rfm_segment,
       CASE WHEN s.gap > 0 THEN s.since / s.gap END AS score_purchase_timing_ratio,
       CASE WHEN NOT s.gap > 0 OR s.gap IS NULL THEN NULL WHEN s.since / s.gap < 0.8 THEN 'recent purchase'
            WHEN s.since / s.gap < 1.2 THEN 'upcoming purchase' WHEN s.since / s.gap < 2.0 THEN 'overdue'
            ELSE 'significantly overdue' END AS score_purchase_timing,
       s.nd AS score_discounted_order_count, s.nd / s.n AS score_discounted_order_rate,
       CASE WHEN s.gross > 0 THEN s.discount / s.gross ELSE 0 END AS score_average_discount_rate,
       st.favorite AS score_favorite_store, st.all_ AS score_stores, st.cnt AS score_store_count,
       s.first_store AS score_first_order_store, s.last_store AS score_last_order_store, st.cnt > 1 AS score_multi_store,
       ch.favorite AS score_favorite_channel, ch.cnt > 1 AS score_omnichannel,
       c.all_ AS score_categories, c.top3 AS score_top3_categories, c.cnt AS score_category_count,
       c.cnt > 1 AS score_multi_category,
       q.total AS score_total_items, q.total / q.orders AS score_average_items_per_order
FROM s LEFT JOIN stores st USING (_customer) LEFT JOIN channels ch USING (_customer)
LEFT JOIN cats c USING (_customer) LEFT JOIN qty q USING (_customer)
"""

BARE_EVENTS_SQL = """
CREATE TABLE b_engagement AS
WITH e AS (
    SELECT _customer, "at" AS t, lower(trim(name)) AS name,
           "at"::DATE > DATE '{as_of}' - 30 AND "at"::DATE <= DATE '{as_of}' AS in_
    FROM events WHERE "at" IS NOT NULL AND "at" < DATE '{as_of}' + 1 AND _customer IS NOT NULL),
agg AS (
    SELECT _customer, max(t) AS last_seen,
           count(*) FILTER (WHERE in_ AND name IN ('page viewed', 'screen viewed')) AS pages,
           count(*) FILTER (WHERE in_ AND name LIKE '%email%' AND name LIKE '%open%') AS opens,
           count(*) FILTER (WHERE in_ AND name LIKE '%email%' AND name LIKE '%click%') AS clicks
    FROM e GROUP BY _customer),
sessions AS (
    SELECT _customer, count(*) FILTER (WHERE prev IS NULL OR t >= prev + INTERVAL 30 MINUTE) AS n
    FROM (SELECT _customer, t, lag(t) OVER (PARTITION BY _customer ORDER BY t) AS prev
          FROM e WHERE in_ AND name NOT LIKE '%email%')
    GROUP BY _customer),
carts AS (
    SELECT _customer, t FROM (
        SELECT _customer, t, in_, lead(t) OVER (PARTITION BY _customer ORDER BY t) AS next
        FROM e WHERE name IN ('product added', 'cart viewed', 'checkout started'))
    WHERE in_ AND (next IS NULL OR next > t + INTERVAL 24 HOUR) AND t + INTERVAL 24 HOUR < DATE '{as_of}' + 1),
bought AS (
    SELECT _customer, t AS s, t AS e FROM e WHERE name = 'order completed'
    UNION ALL SELECT _customer, day::TIMESTAMP, day::TIMESTAMP + INTERVAL 1 DAY FROM orders),
abandoned AS (
    SELECT _customer, count(*) AS n FROM carts c
    WHERE NOT EXISTS (SELECT 1 FROM bought b WHERE b._customer = c._customer AND b.e >= c.t
                      AND b.s <= c.t + INTERVAL 24 HOUR)
    GROUP BY _customer)
SELECT a._customer, a.last_seen AS score_last_seen, a.pages AS score_page_views_30d,
       coalesce(s.n, 0) AS score_sessions_30d, a.opens AS score_email_opens_30d, a.clicks AS score_email_clicks_30d,
       coalesce(c.n, 0) AS score_abandoned_carts_30d,
       (greatest(30 - date_diff('day', a.last_seen::DATE, DATE '{as_of}'), 0) + 5 * least(coalesce(s.n, 0), 5)
        + 2 * least(a.pages, 10) + 5 * least(a.clicks, 3) + 2 * least(a.opens, 5))::BIGINT AS score_engagement
FROM agg a LEFT JOIN sessions s USING (_customer) LEFT JOIN abandoned c USING (_customer)
"""


def _bare(db: str, queue) -> None:
    try:
        with PeakRSS() as rss:
            import duckdb

            from tessera.engine.duckdb import DEFAULT_MEMORY_LIMIT
            from tessera.enrich.scores import RFM_SEGMENTS

            con = duckdb.connect(db)
            limit = os.environ.get("TESSERA_DUCKDB_MEMORY_LIMIT") or DEFAULT_MEMORY_LIMIT
            con.execute(f"SET memory_limit = '{limit}'")
            con.execute("SET preserve_insertion_order = false")
            segments = " ".join(
                f"WHEN s.r BETWEEN {rlo} AND {rhi} AND (s.f + s.m) / 2 BETWEEN {flo} AND {fhi} "
                f"THEN '{name.replace(chr(39), chr(39) * 2)}'"
                for name, (rlo, rhi), (flo, fhi) in RFM_SEGMENTS)
            t0, c0 = time.perf_counter(), time.process_time()
            con.execute(BARE_ORDERS_SQL.format(as_of=AS_OF, segments=segments))
            orders_wall, orders_cpu = time.perf_counter() - t0, time.process_time() - c0
            con.execute(BARE_EVENTS_SQL.format(as_of=AS_OF))
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            n = con.execute("SELECT count(*) FROM b_scores").fetchone()[0]
            n_eng = con.execute("SELECT count(*) FROM b_engagement").fetchone()[0]
            con.execute("DROP TABLE b_scores")
            con.execute("DROP TABLE b_engagement")
            con.close()
        queue.put({"wall": wall, "cpu": cpu, "orders_wall": orders_wall, "orders_cpu": orders_cpu,
                   "customers": n, "engaged": n_eng, "peak": rss.peak})
    except BaseException:
        queue.put({"error": traceback.format_exc()})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--customers", type=int, default=1_000_000)
    ap.add_argument("--orders", type=int, default=5_000_000)
    ap.add_argument("--events", type=int, default=5_000_000)
    ap.add_argument("--rounds", type=int, default=1, help="alternated runs of each side (the best is kept)")
    ap.add_argument("--data", type=Path, default=ROOT / ".bench")
    args = ap.parse_args()

    data = args.data / f"scores_{args.customers}_{args.orders}_{args.events}.duckdb"
    if not data.exists():
        data.parent.mkdir(parents=True, exist_ok=True)
        part = data.with_suffix(".part")
        part.unlink(missing_ok=True)
        _generate(part, args.customers, args.orders, args.events)
        part.rename(data)
    load_before = os.getloadavg()

    def side(target):
        def run(tmp: Path) -> dict:
            db = tmp / "scores.duckdb"  # a copy per run: the generated file stays as generated
            shutil.copyfile(data, db)
            return run_in_child(target, str(db))
        return run

    best = best_of_rounds(args.rounds, {"bare": side(_bare), "tessera": side(_tessera)})
    load_after = os.getloadavg()
    t, b = best["tessera"], best["bare"]
    ev_wall, ev_cpu = t["wall"] - t["orders_wall"], t["cpu"] - t["orders_cpu"]
    print(f"{t['groups']} order score groups ({t['columns']} columns) for {t['customers']:,} customers from "
          f"{args.orders:,} orders: {t['orders_wall']:.2f} s ({t['orders_cpu']:.2f} s CPU, "
          f"{args.orders / t['orders_wall']:,.0f} orders/s); bare SQL {b['orders_wall']:.2f} s "
          f"({b['orders_cpu']:.2f} s CPU), {b['customers']:,} customers")
    print(f"engagement for {t['engaged']:,} customers from {args.events:,} events: {ev_wall:.2f} s "
          f"({ev_cpu:.2f} s CPU); bare SQL {b['wall'] - b['orders_wall']:.2f} s "
          f"({b['cpu'] - b['orders_cpu']:.2f} s CPU), {b['engaged']:,} customers")
    print(f"every library score: {t['wall']:.2f} s ({t['cpu']:.2f} s CPU), peak RSS {t['peak'] / 2**20:,.0f} MB")
    print(f"bare DuckDB SQL: {b['wall']:.2f} s ({b['cpu']:.2f} s CPU), peak RSS {b['peak'] / 2**20:,.0f} MB")
    print(f"ratio tessera / bare: time {t['wall'] / b['wall']:.2f}x (CPU {t['cpu'] / b['cpu']:.2f}x), "
          f"peak RSS {t['peak'] / b['peak']:.2f}x")
    peak_mb = t["peak"] / 2**20
    print(f"target <= {TARGET_SECONDS:.0f} s and peak <= {TARGET_PEAK_MB:,} MB: time "
          f"{'met' if t['wall'] <= TARGET_SECONDS else 'not met'} ({t['wall']:.1f} s), peak "
          f"{'met' if peak_mb <= TARGET_PEAK_MB else 'not met'} ({peak_mb:,.0f} MB)")
    print(f"{os.cpu_count()} CPUs; load average before: {load_before[0]:.2f} / {load_before[1]:.2f} / "
          f"{load_before[2]:.2f}, after: {load_after[0]:.2f} / {load_after[1]:.2f} / {load_after[2]:.2f} "
          "(1 / 5 / 15 min)")


if __name__ == "__main__":
    main()
