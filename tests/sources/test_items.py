"""Nested and packed records: an order's ``line_items`` JSON array and a ticket's packed
``SKU:qty|SKU:qty`` column become child sources (order items) keyed by the parent's record key and
the position, through to the items and categories scores; on every engine."""

from __future__ import annotations

import json
import textwrap
from datetime import date

import pyarrow as pa
import pytest

from tessera.engine.items import explode_items
from tessera.errors import ConfigError
from tessera.workspace import Workspace

ORDERS = [
    {"order_id": "W1", "email": "ana@example.com", "day": "2024-11-02", "total": "60",
     "customer": {"email": "ana@example.com", "name": "Ana"},
     "line_items": [{"sku": "T1", "quantity": 2, "category": "Textile"},
                    {"sku": "K1", "quantity": 1, "category": "Cuisine"}]},
    {"order_id": "W2", "email": "bo@example.com", "day": "2024-12-01", "total": "15",
     "customer": {"email": "bo@example.com", "name": "Bo"},
     "line_items": [{"sku": "J1", "quantity": 3, "category": "Jardin"}]},
    {"order_id": "W3", "email": "bo@example.com", "day": "2024-12-05", "total": "5",
     "customer": {"email": "bo@example.com", "name": "Bo"}, "line_items": "not a list"},
]
TICKETS = (
    "ticket;email;day;total;items\n"
    "P1;ana@example.com;2024-12-10;30;T1:1|L9:4\n"
    "P2;cy@example.com;2024-12-11;12;K1:2\n"
    "P3;cy@example.com;2024-12-12;8;K1:1:extra\n"
)
PRODUCTS = "sku;category\nT1;Textile\nK1;Cuisine\nL9;Luminaires\nJ1;Jardin\n"

CONFIG = """
connections: [{name: files, type: local, path: data}]
sources:
  - {name: eshop, connection: files, pattern: orders.ndjson, record_keys: [order_id],
     normalize: {email: [email]}, relations: [{column: email, to: contacts.email}]}
  - name: eshop_items
    connection: files
    record_keys: [order_id, position]
    items_of: {source: eshop, column: line_items, fields: [sku, quantity, category]}
    types: {quantity: integer}
    relations: [{column: order_id, to: eshop.order_id}]
  - {name: pos, connection: files, pattern: tickets.csv, record_keys: [ticket],
     normalize: {email: [email]}, relations: [{column: email, to: contacts.email}]}
  - name: pos_items
    connection: files
    record_keys: [ticket, position]
    items_of: {source: pos, column: items, fields: [sku, quantity], separator: "|"}
    types: {quantity: integer}
    relations: [{column: ticket, to: pos.ticket}, {column: sku, to: products.sku}]
  - {name: catalog, connection: files, pattern: products.csv, record_keys: [sku]}
  - {name: crm, connection: files, pattern: contacts.csv, record_keys: [email], normalize: {email: [email]}}
datasets:
  - name: contacts
    deduplicate: true
    identity_keys: [{column: email}]
    columns: [{name: email, semantic: Email}]
    mappings: [{source: crm, columns: {email: email}}]
    scores: {library: [items, categories]}
  - name: orders
    columns: [{name: day, semantic: OrderDate, type: date}, {name: total, semantic: OrderAmount, type: float}]
    mappings:
      - {source: eshop, columns: {order_id: order_id, day: day, total: total, buyer: customer.name}}
      - {source: pos, columns: {order_id: ticket, day: day, total: total}}
  - name: products
    columns: [{name: category, semantic: ProductCategory}]
    mappings: [{source: catalog, columns: {sku: sku, category: category}}]
  - name: order_items
    columns: [{name: quantity, semantic: Quantity}]
    mappings:
      - {source: eshop_items, columns: {order_id: order_id, position: position, sku: sku, quantity: quantity,
                                        category: category}}
      - {source: pos_items, columns: {order_id: ticket, position: position, sku: sku, quantity: quantity}}
"""


def test_explode_json_and_packed_items():
    data = pa.table({"k": ["A", "B", "C"], "_tessera_line": [2, 3, 4],
                     "v": ['[{"sku": "x", "p": {"c": "Jardin"}}, {"sku": "y"}]', "[]", None]})
    items, rejects, types = explode_items(data, keys=["k"], column="v", fields=["sku", "p.c"], separator=None)
    assert items.to_pylist() == [
        {"k": "A", "position": 1, "sku": "x", "p.c": "Jardin", "_tessera_line": 2},
        {"k": "A", "position": 2, "sku": "y", "p.c": None, "_tessera_line": 2}]
    assert rejects.num_rows == 0 and types["position"] == "integer"
    data = pa.table({"k": ["A", "B"], "_tessera_line": [2, 3], "v": ["x:2 | y:1|", "z"]})
    items, rejects, types = explode_items(data, keys=["k"], column="v", fields=["sku", "qty"], separator="|")
    assert [(r["k"], r["position"], r["sku"], r["qty"]) for r in items.to_pylist()] == [
        ("A", 1, "x", "2"), ("A", 2, "y", "1"), ("B", 1, "z", None)]
    assert types["qty"] == "integer"


def test_line_items_through_to_the_categories_score(tmp_path, engine):
    data = tmp_path / "data"
    data.mkdir()
    (data / "orders.ndjson").write_text("".join(json.dumps(o) + "\n" for o in ORDERS))
    (data / "tickets.csv").write_text(TICKETS)
    (data / "products.csv").write_text(PRODUCTS)
    (data / "contacts.csv").write_text("email\nana@example.com\nbo@example.com\ncy@example.com\n")
    (tmp_path / "w.yaml").write_text(textwrap.dedent(CONFIG))
    ws = Workspace.init(tmp_path / "ws", warehouse=engine)
    try:
        ws.apply(tmp_path / "w.yaml")
        result = ws.run(as_of=date(2024, 12, 31))
        assert result.status == "succeeded"
        items = {(r["order_id"], r["position"]): r for r in ws.adapter.to_arrow(ws.table("order_items")).to_pylist()}
        assert sorted(items) == [("P1", "1"), ("P1", "2"), ("P2", "1"), ("W1", "1"), ("W1", "2"), ("W2", "1")]
        assert items["W1", "1"]["quantity"] == 2 and items["W1", "2"]["category"] == "Cuisine"
        assert items["P1", "2"]["sku"] == "L9" and items["P1", "2"]["quantity"] == 4
        rejects = {(r["source"], r["line"]): r for r in ws.adapter.to_arrow(ws.rejects()).to_pylist()}
        assert "line_items is not JSON: it must hold a JSON array of objects" in rejects["eshop_items", 3]["reason"]
        assert "has 3 fields, more than the 2 declared" in rejects["pos_items", 4]["reason"]
        contacts = {r["email"]: r for r in ws.adapter.to_arrow(ws.table("contacts")).to_pylist()}
        ana, bo, cy = contacts["ana@example.com"], contacts["bo@example.com"], contacts["cy@example.com"]
        orders = {r["order_id"]: r for r in ws.adapter.to_arrow(ws.table("orders")).to_pylist()}
        assert orders["W1"]["buyer"] == "Ana"  # a nested object read with a path: customer.name
        assert ana["score_total_items"] == 2 + 1 + 1 + 4
        assert ana["score_categories"] == "Cuisine, Luminaires, Textile"  # e-shop items and POS via products
        assert ana["score_multi_category"] is True
        assert bo["score_categories"] == "Jardin" and bo["score_total_items"] == 3
        assert cy["score_total_items"] == 2 and cy["score_categories"] == "Cuisine"
    finally:
        ws.close()


def test_a_child_source_is_checked_at_apply(tmp_path):
    ws = Workspace.init(tmp_path / "ws")
    bad = textwrap.dedent(CONFIG).replace("record_keys: [order_id, position]", "record_keys: [order_id]").replace(
        "items_of: {source: pos,", "pattern: x.csv\n    items_of: {source: poss,")
    (tmp_path / "w.yaml").write_text(bad)
    with pytest.raises(ConfigError) as exc:
        ws.apply(tmp_path / "w.yaml")
    text = str(exc.value)
    assert "set record_keys: [order_id, position]" in text
    assert "unknown source 'poss'" in text
    ws.close()
