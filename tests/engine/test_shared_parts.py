"""DuckDB stores a common table expression that a query reads twice before reading it; inside
EngineAdapter.shared_parts_recomputed (the enrichment's table) it is computed again at each read:
the same rows, no stored copy."""

from __future__ import annotations

import threading

from tessera.engine.duckdb import DuckDBAdapter


def plan(adapter: DuckDBAdapter, expr) -> str:
    return "\n".join(row[1] for row in adapter.sql(f"EXPLAIN {adapter.con.compile(expr)}").fetchall())


def test_shared_parts_are_computed_again_inside_the_context_only(tmp_path):
    adapter = DuckDBAdapter(str(tmp_path / "w.duckdb"))
    adapter.sql("CREATE TABLE orders AS SELECT 'c' || (i % 100) AS customer, i % 7 AS store, i AS amount "
                "FROM range(5000) t(i)")
    o = adapter.table("orders")
    shared = o.filter(o.store > 0).mutate(double=o.amount * 2)
    counts = shared.group_by("customer").agg(n=shared.count())
    totals = shared.group_by("customer").agg(total=shared.double.sum())
    expr = counts.join(totals, "customer").order_by("customer")

    assert "CTE" in plan(adapter, expr)  # stored, then read twice
    expected = adapter.execute(expr)
    seen_elsewhere = []
    with adapter.shared_parts_recomputed():
        assert "NOT MATERIALIZED" in adapter.con.compile(expr)
        assert "CTE" not in plan(adapter, expr)
        # another thread (a reader of the server) compiles as usual meanwhile
        worker = threading.Thread(target=lambda: seen_elsewhere.append(adapter.con.compile(expr)))
        worker.start()
        worker.join()
        inside = adapter.execute(expr)
    assert "NOT MATERIALIZED" not in seen_elsewhere[0]
    assert "NOT MATERIALIZED" not in adapter.con.compile(expr)
    assert inside.equals(expected) and len(inside) == 100
    adapter.close()
