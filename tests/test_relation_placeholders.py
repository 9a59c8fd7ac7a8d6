"""A relation never links through a placeholder value ("undefined", "null", "0") or a blocked value."""

from tessera.workspace import Workspace


def test_placeholder_and_blocked_values_link_nothing(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "people.csv").write_text("id,customer_id,email\n1,undefined,a@example.com\n2,C2,b@example.com\n"
                                     "3,C3,c@example.com\n4,TEST,d@example.com\n")
    (data / "orders.csv").write_text("order_id,customer_id\nO1,undefined\nO2,C2\nO3,TEST\nO4,C3\n")
    ws = Workspace.init(tmp_path / "ws")
    ws.apply({
        "connections": [{"name": "files", "type": "local", "path": str(data)}],
        "sources": [
            {"name": "people", "connection": "files", "pattern": "people.csv", "record_keys": ["id"]},
            {"name": "shop_orders", "connection": "files", "pattern": "orders.csv", "record_keys": ["order_id"],
             "relations": [{"column": "customer_id", "to": "contacts.customer_id"}]},
        ],
        "datasets": [
            {"name": "contacts", "blocked_values": ["TEST"],
             "mappings": [{"source": "people", "columns": {"customer_id": "customer_id", "email": "email"}}]},
            {"name": "orders", "mappings": [{"source": "shop_orders", "columns": {"order_id": "order_id"}}]},
        ],
    })
    ws.run()
    orders = ws.table("orders").to_pyarrow().to_pylist()
    linked = {o["order_id"]: o["tessera_contacts_id"] is not None for o in orders}
    assert linked == {"O1": False, "O2": True, "O3": False, "O4": True}
