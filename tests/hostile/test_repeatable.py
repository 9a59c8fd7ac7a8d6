"""Runs are repeatable: the demo company run twice from the same files gives the same published
tables, value for value (money sums in aggregates are exact decimals, not order-dependent floats)."""

from __future__ import annotations

from datetime import date

from tessera.demo.generator import generate
from tessera.workspace import Workspace


def published(ws) -> dict[str, list]:
    """Every published table's rows, sorted, without the run-specific columns."""
    out = {}
    for name in ws.datasets():
        table = ws.adapter.to_arrow(ws.table(name))
        keep = [c for c in table.column_names if not c.startswith("_tessera_run")]
        rows = [tuple(r[c] for c in keep) for r in table.select(keep).to_pylist()]
        out[name] = (keep, sorted(rows, key=repr))
    return out


def test_the_demo_run_twice_publishes_the_same_tables(tmp_path):
    info = generate(tmp_path / "company", size=120, seed=5)
    with Workspace.init(tmp_path / "ws") as ws:
        ws.apply(info.workspace_path)
        ws.run(as_of=date(2026, 11, 1))
        first = published(ws)
        ws.run(as_of=date(2026, 11, 1))  # the same imported files, unified and enriched again
        second = published(ws)
    assert first.keys() == second.keys() and first
    for name in first:
        assert first[name][0] == second[name][0], name
        different = [(a, b) for a, b in zip(first[name][1], second[name][1]) if a != b]
        assert not different, f"{name}: {len(different)} rows differ, e.g. {different[:2]}"
