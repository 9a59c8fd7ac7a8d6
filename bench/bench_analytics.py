"""Benchmark of the dashboards on the embedded DuckDB warehouse.

Builds a workspace whose published datasets are generated in the warehouse (contacts with the
score columns the default dashboards read, orders, order lines, products; segment members), then
measures through the Workspace facade:

0. the preparation the server queues after each run: every dashboard computed without filters and
   kept in the metadata store (``Analytics.prepare``, :mod:`tessera.analytics.prepared`);
1. each default dashboard, cold (the process's result cache emptied before each repeat: the first
   view after a run, served by what was prepared) and warm (cached), p50/p95; the web page of
   those with ready-made analyses (drawn before them); then with the period, store and segment
   filters (computed when asked: nothing is prepared for them);
2. a custom chart crossing two dimensions (orders by channel and the customer's age band, through
   the link to the contacts): read from the order facts built by the preparation (the orders
   joined once to their customers, :mod:`tessera.analytics.facts`), and joined as before the
   preparation (the same chart without the facts);
3. the choices of the filters, a PNG drawn on the server (uncached, cached, and vl-convert's own
   steps: Vega-Lite to SVG, SVG to PNG), and the CSV of a 1-row-per-order question (every row,
   streamed).

The machine's load average is printed at the start and the end: the figures are wall-clock times
on shared cores.

The issue's targets are at 1M customers and 5M orders: dashboard p95 <= 1 s cold and <= 300 ms
warm; custom two-dimension chart <= 500 ms; filter values <= 200 ms; PNG <= 500 ms; 1M-row CSV
<= 5 s. Each figure is printed beside a bare baseline run in the same process: revenue by month
written by hand as one SQL query on the same DuckDB connection.

    python bench/bench_analytics.py [--customers 100000] [--orders 500000] [--repeat 3] [--workspace DIR]

``--workspace DIR`` keeps the generated workspace in DIR and reuses it when it is already there
(generating 1M customers and 5M orders takes minutes).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from peak_rss import PeakRSS

import tessera.analytics.dashboards as dashboards
import tessera.analytics.facts as facts
import tessera.analytics.prepared as prepared
from tessera.analytics import NAMES, render
from tessera.analytics.charts import VL_VERSION
from tessera.workspace import Workspace

AS_OF = date(2024, 12, 31)
SCORES = ["rfm", "purchase_timing", "order_stats", "stores", "channels", "categories", "items"]

CONFIG = {
    "connections": [{"name": "files", "type": "local", "path": "."}],
    "sources": [
        {"name": "people", "connection": "files", "pattern": "people.csv", "record_keys": ["id"]},
        {"name": "sales", "connection": "files", "pattern": "sales.csv", "record_keys": ["order_id"],
         "relations": [{"column": "email", "to": "contacts.email"}]},
        {"name": "lines", "connection": "files", "pattern": "lines.csv", "record_keys": ["order_id", "line_no"],
         "relations": [{"column": "order_id", "to": "sales.order_id"},
                       {"column": "product_id", "to": "catalog.product_id"}]},
        {"name": "catalog", "connection": "files", "pattern": "products.csv", "record_keys": ["product_id"]},
    ],
    "datasets": [
        {"name": "contacts", "deduplicate": True, "identity_keys": [{"column": "email"}],
         "columns": [{"name": "email", "semantic": "Email"}, {"name": "phone", "semantic": "Phone"},
                     {"name": "birth_date", "semantic": "BirthDate"}, {"name": "gender", "semantic": "Gender"},
                     {"name": "city", "semantic": "City"}, {"name": "country", "semantic": "Country"},
                     {"name": "email_optin", "semantic": "EmailOptIn"}],
         "mappings": [{"source": "people", "columns": {c: c for c in (
             "email", "phone", "birth_date", "gender", "city", "country", "email_optin")}}],
         "scores": {"library": SCORES, "predictive": True}},
        {"name": "orders",
         "columns": [{"name": "order_date", "semantic": "OrderDate"}, {"name": "amount", "semantic": "OrderAmount"},
                     {"name": "discount", "semantic": "DiscountAmount"}, {"name": "channel", "semantic": "Channel"},
                     {"name": "store_id", "semantic": "Store"}],
         "mappings": [{"source": "sales", "columns": {c: c for c in (
             "order_id", "order_date", "amount", "discount", "channel", "store_id")}}]},
        {"name": "order_items", "columns": [{"name": "quantity", "semantic": "Quantity"},
                                            {"name": "product_id", "semantic": "ProductId"}],
         "mappings": [{"source": "lines", "columns": {c: c for c in ("order_id", "line_no", "product_id",
                                                                      "quantity")}}]},
        {"name": "products", "columns": [{"name": "category", "semantic": "ProductCategory"},
                                         {"name": "name", "semantic": "ProductName"}],
         "mappings": [{"source": "catalog", "columns": {"product_id": "product_id", "name": "name",
                                                        "category": "category"}}]},
    ],
    "segments": [{"name": "big", "conditions": [{"column": "score_orders_total_amount", "op": ">=",
                                                 "value": 1000}]}],
    "pipeline": {"as_of": AS_OF.isoformat()},
}

BARE_SQL = ("SELECT date_trunc('month', order_date) AS m, sum(amount) FROM orders GROUP BY 1 ORDER BY 1")


def build(ws: Workspace, customers: int, orders: int) -> None:
    """Published datasets generated in the warehouse (the benchmark's fixture)."""
    a = ws.adapter
    a.sql(f"""CREATE OR REPLACE TABLE bench_orders AS
        SELECT 'O' || CAST(i AS VARCHAR) AS tessera_id, 'o' || CAST(i AS VARCHAR) AS order_id,
               CASE WHEN hash(i * 3) % 20 = 0 THEN NULL
                    ELSE 'T' || lpad(CAST(hash(i) % {customers} AS VARCHAR), 9, '0') END AS tessera_contacts_id,
               TIMESTAMP '2020-01-01' + to_seconds(CAST(hash(i * 11) % 157766400 AS BIGINT)) AS order_date,
               CAST(1000 + hash(i * 5) % 40000 AS DOUBLE) / 100 AS amount,
               CASE WHEN hash(i * 7) % 6 = 0 THEN CAST(hash(i * 13) % 2000 AS DOUBLE) / 100 ELSE 0 END AS discount,
               CASE WHEN hash(i * 17) % 3 = 0 THEN (['web', 'app'])[1 + CAST(hash(i * 19) % 2 AS INTEGER)] END
                   AS channel,
               CASE WHEN hash(i * 17) % 3 <> 0 THEN 'S' || lpad(CAST(1 + hash(i * 23) % 12 AS VARCHAR), 2, '0') END
                   AS store_id
        FROM range({orders}) t(i)""")
    a.sql("""CREATE OR REPLACE TABLE bench_items AS
        SELECT 'L' || o.order_id || '-' || CAST(k AS VARCHAR) AS tessera_id, o.order_id, k AS line_no,
               o.tessera_id AS tessera_orders_id, 'P' || CAST(hash(o.order_id || k) % 500 AS VARCHAR) AS product_id,
               'P' || CAST(hash(o.order_id || k) % 500 AS VARCHAR) AS tessera_products_id,
               CAST(1 + hash(o.order_id) % 3 AS BIGINT) AS quantity
        FROM bench_orders o, range(1 + CAST(hash(o.order_id) % 2 AS INTEGER)) r(k)""")
    a.sql("""CREATE OR REPLACE TABLE bench_products AS
        SELECT 'P' || CAST(i AS VARCHAR) AS tessera_id, 'P' || CAST(i AS VARCHAR) AS product_id,
               'Product ' || CAST(i AS VARCHAR) AS name,
               (['Kitchen', 'Decoration', 'Textile', 'Garden', 'Lighting', 'Bath'])[1 + i % 6] AS category
        FROM range(500) t(i)""")
    a.sql(f"""CREATE OR REPLACE TABLE bench_per AS
        SELECT tessera_contacts_id AS id, count(*) AS n, sum(amount) AS total, min(order_date) AS first,
               max(order_date) AS last, count(DISTINCT store_id) AS stores, count(DISTINCT channel) AS channels,
               mode(store_id) AS fav_store
        FROM bench_orders WHERE tessera_contacts_id IS NOT NULL GROUP BY 1""")
    a.sql(f"""CREATE OR REPLACE TABLE bench_contacts AS
        SELECT 'T' || lpad(CAST(i AS VARCHAR), 9, '0') AS tessera_id,
               'c' || CAST(i AS VARCHAR) || '@example.com' AS email,
               CASE WHEN hash(i * 29) % 5 <> 0 THEN '+336' || lpad(CAST(i AS VARCHAR), 8, '0') END AS phone,
               CASE WHEN hash(i * 31) % 4 <> 0 THEN DATE '1950-01-01' + CAST(hash(i * 37) % 20000 AS INTEGER) END
                   AS birth_date,
               (['F', 'M', NULL])[1 + CAST(hash(i * 41) % 3 AS INTEGER)] AS gender,
               (['Paris', 'Lyon', 'Lille', 'Nantes', 'Nice', 'Brussels', NULL])[1 + CAST(hash(i * 43) % 7 AS INTEGER)]
                   AS city,
               (['FR', 'FR', 'FR', 'BE', 'ES'])[1 + CAST(hash(i * 47) % 5 AS INTEGER)] AS country,
               hash(i * 53) % 2 = 0 AS email_optin,
               p.n AS score_total_order_count, p.total AS score_orders_total_amount,
               p.total / p.n AS score_average_order_value, CAST(p.first AS DATE) AS score_first_order_date,
               CAST(p.last AS DATE) AS score_last_order_date,
               CASE WHEN p.n > 1 THEN date_diff('day', p.first, p.last) / (p.n - 1) END
                   AS score_average_days_between_orders,
               CASE WHEN p.n IS NOT NULL THEN 1 + CAST(hash(i * 59) % 5 AS BIGINT) END AS score_rfm_recency,
               CASE WHEN p.n IS NOT NULL THEN 1 + CAST(hash(i * 61) % 5 AS BIGINT) END AS score_rfm_frequency,
               CASE WHEN p.n IS NOT NULL THEN (['Champions', 'Loyal Customers', 'At Risk', 'Hibernating',
                   'New Customers', 'Need Attention'])[1 + CAST(hash(i * 67) % 6 AS INTEGER)] END AS score_rfm_segment,
               CASE WHEN p.n > 1 THEN (['recent purchase', 'on time', 'overdue', 'significantly overdue'])
                   [1 + CAST(hash(i * 71) % 4 AS INTEGER)] END AS score_purchase_timing,
               CASE WHEN p.n IS NOT NULL THEN CAST(hash(i * 73) % 1000 AS DOUBLE) / 1000 END AS score_churn_risk,
               p.fav_store AS score_favorite_store, p.stores > 1 AS score_multi_store,
               p.channels > 0 AND p.stores > 0 AS score_omnichannel,
               CASE WHEN p.n IS NOT NULL THEN 1 + CAST(hash(i * 79) % 4 AS BIGINT) END AS score_category_count,
               CASE WHEN p.n IS NOT NULL THEN hash(i * 79) % 4 > 0 END AS score_multi_category
        FROM range({customers}) t(i)
        LEFT JOIN bench_per p ON p.id = 'T' || lpad(CAST(i AS VARCHAR), 9, '0')""")
    a.sql("""CREATE OR REPLACE TABLE bench_members AS
        SELECT 'big' AS segment, tessera_id, TIMESTAMP '2024-12-31' AS entered_at, 1 AS version
        FROM bench_contacts WHERE score_orders_total_amount >= 1000""")
    a.sql("CREATE OR REPLACE TABLE _tessera_segment_members AS SELECT * FROM bench_members")
    a.sql("""CREATE OR REPLACE TABLE _tessera_segment_sizes AS
        SELECT 'big' AS segment, TIMESTAMP '2024-12-31' AS refreshed_at, count(*) AS size, count(*) AS entered,
               0 AS exited, 1 AS version FROM bench_members""")
    a.publish({"contacts": "bench_contacts", "orders": "bench_orders", "order_items": "bench_items",
               "products": "bench_products"})


def timed(fn, repeat: int, before=None) -> list[float]:
    out = []
    for _ in range(repeat):
        if before:
            before()
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def p95(values: list[float]) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(0.95 * (len(values) - 1)))]


def line(what: str, times: list[float], base: float, target: float | None, at_size: bool) -> None:
    p50, p95_ = statistics.median(times), p95(times)
    verdict = ""
    if target is not None:
        verdict = f"  {'meets' if p95_ <= target else 'MISSES'} the target ({target * 1000:.0f} ms" + \
                  ("" if at_size else ", set at 1M customers / 5M orders") + ")"
    print(f"{what:<52} p50 {p50 * 1000:8.1f} ms  p95 {p95_ * 1000:8.1f} ms  (x{p95_ / base:5.1f} bare SQL)"
          f"{verdict}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--orders", type=int, default=500_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workspace", type=Path, default=None,
                        help="keep the generated workspace here and reuse it when it exists")
    args = parser.parse_args()
    at_size = args.customers >= 1_000_000 and args.orders >= 5_000_000
    with tempfile.TemporaryDirectory() as tmp, PeakRSS() as rss:
        path = args.workspace or Path(tmp) / "ws"
        t0 = time.perf_counter()
        ws = Workspace.init(path)  # opens it when it exists
        done = "reused"
        if ws.adapter.published_target("order_items") is None:
            ws.apply(CONFIG)
            build(ws, args.customers, args.orders)
            done = "generated"
        lines = ws.adapter.count(ws.table("order_items"))
        print(f"{ws.adapter.count(ws.table('contacts')):,} customers, {ws.adapter.count(ws.table('orders')):,} "
              f"orders, {lines:,} order lines {done} in {time.perf_counter() - t0:.1f} s (DuckDB)")
        print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
        raw = ws.adapter.raw
        bare = p95(timed(lambda: raw.execute(BARE_SQL).fetchall(), max(5, args.repeat)))
        print(f"{'bare SQL: revenue by month, one query':<52} p95 {bare * 1000:8.1f} ms")
        t0 = time.perf_counter()
        done = ws.analytics().prepare(again=True)
        print(f"{'dashboards prepared (server job after a run)':<52} {time.perf_counter() - t0:8.1f} s for "
              f"{done['charts']} charts of {done['dashboards']} dashboards, the filters' choices and the order "
              f"facts of {', '.join(done.get('facts') or []) or 'no dataset'}")

        def clear() -> None:  # a new process: nothing in memory, what was prepared in the store
            dashboards._CACHE.clear()
            prepared.forget()

        for name in NAMES:
            result = ws.dashboard(name)
            charts = len(result["questions"])
            missing = sum(1 for q in result["questions"] if q.get("unavailable"))
            label = f"{name} ({charts} charts{f', {missing} without data' if missing else ''})"
            line(f"{label}, cold", timed(lambda: ws.dashboard(name), args.repeat, clear), bare, 1.0, at_size)
            line(f"{name}, warm", timed(lambda: ws.dashboard(name), args.repeat), bare, 0.300, at_size)
            if any(q.get("later") for q in ws.dashboard(name, later=True)["questions"]):
                # the web page: drawn without its ready-made analyses, which follow one by one
                line(f"{name}, page before its analyses, cold",
                     timed(lambda: ws.dashboard(name, later=True), args.repeat, clear), bare, 1.0, at_size)
            filters = {"period": "last_12_months", "store": "S01,S02", "segment": "big"}
            line(f"{name}, period + store + segment filters, cold",
                 timed(lambda: ws.dashboard(name, filters), args.repeat, clear), bare, 1.0, at_size)
        custom = {"name": "custom", "dataset": "orders", "chart": "stacked_bar",
                  "dimensions": [{"column": "channel"}, {"column": "contacts.birth_date", "band": "age"}],
                  "measures": [{"fn": "count"}]}
        line("custom chart: orders by channel x customer age band",
             timed(lambda: ws.run_question(custom), args.repeat, clear), bare, 0.500, at_size)
        built = facts.table
        facts.table = lambda adapter, entry: None  # as before the preparation: joined to the customers
        try:
            line("  the same, joined (without the order facts)",
                 timed(lambda: ws.run_question(custom), args.repeat, clear), bare, 0.500, at_size)
        finally:
            facts.table = built
        line("filter values (stores, channels, segments, period), cold",
             timed(lambda: ws.dashboard_filter_values(), args.repeat, clear), bare, 0.200, at_size)
        png = ("sales", "revenue_by_month")
        line("PNG of revenue by month, drawn by vl-convert (cold)",
             timed(lambda: ws.question_picture(png, "png"), args.repeat, clear), bare, 0.500, at_size)
        line("PNG of revenue by month (warm)", timed(lambda: ws.question_picture(png, "png"), args.repeat), bare,
             0.500, at_size)
        drawn = ws.run_question(png)["spec"]
        line("  the same PNG drawn by vl-convert alone (baseline)",
             timed(lambda: render(drawn, "png"), args.repeat), bare, 0.500, at_size)
        import vl_convert as vlc

        wide = {**drawn, "width": 640}
        line("    of which Vega-Lite to SVG (Vega in JavaScript)",
             timed(lambda: vlc.vegalite_to_svg(wide, vl_version=VL_VERSION), args.repeat), bare, None, at_size)
        svg = vlc.vegalite_to_svg(wide, vl_version=VL_VERSION)
        line("    of which SVG to PNG at scale 2 (raster, encoding)",
             timed(lambda: vlc.svg_to_png(svg, scale=2), args.repeat), bare, None, at_size)
        per_order = {"name": "per_order", "dataset": "orders", "chart": "table",
                     "dimensions": [{"column": "order_id"}], "measures": [{"fn": "sum", "column": "amount"}]}
        t0 = time.perf_counter()
        size = rows = 0
        for chunk in ws.question_csv(per_order):
            size += len(chunk)
            rows += chunk.count(b"\n")
        seconds = time.perf_counter() - t0
        target = 5.0 * args.orders / 1_000_000
        print(f"{'CSV, one row per order, streamed':<52} {seconds:8.2f} s for {rows - 1:,} rows "
              f"({(rows - 1) / seconds:,.0f} rows/s, {size / 2**20:.0f} MB)  "
              f"{'meets' if seconds <= target else 'MISSES'} the target (5 s per 1M rows)")
        print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
        ws.close()
    print(f"peak RSS {rss.peak / 2**20:,.0f} MB (start {rss.start / 2**20:,.0f} MB)")


if __name__ == "__main__":
    main()
