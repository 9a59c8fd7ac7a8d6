"""The DuckDB trim (``strip()``): its quick test of the first and last code points trims exactly
the values that start or end with one of the blanks TRIM removes, as the other engines do."""

from __future__ import annotations

import ibis

import tessera.engine.duckdb  # noqa: F401 - patches the compiler

BLANKS = " \t\n\r\x0b\x0c"
VALUES = [None, "", " ", "a", " a", "a ", "\ta\n", "\x0ba", "a\x0b", "\x0ba ", " \u0301", "é ", "\u00a0a",
          "\x0c x \r", "  two  words  ", "x" * 300 + "\n", "\u2003a\u2003", "😀 ", "\x01a", "a\x1f"]


def test_strip_trims_the_values_a_blank_at_either_end_marks():
    con = ibis.duckdb.connect()
    t = ibis.memtable({"x": VALUES})
    got = con.to_pyarrow(t.select(y=t.x.strip())).column("y").to_pylist()
    assert got == [None if v is None else v.strip(BLANKS) for v in VALUES]
    assert got[7] == "a" and got[12] == "\u00a0a" and got[18] == "\x01a"  # a control character is not a blank
