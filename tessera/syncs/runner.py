"""Running syncs: :func:`run_syncs` is the entry point (``Workspace.sync`` and ``tessera sync run``).

One run of a sync:

1. the plan (:mod:`tessera.syncs.plan`) is computed in the warehouse and kept in a work table:
   every key of the rows to send and of the sync's state, with its row hash and operation;
2. the changes (insert, update, delete), joined back to their fields, are streamed from the
   warehouse in Arrow record batches to the destination (:mod:`tessera.syncs.destinations`),
   which reports the records it refused; when it goes down, the rest is not sent;
3. the state is rebuilt from the plan and the records not delivered, in the warehouse: sent keys
   take their new hash, the others keep their error and are sent again next run, deleted keys
   leave it.

When the dataset was not published again since the last run, with the same configuration and no
failed record, nothing can have changed: the run ends at once (``unchanged`` = the rows).

Each sync runs on its own: an error in one (an unknown column, a destination down) is reported
in its result and the next sync runs. Each run is recorded in the metadata store as a run of
kind ``sync`` (``tessera runs``) with its counts. A dry run computes the plan and changes
nothing. Delivery is at least once: if the process dies between sending and rebuilding the
state, the next run sends those records again (destinations apply them by key).

When the sync's connection, table, folder or key change, the state no longer describes the
destination: it is reset and every record is sent as new (the old destination is left as it is).
A change of ``fields`` changes every row hash, so every record is sent again as an update
(``upsert``/``mirror``); a change of ``filter`` or of the opt-ins sends the records that enter
(and deletes, in ``mirror`` mode, those that leave).
"""

from __future__ import annotations

import os
import queue
import re
import shutil
import tempfile
import threading
import time
import warnings
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import psutil
import pyarrow as pa
import pyarrow.parquet as pq

from tessera.config.models import SyncConfig
from tessera.datasets.build import expression_failed, value_error
from tessera.errors import ConfigError, SyncError, TesseraError
from tessera.syncs import plan as P
from tessera.syncs.destinations import (
    DESTINATION_TYPES,
    FILE_TYPES,
    Destination,
    FileDestination,
    Refusal,
    SendContext,
    WebhookDestination,
    refused_keys,
)
from tessera.syncs.tables import MySQLDestination, PostgresDestination

STATE_SCOPE = "sync"  # metadata store states: what the warehouse state of each sync describes
FAILED_SCHEMA = pa.schema([(P.KEY, pa.string()), ("_tessera_error", pa.string())])
FAILED_CHUNK = 200_000  # failed records loaded into the warehouse at a time
# A filter using these gives other rows on another day, on the same data.
VOLATILE = re.compile(r"\b(current_date|today|now|current_timestamp|random)\b", re.IGNORECASE)

Progress = Callable[[str, str, int, int], None]  # (step, label, done, total)


def make_destination(ctx: SendContext) -> Destination:
    kind = ctx.conn.type
    if kind in FILE_TYPES:
        return FileDestination(ctx)
    if kind == "postgresql":
        return PostgresDestination(ctx)
    if kind in ("mysql", "mariadb"):
        return MySQLDestination(ctx)
    if kind == "webhook":
        return WebhookDestination(ctx)
    raise SyncError(f"{ctx.where}: a {kind} connection is not a sync destination; syncs write to files (local, "
                    "ftp, ftps, sftp), tables (postgresql, mysql, mariadb) or a webhook")


@dataclass
class SyncResult:
    """What one sync did (or, for a dry run, would do)."""

    name: str
    status: str = "succeeded"  # succeeded | failed | planned (dry run)
    dry_run: bool = False
    run_id: int | None = None
    inserted: int = 0  # dry run: records that would be inserted (the same for the others)
    updated: int = 0
    deleted: int = 0
    failed: int = 0
    unchanged: int = 0
    retried: int = 0  # records that had failed before, sent successfully this time
    planned: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def plan(self) -> str:
        """``N new, M updated, K deleted, U unchanged``."""
        return P.plan_text(self.planned) if self.planned else "nothing planned"

    def counts(self) -> dict:
        return {"inserted": self.inserted, "updated": self.updated, "deleted": self.deleted, "failed": self.failed,
                "unchanged": self.unchanged, "retried": self.retried, "plan": self.plan,
                "seconds": round(self.seconds, 3)}

    def __str__(self) -> str:
        if self.dry_run:
            text = f"{self.name}: {self.plan}" if self.status != "failed" else f"{self.name}: failed"
        else:
            text = (f"{self.name}: {self.status}, {self.inserted} inserted, {self.updated} updated, "
                    f"{self.deleted} deleted, {self.failed} failed, {self.unchanged} unchanged")
        if self.errors:
            text += f" ({self.errors[0]})"
        return text


def run_syncs(ws, names: list[str] | None = None, *, dry_run: bool = False, lock: bool = True,
              progress: Progress | None = None) -> list[SyncResult]:
    """Run the syncs of the workspace (all, or ``names``, in the configuration's order).

    Args:
        ws: the Workspace.
        names: the syncs to run; None for all of them.
        dry_run: compute each plan (``result.plan``) and send nothing, change nothing.
        lock: take the workspace's write lock for each sync (False when the caller holds it).
        progress: called with (step, label, done, total) while records are sent.

    Returns one SyncResult per sync; a sync that fails has ``status == "failed"`` and its
    ``errors``, and never stops the others. Raises ConfigError for an unknown name.
    """
    config = ws.config
    by_name = {s.name: s for s in config.syncs}
    unknown = [n for n in names or [] if n not in by_name]
    if unknown:
        raise ConfigError(f"unknown sync(s) {', '.join(unknown)} (known: {', '.join(sorted(by_name)) or 'none'})")
    todo = [s for s in config.syncs if names is None or s.name in names]
    return [_run_one(ws, s, dry_run=dry_run, lock=lock, progress=progress) for s in todo]


def _message(exc: BaseException, ws=None, sync: SyncConfig | None = None) -> str:
    if sync is not None and sync.filter and isinstance(exc, Exception) and value_error(ws.adapter, exc):
        # the engine could not compute the sync's filter on the dataset's rows: name it, not the SQL
        i = next((n for n, s in enumerate(ws.config.syncs) if s.name == sync.name), 0)
        return str(expression_failed(f"Sync '{sync.name}', filter", f"syncs[{i}] ({sync.name}).filter", sync.filter,
                                     exc, tail="Nothing was sent."))
    return str(exc) if isinstance(exc, TesseraError) else f"{type(exc).__name__}: {exc}"


def _run_one(ws, sync: SyncConfig, *, dry_run: bool, lock: bool, progress: Progress | None) -> SyncResult:
    t0 = time.perf_counter()
    result = SyncResult(sync.name, dry_run=dry_run, status="planned" if dry_run else "succeeded")
    if dry_run:
        try:
            SyncJob(ws, sync, None, progress).plan_only(result)
        except Exception as exc:  # noqa: BLE001 - one sync never stops the others
            result.status = "failed"
            result.errors.insert(0, _message(exc, ws, sync))
        result.seconds = time.perf_counter() - t0
        return result
    try:
        with ws.writing() if lock else nullcontext():
            ws.store.mark_stale_runs(psutil.pid_exists)
            run_id = ws.store.start_run("sync", sync.name, os.getpid())
            result.run_id = run_id
            try:
                SyncJob(ws, sync, run_id, progress).run(result)
            except BaseException as exc:
                result.status = "failed"
                result.errors.insert(0, _message(exc, ws, sync))
                if not isinstance(exc, Exception):  # interrupted: recorded, then let it go
                    ws.store.finish_run(run_id, "killed", counts=result.counts(), error=_message(exc) or "interrupted")
                    raise
            result.seconds = time.perf_counter() - t0
            ws.store.finish_run(run_id, result.status, counts=result.counts(),
                                error="; ".join(result.errors[:5]) if result.errors else None)
    except TesseraError as exc:  # the write lock is held by another process
        result.status = "failed"
        result.errors.insert(0, str(exc))
    result.seconds = time.perf_counter() - t0
    return result


def reset_sync(ws, name: str) -> None:
    """Forget what ``name`` has sent: its next run sends every record as new."""
    adapter = ws.adapter
    adapter.drop_table(P.state_table_name(name))
    ws.store.delete_state(STATE_SCOPE, name)


class _Failures:
    """The records not delivered in this run (key and error), spooled to a local Parquet file:
    the warehouse cannot be written while the changes are streamed from it, and memory stays
    flat however many records fail."""

    def __init__(self):
        self.dir = Path(tempfile.mkdtemp(prefix="tessera-sync-failed-"))
        self.path = self.dir / "failed.parquet"
        self.writer: pq.ParquetWriter | None = None
        self.count = 0

    def add(self, batch: pa.RecordBatch, refusals) -> None:
        for refusal in refusals:
            keys, errors = refused_keys(batch, refusal)
            if len(keys):
                if self.writer is None:
                    self.writer = pq.ParquetWriter(str(self.path), FAILED_SCHEMA)
                self.writer.write_table(pa.table([keys, errors], schema=FAILED_SCHEMA))
                self.count += len(keys)

    def write(self, adapter, name: str):
        """The failures as a warehouse table ``name`` (loaded in chunks)."""
        if self.writer is not None:
            self.writer.close()
            self.writer = None
        adapter.create_table(name, FAILED_SCHEMA.empty_table(), temp=True)
        if self.count:
            for batch in pq.ParquetFile(str(self.path)).iter_batches(batch_size=FAILED_CHUNK):
                adapter.append(name, pa.Table.from_batches([batch], schema=FAILED_SCHEMA))
        return adapter.table(name)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
        shutil.rmtree(self.dir, ignore_errors=True)


class SyncJob:
    """One run of one sync (see the module's documentation)."""

    def __init__(self, ws, sync: SyncConfig, run_id: int | None, progress: Progress | None = None):
        self.ws = ws
        self.sync = sync
        self.run_id = run_id
        self.progress = progress or (lambda *a: None)
        self.adapter = ws.adapter

    # ------------------------------------------------------------------ plan
    def _prepare(self, result: SyncResult):
        sync = self.sync
        conn = self.ws.connection(sync.connection)
        if conn.type not in DESTINATION_TYPES:
            raise SyncError(f"sync '{sync.name}': connection '{conn.name}' is a {conn.type} connection; syncs write "
                            "to files (local, ftp, ftps, sftp), tables (postgresql, mysql, mariadb) or a webhook")
        if conn.type in ("postgresql", "mysql", "mariadb") and not sync.table:
            raise SyncError(f"sync '{sync.name}': a sync to a {conn.type} connection needs table: the destination "
                            "table's name")
        prepared = P.rows_to_send(self.ws, sync, conn)
        return conn, prepared

    def _plan(self, prepared: P.Prepared, state, name: str | None):
        """The plan, materialized as ``name`` (None: not materialized, for a dry run). A key that
        is not unique in the rows is made unique first (one row per key, with a note)."""
        adapter = self.adapter
        plan = P.classify(prepared, state)
        if name is not None:
            plan = adapter.create_table(name, plan, temp=True)
        if prepared.sync.key != "tessera_id":  # tessera_id is unique by construction
            duplicates = P.duplicate_keys(adapter, plan)
            if duplicates:
                P.deduplicate(prepared, duplicates)
                plan = P.classify(prepared, state)
                if name is not None:
                    plan = adapter.create_table(name, plan, temp=True)
        return plan

    def _state(self, prepared: P.Prepared, result: SyncResult, *, reset: bool):
        """The state, or None when there is none yet (or when it describes another destination)."""
        meta = self.ws.store.get_state(STATE_SCOPE, self.sync.name) or {}
        name = P.state_table_name(self.sync.name)
        exists = self.adapter.exists(name)
        if exists and meta.get("destination") not in (None, prepared.destination_identity):
            result.notes.append("the destination or the key changed since the last run: every record is sent "
                                "again as new (the previous destination is left as it is)")
            if not reset:
                return None
            self.adapter.drop_table(name)
            exists = False
        elif meta.get("content") not in (None, prepared.content_identity):
            result.notes.append("the fields, filter, opt-ins or mode changed since the last run")
        if not exists:
            if not reset:
                return None
            P.create_empty_state(self.adapter, self.sync.name)
        return P.load_state(self.adapter, self.sync.name)

    def _nothing_new(self, prepared: P.Prepared, result: SyncResult) -> bool:
        """Whether the last run saw this very publication of the dataset, with the same
        configuration, and left no failed record: then nothing can have changed, and the rows are
        not even hashed. A filter that depends on the date (current_date...) is always evaluated."""
        sync = self.sync
        meta = self.ws.store.get_state(STATE_SCOPE, sync.name) or {}
        published = self.adapter.published_target(sync.dataset)
        same = (published is not None and meta.get("published") == published
                and meta.get("content") == prepared.content_identity
                and meta.get("destination") == prepared.destination_identity
                and meta.get("failed") == 0 and isinstance(meta.get("rows"), int)
                and not (sync.filter and VOLATILE.search(sync.filter))
                and not sync.segment  # membership also changes after event loads, between publications
                and self.adapter.exists(P.state_table_name(sync.name)))
        if same:
            result.planned = {**{op: 0 for op in (*P.CHANGES, "keep", "drop", "retried")}, "unchanged": meta["rows"]}
            result.unchanged = meta["rows"]
            result.notes.append(f"dataset '{sync.dataset}' was not published again since the last run: nothing to send")
        return same

    def plan_only(self, result: SyncResult) -> None:
        """A dry run: the counts of the plan, nothing written anywhere."""
        _conn, prepared = self._prepare(result)
        if self._nothing_new(prepared, result):
            return
        state = self._state(prepared, result, reset=False)
        if state is None:
            counts = {op: 0 for op in (*P.CHANGES, "unchanged", "keep", "drop", "retried")}
            counts["insert"] = int(self.adapter.execute(prepared.rows[P.KEY].nunique()))
        else:
            counts = P.plan_counts(self.adapter, self._plan(prepared, state, None))
        result.notes.extend(prepared.notes)
        result.planned = counts
        result.inserted, result.updated = counts["insert"], counts["update"]
        result.deleted, result.unchanged = counts["delete"], counts["unchanged"]

    # ------------------------------------------------------------------ run
    def run(self, result: SyncResult) -> None:
        adapter = self.adapter
        sync = self.sync
        started = datetime.now(timezone.utc)
        self.progress("sync", sync.name, 0, 0)
        conn, prepared = self._prepare(result)
        if self._nothing_new(prepared, result):
            return
        published = adapter.published_target(sync.dataset)
        state = self._state(prepared, result, reset=True)
        plan_name = P.work_table_name(sync.name, "plan")
        failed_name = P.work_table_name(sync.name, "failed")
        failures = _Failures()
        try:
            plan = self._plan(prepared, state, plan_name)
            result.notes.extend(prepared.notes)
            counts = P.plan_counts(adapter, plan)
            result.planned = counts
            total = sum(counts[op] for op in P.CHANGES)
            all_failed = None
            if total:
                ctx = SendContext(sync, conn, self.run_id, prepared.fields, prepared.field_types,
                                  prepared.key_field, started)
                all_failed = self._send(ctx, P.changes(prepared, plan), total, failures)
            if total or P.state_dirty(counts, adapter, state):
                outcome = P.with_outcome(plan, failures.write(adapter, failed_name), all_failed)
                done, errors = P.outcome_counts(adapter, outcome)
                adapter.create_table(P.state_table_name(sync.name), P.next_state(outcome, started.replace(tzinfo=None)))
            else:
                done = {"inserted": 0, "updated": 0, "deleted": 0, "failed": 0,
                        "unchanged": counts["unchanged"], "retried": 0}
                errors = []
            self.ws.store.set_state(STATE_SCOPE, sync.name, {
                "destination": prepared.destination_identity, "content": prepared.content_identity,
                "published": published, "rows": counts["insert"] + counts["update"] + counts["unchanged"],
                "failed": done["failed"], "last_run": self.run_id, "fields": list(prepared.fields),
                "at": started.isoformat()})
        finally:
            failures.close()
            adapter.drop_table(plan_name)
            adapter.drop_table(failed_name)
        for key in ("inserted", "updated", "deleted", "failed", "unchanged", "retried"):
            setattr(result, key, done[key])
        result.errors.extend(f"{n} record(s): {e}" if n > 1 else e for e, n in errors)
        if result.failed:
            result.status = "failed"

    def _send(self, ctx: SendContext, stream, total: int, failures: _Failures) -> str | None:
        """Stream the changes to the destination; refused records go to ``failures``. When the
        destination goes down, the rest of the stream is recorded as failed with its error.
        Returns the error that failed every change (the destination could not be opened or
        finished), else None."""
        dest = make_destination(ctx)
        try:
            dest.open()
        except Exception as exc:  # noqa: BLE001 - reported as the failure of every change
            dest.close()
            return _message(exc)
        reader = self.adapter.to_batches(stream, dest.batch_rows)
        batches = _Prefetch(reader, dest.batch_rows, dest.encode)
        sent = 0
        down: str | None = None
        try:
            for batch, encoded in batches:
                if down is None:
                    try:
                        failures.add(batch, dest.send(batch, encoded))
                    except Exception as exc:  # noqa: BLE001 - the destination is down: stop sending
                        down = _message(exc)
                        batches.encode = None  # the rest is only recorded
                if down is not None:
                    failures.add(batch, [Refusal(None, down)])
                sent += batch.num_rows
                self.progress("sync", ctx.sync.name, sent, total)
            if down is None:
                try:
                    dest.finish()
                except Exception as exc:  # noqa: BLE001 - e.g. the file could not be uploaded
                    return _message(exc)
            return None
        finally:
            batches.close()
            _drain(reader)
            dest.close()


_END = object()


class _Prefetch:
    """Batches of at most ``rows`` rows read from ``reader`` in a thread, with ``encode(batch)``,
    a few ahead of the consumer: reading from the warehouse and encoding overlap sending."""

    def __init__(self, reader, rows: int, encode: Callable | None, depth: int = 2):
        self.reader = reader
        self.rows = rows
        self.encode = encode
        self.queue: queue.Queue = queue.Queue(maxsize=depth)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._work, name="tessera-sync-reader", daemon=True)
        self.thread.start()

    def _put(self, item) -> bool:
        while not self.stop.is_set():
            try:
                self.queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _work(self) -> None:
        try:
            for chunk in _quietly(self.reader):
                for start in range(0, chunk.num_rows, self.rows):
                    batch = chunk.slice(start, self.rows)
                    encode = self.encode
                    if not self._put((batch, encode(batch) if encode else None)):
                        return
            self._put(_END)
        except BaseException as exc:  # noqa: BLE001 - raised again in the consumer
            self._put(exc)

    def __iter__(self):
        while True:
            item = self.queue.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def close(self) -> None:
        self.stop.set()
        self.thread.join()


def _quietly(reader):
    """The reader's batches, without Ibis's deprecation warning of DuckDB's fetch_record_batch."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="fetch_record_batch", category=DeprecationWarning)
        yield from reader


def _drain(reader) -> None:
    """Release the engine's cursor of a stream stopped early."""
    try:
        reader.close()
    except Exception:  # noqa: BLE001 - nothing left to release
        pass
