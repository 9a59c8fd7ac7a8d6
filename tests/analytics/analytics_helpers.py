"""A small fixed shop for the analytics tests: 8 contacts, 14 orders, their lines and products, and
the same rows read back in plain Python so every expected figure is computed independently."""

from __future__ import annotations

import csv
import io
import math
import textwrap
import uuid
from collections import defaultdict
from datetime import date
from pathlib import Path

import pytest

from tessera.enrich.scores import RFM_SEGMENTS
from tessera.workspace import Workspace

AS_OF = date(2024, 12, 31)

CONFIG = """
connections: [{name: files, type: local, path: data}]
sources:
  - name: people
    connection: files
    pattern: people.csv
    record_keys: [id]
    types: {birth: date, optin: boolean}
  - name: sales
    connection: files
    pattern: sales.csv
    record_keys: [order_id]
    types: {day: date, amount: float, discount: float}
    relations: [{column: email, to: contacts.email}]
  - name: lines
    connection: files
    pattern: lines.csv
    record_keys: [order_id, line_no]
    types: {line_no: integer, quantity: integer}
    relations: [{column: order_id, to: sales.order_id}, {column: product_id, to: catalog.product_id}]
  - name: catalog
    connection: files
    pattern: products.csv
    record_keys: [product_id]
datasets:
  - name: contacts
    deduplicate: true
    identity_keys: [{column: email}]
    columns:
      - {name: email, semantic: Email}
      - {name: city, semantic: City}
      - {name: country, semantic: Country}
      - {name: gender, semantic: Gender}
      - {name: birth, semantic: BirthDate}
      - {name: optin, semantic: EmailOptIn}
    mappings:
      - source: people
        columns: {email: email, name: name, city: city, country: country, gender: gender, birth: birth,
                  optin: optin}
    scores: {library: [rfm, order_stats, purchase_timing, stores, channels, categories, items]}
  - name: orders
    columns:
      - {name: day, semantic: OrderDate}
      - {name: amount, semantic: OrderAmount}
      - {name: discount, semantic: DiscountAmount}
      - {name: channel, semantic: Channel}
      - {name: store, semantic: Store}
    mappings: [{source: sales, columns: {order_id: order_id, day: day, amount: amount, discount: discount,
                                         channel: channel, store: store}}]
  - name: order_items
    columns: [{name: quantity, semantic: Quantity}, {name: product_id, semantic: ProductId}]
    mappings: [{source: lines, columns: {order_id: order_id, line_no: line_no, product_id: product_id,
                                         quantity: quantity}}]
  - name: products
    columns: [{name: category, semantic: ProductCategory}, {name: name, semantic: ProductName}]
    mappings: [{source: catalog, columns: {product_id: product_id, name: name, category: category}}]
segments:
  - name: big_spenders
    conditions: [{aggregate: sum, from: orders, column: amount, op: ">=", value: 300}]
pipeline: {as_of: 2024-12-31}
"""

DASHBOARDS = """
dashboards:
  - name: my_sales
    title: My sales
    filters: [period, channel]
    questions:
      - name: by_channel_and_age
        title: Orders by channel and age of the customer
        dataset: orders
        dimensions: [{column: channel}, {column: contacts.birth, band: age}]
        measures: [{fn: count, label: orders}]
        chart: stacked_bar
      - name: revenue
        dataset: orders
        measures: [{fn: sum, column: amount, label: revenue}]
        chart: number
"""

PEOPLE = """id,email,name,city,country,gender,birth,optin
1,ana@example.com,Ana,Paris,FR,F,1990-01-05,true
2,bo@example.com,Bo,Lyon,FR,M,2005-12-31,false
3,cy@example.com,Cy,Paris,FR,F,1980-02-29,true
4,di@example.com,Di,Lille,FR,F,1996-07-14,
5,ed@example.com,Ed,Brussels,BE,M,1963-01-20,false
6,fa@example.com,Fa,,BE,,1972-12-31,true
7,gu@example.com,Gu,Paris,FR,M,,true
8,ha@example.com,Ha,Nice,FR,F,2008-03-01,false
"""

SALES = """order_id,email,day,amount,discount,channel,store
o01,ana@example.com,2024-12-10,100.50,0,web,
o02,ana@example.com,2024-11-02,40,5,shop,S1
o03,ana@example.com,2023-05-01,60,0,web,
o04,bo@example.com,2024-12-30,10,0,app,
o05,cy@example.com,2022-01-01,500,50,shop,S2
o06,ed@example.com,2024-10-15,200,0,shop,S1
o07,ed@example.com,2024-10-20,250.25,20,shop,S2
o08,ed@example.com,2024-12-01,75,0,web,
o09,fa@example.com,2024-12-24,33.30,0,app,
o10,ha@example.com,2024-11-30,12,2,shop,S1
o11,ha@example.com,2024-12-02,18,0,web,
o12,di@example.com,2024-10-01,90,0,shop,S2
o13,,2024-12-15,22,0,shop,S1
o14,gu@example.com,2024-11-11,145,10,web,
"""

LINES = """order_id,line_no,product_id,quantity
o01,1,p1,2
o01,2,p2,1
o02,1,p3,4
o04,1,p1,1
o05,1,p2,3
o05,2,p3,1
o06,1,p4,2
o07,1,p1,5
o08,1,p3,1
o10,1,p4,1
o13,1,p2,2
"""

PRODUCTS = """product_id,name,category
p1,Mug,Kitchen
p2,Plate,Kitchen
p3,Candle,Decoration
p4,Cushion,Textile
"""

FILES = {"people.csv": PEOPLE, "sales.csv": SALES, "lines.csv": LINES, "products.csv": PRODUCTS}


def rows(text: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(text)))


def age(birth: str) -> int | None:
    if not birth:
        return None
    b = date.fromisoformat(birth)
    return AS_OF.year - b.year - ((AS_OF.month, AS_OF.day) < (b.month, b.day))


def age_band(birth: str) -> str:
    a = age(birth)
    if a is None:
        return "unknown"
    for lo, hi, label in [(None, 18, "under 18"), (18, 25, "18-24"), (25, 35, "25-34"), (35, 45, "35-44"),
                          (45, 55, "45-54"), (55, 65, "55-64"), (65, None, "65 and over")]:
        if (lo is None or a >= lo) and (hi is None or a < hi):
            return label
    raise AssertionError(a)


def people() -> dict[str, dict]:
    return {p["email"]: p for p in rows(PEOPLE)}


def make(folder: Path, engine: str = "duckdb", dashboards: bool = True) -> Workspace:
    data = folder / "data"
    data.mkdir(parents=True, exist_ok=True)
    for name, text in FILES.items():
        (data / name).write_text(text)
    (folder / "w.yaml").write_text(textwrap.dedent(CONFIG) + (textwrap.dedent(DASHBOARDS) if dashboards else ""))
    ws = Workspace.init(folder / "ws", warehouse=engine)
    ws.apply(folder / "w.yaml")
    return ws


#: the engines of a module's workspace fixture (``params=ENGINES``, see :func:`engine_workspace`)
ENGINES = ["duckdb", pytest.param("spark", marks=pytest.mark.spark),
           pytest.param("postgres", marks=pytest.mark.postgres)]


def engine_workspace(request, tmp_path_factory, prefix: str) -> Workspace:
    """The shop on the engine of a module fixture's parameter (one of :data:`ENGINES`: Spark's
    session and PostgreSQL's server are started by their fixtures), run once."""
    engine = request.param
    if engine == "spark":
        request.getfixturevalue("spark_session")
    elif engine == "postgres":
        engine = request.getfixturevalue("postgres_server").create_database(f"{prefix}_{uuid.uuid4().hex[:8]}")
    ws = make(tmp_path_factory.mktemp(f"{prefix}-{request.param}"), engine)
    assert ws.run().status == "succeeded"
    return ws


def quintile(value, values, descending=False) -> int:
    """1-5 by the share of customers at or below (above, ``descending``) the value."""
    share = sum((v >= value) if descending else (v <= value) for v in values) / len(values)
    return min(5, max(1, math.ceil(share * 5)))


def rfm_at(day: date) -> dict[str, str]:
    """Each customer's RFM segment from their orders up to ``day``, by the rules of docs/scores.md."""
    mine = defaultdict(list)
    for o in rows(SALES):
        if not o["email"]:
            continue  # an order without a customer belongs to no one
        if date.fromisoformat(o["day"]) <= day:
            mine[o["email"]].append(o)
    recency = {c: (day - max(date.fromisoformat(o["day"]) for o in os)).days for c, os in mine.items()}
    count = {c: len(os) for c, os in mine.items()}
    total = {c: sum(float(o["amount"]) for o in os) for c, os in mine.items()}
    out = {}
    for c in mine:
        r = quintile(recency[c], recency.values(), descending=True)
        fm = (quintile(count[c], count.values()) + quintile(total[c], total.values())) / 2
        out[c] = next((name for name, (rlo, rhi), (flo, fhi) in RFM_SEGMENTS
                       if rlo <= r <= rhi and flo <= fm <= fhi), "Need Attention")
    return out
