"""Destinations of syncs: files (local folder, FTP, FTPS, SFTP), webhooks, and (in
:mod:`tessera.syncs.tables`) PostgreSQL and MySQL/MariaDB tables.

A destination receives the changes of one run as Arrow record batches. Each batch has the
columns ``_tessera_op`` (``insert``, ``update`` or ``delete``), ``_tessera_key`` (the key as
text) and the destination fields. The runner calls::

    dest.open()              # connect, create the table...: a failure fails every change of the run
    dest.encode(batch)       # (in a reader thread, ahead) e.g. the batch as CSV
    dest.send(batch, encoded)  # -> the records it refused, [Refusal(positions, error)], or raises
                             #    DestinationDown: this batch and the following ones are not sent
    dest.finish()            # e.g. upload the file: a failure fails every change of the run
    dest.close()

Records refused, and records not sent because the destination went down, keep their error in
the sync's state and are sent again by the next run.
"""

from __future__ import annotations

import posixpath
import shutil
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import ibis.expr.datatypes as dt
import pyarrow as pa
import pyarrow.compute as pc

from tessera.config.models import SyncConfig
from tessera.connectors.files import open_folder
from tessera.connectors.webhook import WebhookSender
from tessera.engine.filewriter import BatchFileWriter
from tessera.errors import ConnectionFailed, SyncError
from tessera.syncs.plan import KEY, OP

FILE_TYPES = ("local", "ftp", "ftps", "sftp")
TABLE_TYPES = ("postgresql", "mysql", "mariadb")
DESTINATION_TYPES = (*FILE_TYPES, *TABLE_TYPES, "webhook")


class DestinationDown(SyncError):
    """The destination cannot take more records in this run (unreachable, credentials refused,
    too many batches refused in a row): the batch being sent and the following ones are kept
    for the next run."""

    code = "destination_down"
    status = 502


@dataclass
class Refusal:
    """Records of a batch the destination refused: ``positions`` in the batch (None: all of them)
    and the error, one for all or one per position."""

    positions: list[int] | None
    error: str | list[str]


@dataclass
class SendContext:
    """What a destination knows of the sync run it serves."""

    sync: SyncConfig
    conn: Any  # the connection, secrets revealed
    run_id: int
    fields: dict[str, str]  # destination field -> dataset column (key included), in order
    field_types: dict[str, dt.DataType]
    key_field: str
    started: datetime  # UTC

    @property
    def field_names(self) -> list[str]:
        return list(self.fields)

    @property
    def where(self) -> str:
        """How messages name the destination (the sync's result already names the sync)."""
        return f"connection '{self.conn.name}'"


class Destination:
    """Base class: see the module's documentation."""

    batch_rows = 50_000  # rows per batch the runner sends

    def __init__(self, ctx: SendContext):
        self.ctx = ctx

    def open(self) -> None:
        pass

    def encode(self, batch: pa.RecordBatch) -> Any:
        """Prepare a batch for :meth:`send` (e.g. write it as CSV). The runner calls it in a
        reader thread, ahead of sending, so that encoding overlaps the destination's work."""
        return None

    def send(self, batch: pa.RecordBatch, encoded: Any = None) -> list[Refusal]:
        raise NotImplementedError

    def finish(self) -> None:
        pass

    def close(self) -> None:
        pass


# --------------------------------------------------------------------------- files


def file_name(ctx: SendContext) -> str:
    """The file's name from the sync's ``file_name`` template ({sync}, {run}, {timestamp}, {format})."""
    sync = ctx.sync
    template = sync.file_name or "{sync}_{run}.{format}"
    values = {"sync": sync.name, "run": ctx.run_id, "timestamp": ctx.started.strftime("%Y%m%dT%H%M%SZ"),
              "format": sync.format}
    try:
        name = template.format_map(values)
    except (KeyError, IndexError, ValueError) as exc:
        raise SyncError(f"sync '{sync.name}': file_name '{template}' cannot be filled ({exc}); use the "
                        "placeholders {sync}, {run}, {timestamp} and {format}, e.g. '{sync}_{timestamp}.csv'") from None
    if not name.strip() or name.endswith("/"):
        raise SyncError(f"sync '{sync.name}': file_name '{template}' gives an empty file name")
    return name


class FileDestination(Destination):
    """One file per run with the changes (CSV, NDJSON or Parquet, with a ``_tessera_op`` column),
    written on this machine, then uploaded atomically into ``folder`` of the connection."""

    batch_rows = 100_000

    def open(self) -> None:
        ctx = self.ctx
        self.name = posixpath.normpath(posixpath.join(ctx.sync.folder or ".", file_name(ctx)))
        self.folder = open_folder(ctx.conn)
        self.tmpdir = Path(tempfile.mkdtemp(prefix="tessera-sync-"))
        self.local = self.tmpdir / posixpath.basename(self.name)
        self.rows = 0
        self.writer = BatchFileWriter(self.local, self.ctx.sync.format)

    def _columns(self, batch: pa.RecordBatch) -> pa.Table:
        return pa.Table.from_batches([batch]).select([OP, *self.ctx.field_names])

    def send(self, batch: pa.RecordBatch, encoded: Any = None) -> list[Refusal]:
        data = self._columns(batch)
        self.writer.write(data)
        self.rows += data.num_rows
        return []

    def finish(self) -> None:
        self.writer.close()
        if self.rows:
            self.folder.upload(self.local, self.name)

    def close(self) -> None:
        if getattr(self, "writer", None) is not None:
            self.writer.close()
        if getattr(self, "folder", None) is not None:
            try:
                self.folder.close()
            except Exception:  # noqa: BLE001 - closing a connection that failed already
                pass
        if getattr(self, "tmpdir", None) is not None:
            shutil.rmtree(self.tmpdir, ignore_errors=True)


# --------------------------------------------------------------------------- webhook

CONSECUTIVE_FAILURES = 3  # batches refused in a row before a run stops sending to a webhook


class WebhookDestination(Destination):
    """JSON batches POSTed to the connection's URL (see :mod:`tessera.connectors.webhook`)."""

    def __init__(self, ctx: SendContext):
        super().__init__(ctx)
        self.batch_rows = ctx.conn.batch_size
        self._refused_in_a_row = 0
        self._batches = 0

    def open(self) -> None:
        self.sender = WebhookSender(self.ctx.conn, sync=self.ctx.sync.name, run=self.ctx.run_id)

    def records(self, batch: pa.RecordBatch) -> list[dict]:
        """The batch as webhook records: ``{"op", "key", "fields"}`` (a delete carries its key field only)."""
        names = self.ctx.field_names
        key_field = self.ctx.key_field
        ops = batch.column(OP).to_pylist()
        keys = batch.column(KEY).to_pylist()
        rows = pa.Table.from_batches([batch]).select(names).to_pylist()
        return [{"op": op, "key": key, "fields": ({key_field: row[key_field]} if op == "delete" else row)}
                for op, key, row in zip(ops, keys, rows)]

    def send(self, batch: pa.RecordBatch, encoded: Any = None) -> list[Refusal]:
        self._batches += 1
        records = self.records(batch)
        batch_id = f"{self.ctx.sync.name}-{self.ctx.run_id}-{self._batches}"
        try:
            outcome = self.sender.post(records, batch_id=batch_id)
        except ConnectionFailed as exc:
            raise DestinationDown(str(exc)) from exc
        if outcome.error is not None:
            self._refused_in_a_row += 1
            if self._refused_in_a_row >= CONSECUTIVE_FAILURES:
                raise DestinationDown(f"{self.ctx.where}: {CONSECUTIVE_FAILURES} batches refused in a row, the "
                                      f"last one with {outcome.error}; the remaining records are sent next run")
            return [Refusal(None, outcome.error)]
        self._refused_in_a_row = 0
        if outcome.record_errors:
            positions = sorted(outcome.record_errors)
            return [Refusal(positions, [outcome.record_errors[i] for i in positions])]
        return []

    def close(self) -> None:
        sender = getattr(self, "sender", None)
        if sender is not None:
            sender.close()


# --------------------------------------------------------------------------- helpers


def refused_keys(batch: pa.RecordBatch, refusal: Refusal) -> tuple[pa.Array, pa.Array]:
    """The keys (``_tessera_key``) and errors of a refusal."""
    keys = batch.column(KEY)
    if refusal.positions is not None:
        keys = pc.take(keys, pa.array(refusal.positions, pa.int64()))
    if isinstance(refusal.error, str):
        errors = pa.repeat(pa.scalar(refusal.error, pa.string()), len(keys))
    else:
        errors = pa.array(refusal.error, pa.string())
    return keys.cast(pa.string()), errors
