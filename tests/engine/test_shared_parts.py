"""DuckDB and PostgreSQL store a common table expression that a query reads twice before reading
it; inside EngineAdapter.shared_parts_recomputed (the enrichment's table) it is computed again at
each read: the same rows, no stored copy. Spark always computes it again."""

from __future__ import annotations

import threading

import pyarrow as pa

PLANS = {  # how each engine's plan shows a stored CTE, and how to ask for the plan
    "duckdb": ("CTE", lambda a, sql: "\n".join(r[1] for r in a.sql(f"EXPLAIN {sql}").fetchall())),
    "postgres": ("CTE Scan", lambda a, sql: "\n".join(r[0] for r in a.sql(f"EXPLAIN {sql}").fetchall())),
}


def rows(adapter, expr) -> list[tuple]:
    return sorted((r["customer"], r["n"], r["total"]) for r in adapter.to_arrow(expr).to_pylist())


def test_shared_parts_are_computed_again_inside_the_context_only(engine_adapter):
    adapter = engine_adapter
    adapter.create_table("orders", pa.table({"customer": [f"c{i % 100}" for i in range(5000)],
                                             "store": [i % 7 for i in range(5000)],
                                             "amount": list(range(5000))}))
    o = adapter.table("orders")
    shared = o.filter(o.store > 0).mutate(double=o.amount * 2)
    counts = shared.group_by("customer").agg(n=shared.count())
    totals = shared.group_by("customer").agg(total=shared.double.sum())
    expr = counts.join(totals, "customer")
    marker, plan = PLANS.get(adapter.name, (None, None))

    outside = adapter.con.compile(expr)
    if plan:
        assert marker in plan(adapter, outside)  # stored, then read twice
    expected = rows(adapter, expr)
    seen_elsewhere = []
    with adapter.shared_parts_recomputed():
        inside = adapter.con.compile(expr)
        # another thread (a reader of the server) compiles as usual meanwhile
        worker = threading.Thread(target=lambda: seen_elsewhere.append(adapter.con.compile(expr)))
        worker.start()
        worker.join()
        if plan:
            assert "NOT MATERIALIZED" in inside and marker not in plan(adapter, inside)
        got = rows(adapter, expr)
    assert seen_elsewhere == [outside] and adapter.con.compile(expr) == outside
    assert "NOT MATERIALIZED" not in outside
    assert got == expected and len(got) == 100
