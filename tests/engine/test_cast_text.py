"""Text cast to numbers on every engine: spaces between thousands (plain, no-break, narrow no-break)
are read, a value cast as it is when it has none; anything else that is not a number gives NULL."""

from __future__ import annotations

import pyarrow as pa

from tessera.engine.types import cast_text

VALUES = ["1 234.5", "1\u00a0234", "2\u202f000", "12", " 7.5 ", "-3", "abc", "", None, "1 2 3", "12 abc"]
FLOATS = [1234.5, 1234.0, 2000.0, 12.0, 7.5, -3.0, None, None, None, 123.0, None]
INTEGERS = [None, 1234, 2000, 12, None, -3, None, None, None, 123, None]  # (a decimal: the engine's rounding)


def test_numbers_written_with_spaces_are_read(engine_adapter):
    engine_adapter.create_table("texts", pa.table({"i": list(range(len(VALUES))), "v": VALUES}))
    t = engine_adapter.table("texts")
    expr = t.select("i", f=cast_text(t.v, "float"), n=cast_text(t.v, "integer")).order_by("i")
    rows = engine_adapter.to_arrow(expr).to_pylist()
    assert [r["f"] for r in rows] == FLOATS
    integral = [i for i, v in enumerate(VALUES) if v is None or "." not in v]
    assert [rows[i]["n"] for i in integral] == [INTEGERS[i] for i in integral]
