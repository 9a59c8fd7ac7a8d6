"""Samples of data files for the guided setup (:mod:`tessera.setup`).

A file too large to profile whole is cut after its first records into a temporary file that
:func:`tessera.engine.filereader.read_file` then parses like any other: the proposal sees the
same rows, rejects and text values as an import would. Only line-based formats can be cut
(CSV, NDJSON); other formats are read whole.
"""

from __future__ import annotations

import codecs
import os

from tessera.engine.filereader import _SEPARATORS, _split_header

SAMPLE_BYTES = 1 << 20  # files above this size are profiled on their first records


def head_copy(path: str, target: str, max_bytes: int = SAMPLE_BYTES) -> bool:
    """Copy the first whole lines of ``path`` (at most ``max_bytes``) to ``target``.

    Returns True when the file was cut, False when it was copied whole.
    """
    size = os.path.getsize(path)
    with open(path, "rb") as src:
        data = src.read(max_bytes)
    cut = size > max_bytes
    if cut:
        end = data.rfind(b"\n")
        data = data[: end + 1] if end > 0 else data
    with open(target, "wb") as out:
        out.write(data)
    return cut


def csv_dialect(path: str, quote: str = '"') -> dict:
    """Separator, byte order mark and encoding of a CSV file, from its first megabyte.

    The separator is the one the file reader picks (the most frequent outside quotes in the
    header line), so that the proposal states what the import will do.
    """
    with open(path, "rb") as f:
        head = f.read(1 << 20)
    out = {"bom": head.startswith(codecs.BOM_UTF8), "encoding": "utf-8", "delimiter": None}
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        out["encoding"] = "utf-16"
        return out
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4:   # not only a character cut at the end of the sample
            out["encoding"] = "not utf-8"
        text = head[: exc.start].decode("utf-8")
    text = text.removeprefix("\ufeff")
    _first, end, counts = _split_header(text, quote)
    best = max(counts.values()) if counts else 0
    if best:
        sample = text[end or len(text):].split("\n")[:50]
        out["delimiter"] = max((s for s in _SEPARATORS if counts[s] == best),
                               key=lambda s: sum(x.count(s) == best for x in sample))
    return out


LONG = "_tessera_long"


def long_form(con, table: str, columns: list[str], view: str = LONG) -> None:
    """A view of ``table`` in long form (``col``, ``val``): one row per cell, values trimmed and
    empty ones NULL, so that one query profiles every column whatever their number."""
    from tessera.engine.filereader import qi, ql

    parts = " UNION ALL ".join(f"SELECT {ql(c)} AS col, nullif(trim(CAST({qi(c)} AS VARCHAR)), '') AS val FROM {qi(table)}"
                               for c in columns)
    con.execute(f"CREATE OR REPLACE TEMP VIEW {qi(view)} AS {parts}")


def first_rows(con, table: str, rows: int, target: str) -> None:
    """``target``: the first ``rows`` records of ``table`` (the part whose values are profiled)."""
    from tessera.engine.filereader import qi

    con.execute(f"CREATE OR REPLACE TEMP TABLE {qi(target)} AS SELECT * FROM {qi(table)} LIMIT {int(rows)}")


def column_values(con, path: str, fmt: str, column: str, target: str, *, delimiter: str | None = None) -> None:
    """``target`` (one column ``v``): the distinct non-empty values of one column over the whole file.

    Used for the record keys that relations point at when the file was profiled on a sample:
    a key is looked up in all of its values, not in the sample's."""
    from tessera.engine.filereader import qi, ql

    if fmt == "csv":
        scan = (f"read_csv({ql(path)}, delim={ql(delimiter or ',')}, header=true, all_varchar=true, "
                "ignore_errors=true, parallel=false)")
    elif fmt in ("ndjson", "json"):
        kind = "newline_delimited" if fmt == "ndjson" else "array"
        scan = f"read_json({ql(path)}, format={ql(kind)}, columns={{{ql(column)}: 'VARCHAR'}}, ignore_errors=true)"
    else:
        scan = f"read_parquet({ql(path)})"
    con.execute(f"CREATE OR REPLACE TEMP TABLE {qi(target)} AS SELECT DISTINCT trim(CAST({qi(column)} AS VARCHAR)) "
                f"AS v FROM {scan} WHERE nullif(trim(CAST({qi(column)} AS VARCHAR)), '') IS NOT NULL")
