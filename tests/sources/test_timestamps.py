"""Timestamps written with a UTC offset are instants, and ``tessera columns`` shows the types the
dataset was published with."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys

import ibis
import pytest

from tessera.engine.types import cast_text
from tessera.workspace import Workspace

ORDERS = (
    "order_id,ordered_at,day\n"
    "O1,2024-03-15T10:00:00+01:00,15/03/2024\n"
    "O2,2024-03-15T10:00:00Z,16/03/2024\n"
    "O3,2024-03-15 10:00:00,17/03/2024\n"
    "O4,2024-03-15T10:00:00.250-05:30,18/03/2024\n"
    "O5,2024-01-01T00:30:00+0100,19/03/2024\n"
)


@pytest.mark.parametrize("text,instant", [
    ("2024-03-15T10:00:00+01:00", dt.datetime(2024, 3, 15, 9, 0)),
    ("2024-03-15T10:00:00Z", dt.datetime(2024, 3, 15, 10, 0)),
    ("2024-03-15 10:00:00", dt.datetime(2024, 3, 15, 10, 0)),  # no offset: kept as written
    ("2024-03-15 10:00 +02", dt.datetime(2024, 3, 15, 8, 0)),
    ("2024-03-15", dt.datetime(2024, 3, 15, 0, 0)),
])
def test_offsets_are_applied(text, instant):
    con = ibis.duckdb.connect()
    t = ibis.memtable({"s": [text]})
    got = con.to_pyarrow(t.select(x=cast_text(t.s, "timestamp"))).column("x").to_pylist()[0]
    assert got == instant


@pytest.fixture
def workspace(tmp_path, engine):
    data = tmp_path / "data"
    data.mkdir()
    (data / "orders.csv").write_text(ORDERS)
    ws = Workspace.init(tmp_path / "ws", warehouse=engine)
    ws.apply({
        "connections": [{"name": "files", "type": "local", "path": str(data)}],
        "sources": [{"name": "shop", "connection": "files", "pattern": "orders.csv", "record_keys": ["order_id"],
                     "normalize": {"day": [{"date": {"dayfirst": True}}]}}],
        "datasets": [{"name": "orders", "entity": "orders",
                      "columns": [{"name": "ordered_at", "semantic": "OrderDate"}],
                      "mappings": [{"source": "shop", "columns": {"order_id": "order_id", "ordered_at": "ordered_at",
                                                                  "day": "day"}}]}],
    })
    ws.run()
    yield ws
    ws.close()


def test_published_instants(workspace):
    rows = {r["order_id"]: r for r in workspace.adapter.to_arrow(workspace.table("orders")).to_pylist()}
    assert rows["O1"]["ordered_at"] == dt.datetime(2024, 3, 15, 9, 0)
    assert rows["O2"]["ordered_at"] == dt.datetime(2024, 3, 15, 10, 0)
    assert rows["O3"]["ordered_at"] == dt.datetime(2024, 3, 15, 10, 0)
    assert rows["O4"]["ordered_at"] == dt.datetime(2024, 3, 15, 15, 30, 0, 250000)
    assert rows["O5"]["ordered_at"] == dt.datetime(2023, 12, 31, 23, 30)
    assert rows["O1"]["day"] == dt.date(2024, 3, 15)


def test_columns_shows_the_published_types(workspace):
    types = {c["column"]: c["type"] for c in workspace.describe("orders")}
    assert types["ordered_at"] == "timestamp"
    assert types["day"] == "date"  # inferred as text from the file, published as a date
    workspace.close()
    out = subprocess.run([sys.executable, "-m", "tessera.cli.main", "-w", str(workspace.path), "columns", "orders"],
                         capture_output=True, text=True, check=True).stdout
    line = next(x for x in out.splitlines() if " day " in x)
    assert "date" in line and "string" not in line
