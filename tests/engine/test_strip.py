"""The DuckDB trim (``strip()``): its quick test of the first and last code points trims exactly
the values a regular expression ``^\\s|\\s$`` found blank at either end."""

from __future__ import annotations

import duckdb
import ibis

import tessera.engine.duckdb  # noqa: F401 - patches the compiler

VALUES = [None, "", " ", "a", " a", "a ", "\ta\n", "\x0ba", "a\x0b", "\x0ba ", " \u0301", "é ", "\u00a0a",
          "\x0c x \r", "  two  words  ", "x" * 300 + "\n", "\u2003a\u2003", "😀 "]


def test_strip_trims_the_values_a_blank_at_either_end_marks():
    con = ibis.duckdb.connect()
    t = ibis.memtable({"x": VALUES})
    got = con.to_pyarrow(t.select(y=t.x.strip())).column("y").to_pylist()
    raw = duckdb.connect()
    expected = [raw.execute("SELECT CASE WHEN regexp_matches(?, '^\\s|\\s$') THEN trim(?, ' \t\n\r\x0b\x0c') "
                            "ELSE ? END", [v, v, v]).fetchone()[0] for v in VALUES]
    assert got == expected
    assert got[4] == "a" and got[7] == "\x0ba" and got[9] == "a" and got[12] == "\u00a0a"
