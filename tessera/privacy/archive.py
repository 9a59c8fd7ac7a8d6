"""Archived files rewritten without the rows of an erased customer.

The workspace archive keeps each imported file under its content hash. An erase rewrites the
files that held the customer's rows: the physical lines of each removed record (from the line
where it starts to the line before the next record, so a record with quoted line breaks goes
whole) are cut out of text files (CSV, TSV, NDJSON, and the same compressed with gzip); Parquet
files lose the rows by their row number. The new file is written beside the old one, synced,
then renamed over it: a crash leaves the old file or the new one, never half of one. The import
history keeps the file's record (its name, original content hash, batch and counts), so the
file, imported again as it was, is still recognized and skipped.

JSON array and XLSX files cannot be rewritten row by row here: the archived copy is removed, and
the receipt says so.
"""

from __future__ import annotations

import gzip
import itertools
import os
from pathlib import Path

import numpy as np

_TEXT = (".csv", ".txt", ".tsv", ".ndjson", ".jsonl")
_PARQUET = (".parquet", ".pq")


def _plain_suffix(name: str) -> str:
    name = name.lower()
    if name.endswith(".gz"):
        name = name[:-3]
    return Path(name).suffix


def _replace(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.erase.tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _cut_lines(data: bytes, spans: list[tuple[int, int | None]]) -> tuple[bytes, int]:
    """``data`` without the 1-based line spans [start, stop) (stop None: to the end)."""
    lines = data.split(b"\n")
    keep = np.ones(len(lines), dtype=bool)
    for start, stop in spans:
        keep[start - 1: (stop - 1) if stop is not None else len(lines)] = False
    if keep.size and not keep[-1] and lines[-1] == b"":
        keep[-1] = True  # the file's final line break stays
    out = b"\n".join(itertools.compress(lines, keep.tolist()))
    return out, int((~keep).sum())


def rewrite(path: str | Path, name: str, spans: list[tuple[int, int | None]]) -> str:
    """Rewrite the archived file ``path`` (imported as ``name``) without the records starting at
    the given lines (``(line, next record's line)``); returns how: ``rewritten``, ``removed``
    (a format that cannot be rewritten) or ``missing``."""
    path = Path(path)
    if not path.exists():
        return "missing"
    suffix = _plain_suffix(name)
    compressed = name.lower().endswith(".gz")
    if suffix in _TEXT:
        data = path.read_bytes()
        if compressed:
            data = gzip.decompress(data)
        out, _ = _cut_lines(data, spans)
        _replace(path, gzip.compress(out) if compressed else out)
        return "rewritten"
    if suffix in _PARQUET and not compressed:
        import pyarrow.parquet as pq

        table = pq.read_table(path)
        keep = np.ones(table.num_rows, dtype=bool)
        rows = np.array([s for s, _ in spans], dtype=np.int64) - 1  # Parquet lines are row numbers + 1
        keep[rows[(rows >= 0) & (rows < table.num_rows)]] = False
        tmp = path.with_name(f".{path.name}.erase.tmp")
        pq.write_table(table.filter(keep), tmp)
        os.replace(tmp, path)
        return "rewritten"
    path.unlink()
    return "removed"
