"""A small fixed workspace for segment tests: 6 contacts, their orders and their events."""

from __future__ import annotations

import textwrap
from datetime import date
from pathlib import Path

from tessera.workspace import Workspace

AS_OF = date(2024, 12, 31)

CONFIG = """
connections: [{name: files, type: local, path: data}]
sources:
  - name: people
    connection: files
    pattern: people.csv
    record_keys: [id]
    types: {age: integer, optin: boolean, signup: date, birth: date, spent: float}
  - name: sales
    connection: files
    pattern: sales.csv
    record_keys: [order_id]
    types: {amount: float, day: date}
    relations: [{column: email, to: contacts.email}]
  - name: clicks
    connection: files
    pattern: clicks.csv
    record_keys: [event_id]
    types: {at: timestamp, price: float}
    relations: [{column: email, to: contacts.email}]
datasets:
  - name: contacts
    deduplicate: true
    identity_keys: [{column: email}]
    columns: [{name: email, semantic: Email}, {name: city, semantic: City}]
    mappings:
      - source: people
        columns: {email: email, name: name, city: city, age: age, optin: optin, signup: signup,
                  birth: birth, spent: spent, tier: tier}
  - name: orders
    columns:
      - {name: day, semantic: OrderDate}
      - {name: amount, semantic: OrderAmount}
    mappings: [{source: sales, columns: {order_id: order_id, day: day, amount: amount, channel: channel}}]
  - name: events
    columns:
      - {name: event, semantic: EventName}
      - {name: at, semantic: EventTime}
    mappings: [{source: clicks, columns: {event_id: event_id, event: event, at: at, price: price}}]
"""

PEOPLE = """id,email,name,city,age,optin,signup,birth,spent,tier
1,ana@example.com,Ana,Paris,34,true,2024-12-20,1990-01-05,120.5,gold
2,bo@example.com,Bo,Lyon,19,false,2024-06-01,2005-12-31,,silver
3,cy@example.com,Cy,,45,true,2023-01-15,1980-02-29,980,gold
4,di@example.com,Di,Paris la Défense,28,,2024-12-01,1996-07-14,15,
5,ed@example.com,Ed,Nice,61,false,2020-03-03,1963-01-20,300,bronze
6,fa@example.com,Fa,  ,52,true,2024-11-30,1972-12-31,50,silver
"""

SALES = """order_id,email,day,amount,channel
o1,ana@example.com,2024-12-10,100,web
o2,ana@example.com,2024-11-02,40,shop
o3,ana@example.com,2023-05-01,60,web
o4,bo@example.com,2024-12-30,10,web
o5,cy@example.com,2022-01-01,500,shop
o6,ed@example.com,2024-10-15,200,shop
o7,ed@example.com,2024-10-20,250,shop
"""

CLICKS = """event_id,email,event,at,price
e1,ana@example.com,Added to Cart,2024-12-29 10:00:00,30
e2,ana@example.com,Added to Cart,2024-12-30 11:00:00,80
e3,ana@example.com,Order Completed,2024-12-30 11:05:00,110
e4,bo@example.com,Added to Cart,2024-12-15 09:00:00,15
e5,di@example.com,Added to Cart,2024-10-01 09:00:00,60
e6,di@example.com,Page Viewed,2024-12-31 08:00:00,
e7,fa@example.com,Added to Cart,2024-12-31 07:00:00,95
"""

# email -> name, to read results
NAMES = {"ana@example.com": "Ana", "bo@example.com": "Bo", "cy@example.com": "Cy", "di@example.com": "Di",
         "ed@example.com": "Ed", "fa@example.com": "Fa"}


def write_data(folder: Path, people: str = PEOPLE, sales: str = SALES, clicks: str = CLICKS) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "people.csv").write_text(people)
    (folder / "sales.csv").write_text(sales)
    (folder / "clicks.csv").write_text(clicks)


def make_workspace(tmp_path: Path, engine: str = "duckdb", segments: str = "") -> Workspace:
    write_data(tmp_path / "data")
    (tmp_path / "w.yaml").write_text(textwrap.dedent(CONFIG) + textwrap.dedent(segments))
    ws = Workspace.init(tmp_path / "ws", warehouse=engine)
    ws.apply(tmp_path / "w.yaml")
    return ws


def member_names(ws: Workspace, segment: str) -> set[str]:
    rows = ws.segment_members(segment, limit=1000, columns=["name"])
    return {r["name"] for r in rows}
