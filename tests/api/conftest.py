"""A small shop served by the API, shared by the tests of the resources and the data routes: two
contact sources that write the same people's emails and phones differently, orders linked by
email, one run, and an admin, an editor and a viewer with their API tokens."""

from __future__ import annotations

import json
import textwrap

import pytest
from fastapi.testclient import TestClient

PEOPLE = 60  # people in the CRM; every third one also has an e-shop account

SHOP_YAML = """\
connections:
  - name: files
    type: local
    path: {data}
sources:
  - name: crm
    connection: files
    pattern: crm.csv
    record_keys: [id]
    types: {{phone: string, updated_at: date}}
    normalize:
      email: [{{email: true}}]
      phone: [{{phone: {{country: FR}}}}]
      first_name: [{{trim: true}}, {{title: true}}]
  - name: eshop
    connection: files
    pattern: eshop.json
    format: json
    record_keys: [customer_id]
    normalize:
      mail: [{{email: true}}]
      mobile: [{{phone: {{country: FR}}}}]
  - name: orders
    connection: files
    pattern: orders.csv
    record_keys: [order_id]
    types: {{amount: float, order_date: date}}
    normalize:
      customer_email: [{{email: true}}]
    relations:
      - column: customer_email
        to: contacts.email
datasets:
  - name: contacts
    entity: contacts
    deduplicate: true
    identity_keys: [{{column: email}}, {{column: phone}}]
    columns:
      - {{name: email, semantic: Email}}
      - {{name: phone, semantic: Phone}}
    mappings:
      - source: crm
        columns: {{crm_id: id, email: email, phone: phone, first_name: first_name, country: country,
                   updated_at: updated_at}}
      - source: eshop
        columns: {{eshop_id: customer_id, email: mail, phone: mobile, first_name: first_name}}
  - name: orders
    entity: orders
    mappings:
      - source: orders
        columns: {{order_id: order_id, customer_email: customer_email, amount: amount, order_date: order_date}}
"""


def shop_files(data) -> None:
    """The shop's files: person i has ``person{i}@example.com`` and ``06 00 00 0i ii``."""
    data.mkdir(parents=True, exist_ok=True)
    crm = ["id,email,phone,first_name,country,updated_at"]
    eshop = []
    orders = ["order_id,customer_email,amount,order_date"]
    for i in range(PEOPLE):
        phone = f"06 {10 + i % 80:02d} {20 + i:02d} 3{i % 10} 4{i % 7}"
        email = f"Person{i}@Example.com " if i % 2 else f"person{i}@example.com"
        country = ["FR", "BE", "CH", None][i % 4] or ""
        crm.append(f"C{i:03d},{email},{phone if i % 5 else ''},{' name' + str(i)},{country},2024-01-{1 + i % 28:02d}")
        if i % 3 == 0:
            eshop.append({"customer_id": f"E{i:03d}", "mail": f"PERSON{i}@EXAMPLE.COM",
                          "mobile": "+33 6 " + phone[3:] if i % 5 else None, "first_name": f"Name{i}"})
        for k in range(i % 4):
            orders.append(f"O{i:03d}{k},person{i}@example.com,{10 + i + k}.5,2024-0{1 + k}-1{k}")
    (data / "crm.csv").write_text("\n".join(crm) + "\n")
    (data / "eshop.json").write_text(json.dumps(eshop))
    (data / "orders.csv").write_text("\n".join(orders) + "\n")


@pytest.fixture(scope="session")
def shop(tmp_path_factory):
    """``{"app", "path", "data", "clients": {"admin", "editor", "viewer"}}``, the shop run once."""
    from tessera.api.app import create_app
    from tessera.users import Users
    from tessera.workspace import Workspace

    tmp = tmp_path_factory.mktemp("shop")
    shop_files(tmp / "data")
    (tmp / "workspace.yaml").write_text(textwrap.dedent(SHOP_YAML.format(data=tmp / "data")))
    with Workspace.init(tmp / "ws") as ws:
        ws.apply(tmp / "workspace.yaml")
        ws.run()
        users = Users(ws.store)
        tokens = {}
        for role in ("admin", "editor", "viewer"):
            users.create(f"{role}@example.com", role, f"{role}-passphrase-1", by="test")
            tokens[role], _ = users.create_token(f"{role}@example.com", role, expires="1d")
    app = create_app(tmp / "ws", collect=False)
    with TestClient(app) as local:
        clients = {role: TestClient(app, headers={"Authorization": f"Bearer {token}"})
                   for role, token in tokens.items()}
        yield {"app": app, "path": tmp / "ws", "data": tmp / "data", "clients": clients, "local": local}
