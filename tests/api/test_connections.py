"""Connections through the API: secrets never answered and kept when a change leaves them out, a
real connection test, a change refused while objects use the connection, and 409 on a stale version."""

from __future__ import annotations

import socket


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_secrets_are_never_answered_and_kept_on_change(shop):
    admin, viewer = shop["clients"]["admin"], shop["clients"]["viewer"]
    port = closed_port()
    made = admin.post("/api/connections", json={"name": "warehouse", "type": "postgresql", "host": "127.0.0.1",
                                                "port": port, "database": "shop", "user": "reader",
                                                "password": "pg-secret-value-1", "connect_timeout": 2})
    assert made.status_code == 201, made.text
    assert made.json()["secrets"] == {"password": "stored encrypted"}
    for client in (admin, viewer):
        for url in ("/api/connections", "/api/connections/warehouse", "/api/config"):
            assert "pg-secret-value-1" not in client.get(url).text
    version = made.json()["version"]
    changed = admin.put("/api/connections/warehouse", params={"version": version},
                        json={"name": "warehouse", "type": "postgresql", "host": "127.0.0.1", "port": port,
                              "database": "shop2", "user": "reader", "connect_timeout": 2})
    assert changed.status_code == 200, changed.text
    assert changed.json()["spec"]["database"] == "shop2"
    assert changed.json()["secrets"] == {"password": "stored encrypted"}  # left out: kept
    ws = shop["app"].state.owner.workspace
    assert ws.connection("warehouse").password == "pg-secret-value-1"

    stale = admin.put("/api/connections/warehouse", params={"version": version},
                      json={"name": "warehouse", "type": "postgresql", "database": "x", "user": "y"})
    assert stale.status_code == 409 and stale.json()["code"] == "version_conflict"
    failed = admin.post("/api/connections/warehouse/test")
    assert failed.status_code == 502 and failed.json()["code"] == "connection_failed"
    assert "pg-secret-value-1" not in failed.text
    assert viewer.post("/api/connections", json={"name": "x", "type": "local", "path": "/tmp"}).status_code == 403
    gone = admin.delete("/api/connections/warehouse", params={"version": changed.json()["version"]})
    assert gone.status_code == 200 and gone.json()["removed"] == ["connection warehouse"]
    assert admin.get("/api/connections/warehouse").status_code == 404
    assert "warehouse.password" not in ws.store.list_secrets()


def test_test_and_a_connection_in_use(shop):
    editor, admin = shop["clients"]["editor"], shop["clients"]["admin"]
    tested = editor.post("/api/connections/files/test")
    assert tested.status_code == 200 and tested.json()["ok"] is True and tested.json()["checks"]
    used = admin.delete("/api/connections/files")
    assert used.status_code == 400 and used.json()["code"] == "invalid"
    assert any("files" in e for e in used.json()["errors"])
    assert admin.get("/api/connections/files").status_code == 200
    twice = admin.post("/api/connections", json={"name": "files", "type": "local", "path": str(shop["data"])})
    assert twice.status_code == 409
