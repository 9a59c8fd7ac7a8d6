"""Events and orders are stored in the order of their time on an engine that skips the blocks out
of a filter's bounds (DuckDB), so that a behaviour condition's window reads its days only; the
members of behaviour segments stay those computed by hand, after a run, a second refresh with
entries and exits, and the erase of a customer."""

from __future__ import annotations

import pytest
from segment_helpers import make_workspace, member_names

SEGMENTS = """
pipeline: {as_of: 2024-12-31}
segments:
  - name: carts_30
    conditions: [{did: Added to Cart, last: 30}]
  - name: carts_twice_7
    conditions: [{did: Added to Cart, at_least: 2, last: 7}]
  - name: spent_90
    conditions: [{aggregate: sum, from: orders, column: amount, op: ">=", value: 100, last: 90}]
  - name: paris
    conditions: [{column: city, op: starts_with, value: Paris}]
"""


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    folder = tmp_path_factory.mktemp("order")
    ws = make_workspace(folder, "duckdb", SEGMENTS)
    ws.run()
    ws.folder = folder
    yield ws
    ws.close()


def _stored(ws, dataset: str, column: str) -> list:
    """The values of ``column`` in the order the rows are stored."""
    table = ws.adapter.published_target(dataset)
    return [r[0] for r in ws.adapter.sql(f'SELECT "{column}" FROM "{table}" ORDER BY rowid').fetchall()]


def test_events_and_orders_are_stored_in_time_order(workspace):
    assert workspace.adapter.prunes_by_order
    times = _stored(workspace, "events", "at")
    assert len(times) == 7 and times == sorted(times)  # clicks.csv is not in time order
    days = _stored(workspace, "orders", "day")
    assert len(days) == 7 and days == sorted(days)


def test_behaviour_members_from_the_ordered_events(workspace):
    ws = workspace
    # hand-computed at 2024-12-31 from segment_helpers.py's clicks and sales
    assert member_names(ws, "carts_30") == {"Ana", "Bo", "Fa"}
    assert member_names(ws, "carts_twice_7") == {"Ana"}
    assert member_names(ws, "spent_90") == {"Ana", "Ed"}  # Ana 100 + 40, Ed 200 + 250
    assert member_names(ws, "paris") == {"Ana", "Di"}
    assert ws.segment_count("carts_30")["count"] == 3


def test_a_second_refresh_and_an_erase_keep_the_members_right(workspace):
    ws = workspace
    config = ws.folder / "w.yaml"
    config.write_text(config.read_text().replace("as_of: 2024-12-31", "as_of: 2025-01-05"))
    ws.apply(config)
    done = {r["segment"]: r for r in ws.refresh_segments()}
    # five days later: Bo's cart (Dec 15) is still within 30 days, Ana's two are no longer within 7
    assert done["carts_twice_7"]["exited"] == 1 and member_names(ws, "carts_twice_7") == set()
    assert member_names(ws, "carts_30") == {"Ana", "Bo", "Fa"}
    ws.erase("fa@example.com")
    ws.refresh_segments()
    assert member_names(ws, "carts_30") == {"Ana", "Bo"}
    times = _stored(ws, "events", "at")
    assert len(times) == 6 and times == sorted(times)
