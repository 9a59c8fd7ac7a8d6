"""A published dataset streamed as CSV or Parquet: batches of Arrow rows from the engine, each
written and handed on at once, so no row count limits an export and memory stays flat."""

from __future__ import annotations

import io
from collections.abc import Iterator

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from tessera.errors import UsageError

EXPORT_FORMATS = {"csv": "text/csv; charset=utf-8", "parquet": "application/vnd.apache.parquet"}
BATCH_ROWS = 50_000


class _Chunks(io.RawIOBase):
    """A write-only file whose bytes are taken out after each batch."""

    def __init__(self):
        super().__init__()
        self._parts: list[bytes] = []
        self._pos = 0

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        b = bytes(data)
        self._parts.append(b)
        self._pos += len(b)
        return len(b)

    def tell(self) -> int:
        return self._pos

    def take(self) -> bytes:
        out = b"".join(self._parts)
        self._parts.clear()
        return out


def _csv_field(text: str) -> str:
    if any(ch in text for ch in ',"\n\r'):
        return '"' + text.replace('"', '""') + '"'
    return text


def export_stream(reader: pa.RecordBatchReader, fmt: str) -> Iterator[bytes]:
    """The bytes of a CSV (header, then rows; quoted where needed) or Parquet file of ``reader``'s
    batches, chunk by chunk."""
    if fmt not in EXPORT_FORMATS:
        raise UsageError(f"unknown export format '{fmt}': use {' or '.join(EXPORT_FORMATS)}")
    sink = _Chunks()
    if fmt == "csv":
        yield (",".join(_csv_field(n) for n in reader.schema.names) + "\n").encode()
        options = pacsv.WriteOptions(quoting_style="needed", include_header=False)
        with pacsv.CSVWriter(sink, reader.schema, write_options=options) as writer:
            for batch in reader:
                writer.write_batch(batch)
                yield sink.take()
        yield sink.take()
        return
    with pq.ParquetWriter(sink, reader.schema) as writer:
        for batch in reader:
            writer.write_batch(batch)
            chunk = sink.take()
            if chunk:
                yield chunk
    yield sink.take()
