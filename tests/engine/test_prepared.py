"""Prepared reads: a query compiled once, its parameters bound at each run, on every engine; and
the indexes that point reads use."""

from __future__ import annotations

import ibis
import pyarrow as pa
import pytest

from tessera.engine.base import param

ROWS = pa.table({
    "tessera_id": ["T1", "T2", "T'3", "T%4", "T1"],
    "note": ["a", "b 100%", "it's", "d", "e"],
    "n": [1, 2, 3, 4, 5],
})


def test_a_prepared_query_binds_its_parameters_at_each_run(engine_adapter):
    adapter = engine_adapter
    t = adapter.create_table("_tessera_test_people", ROWS)
    # a LIKE pattern with % and a quote in the SQL text around the placeholders
    expr = t.filter((t.tessera_id == param("tid")) | (t.note.like("%100%%") & (t.tessera_id == param("other"))))
    prepared = adapter.prepare(expr.order_by("n"))
    assert prepared.names == ("tid", "other")
    for tid, other in [("T1", "none"), ("T'3", "T2"), ("T%4", "T%4"), ("nobody", "nobody")]:
        literal = t.filter((t.tessera_id == tid) | (t.note.like("%100%%") & (t.tessera_id == other))).order_by("n")
        assert adapter.fetch(prepared, tid=tid, other=other) == adapter.to_arrow(literal).to_pylist()
    assert [r["n"] for r in adapter.fetch(prepared, tid="T1", other="-")] == [1, 5]


def test_a_parameter_name_is_letters_and_digits():
    with pytest.raises(ValueError, match="letters and digits"):
        param("tessera_id")
    assert isinstance(param("tid"), ibis.Value)


def test_index_is_made_once_where_the_engine_has_indexes(engine_adapter):
    adapter = engine_adapter
    adapter.create_table("_tessera_test_indexed", ROWS)
    first = adapter.index("_tessera_test_indexed", "tessera_id")
    assert adapter.index("_tessera_test_indexed", "tessera_id") is False  # already there
    assert first is (adapter.name in ("duckdb", "postgres"))
    t = adapter.table("_tessera_test_indexed")
    prepared = adapter.prepare(t.filter(t.tessera_id == param("tid")).select("n").order_by("n"))
    assert adapter.fetch(prepared, tid="T1") == [{"n": 1}, {"n": 5}]


def test_first_rows_and_a_reader_parsing_each_statement_once(engine_adapter):
    adapter = engine_adapter
    adapter.create_table("_tessera_test_first", ROWS)
    reader = adapter.reader()
    t = reader.table("_tessera_test_first")
    one = reader.prepare(t.filter(t.tessera_id == param("tid")), first=1)
    all_rows = reader.prepare(t.filter(t.tessera_id == param("tid")).select("n").order_by("n"))
    assert ("LIMIT" in one.text.upper()) is not adapter._fetch_stops  # streaming engines stop the fetch instead
    assert len(reader.fetch(one, tid="T1")) == 1 and reader.fetch(one, tid="nobody") == []
    assert [r["n"] for r in reader.fetch(all_rows, tid="T1")] == [1, 5]
    # the same statement again, after the table changed under it: its rows of now
    adapter.create_table("_tessera_test_first", ROWS.slice(1))
    assert [r["n"] for r in reader.fetch(all_rows, tid="T1")] == [5]
    assert reader.fetch(one, tid="T'3")[0]["note"] == "it's"
