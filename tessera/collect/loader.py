"""The loader: moves logged events into the warehouse table ``_tessera_events`` in micro-batches.

It runs as a thread of the server (:class:`tessera.collect.service.Collector`), which owns the
workspace, through a warehouse connection of its own: it keeps loading while a run builds the
next publication (the run reads the events of its snapshot). Each tick:

1. reads the records from the last loaded offset up to the log's synced end;
2. builds one Arrow table of typed columns (and one of refused messages);
3. appends the events that are not there yet and records the new offset with
   ``store.set_state("collect", "offset", ...)``.

Without a server connection (``Loader(workspace)``), a load takes the workspace write lock
without waiting, opens the warehouse and closes it after.

De-duplication: a message id is stored once per workspace. Inside a micro-batch the first
occurrence wins; across batches, the batch's ids are semi-joined (in SQL) with the ids loaded
in the :data:`DEDUPE_WINDOW` before the batch. The server also answers at once, without
logging them again, the ids it accepted recently. A crash between the append and the offset
update replays the batch, which de-duplication then drops: no event is stored twice.

Event time: a message that carries both ``timestamp`` and ``originalTimestamp`` (rudder-sdk-node
sends both) has the caller's ``timestamp`` as its event time, as the Segment spec defines it.
Otherwise ``timestamp`` is corrected for the client's clock, as Segment does:
``receivedAt - (sentAt - originalTimestamp)``, where ``originalTimestamp`` is the message's
``originalTimestamp`` or else its ``timestamp`` (what the server libraries send), and
``sentAt`` the message's or else the request's. Without ``sentAt`` the client's time is kept;
without a client time, ``receivedAt``. All times are stored as UTC ``TIMESTAMP``.

Traits and e-mail: an identify's ``traits`` are its ``traits``, or else its ``context.traits``
(where RudderStack's clients put them). ``email`` is an identify's ``traits.email``, or else any
message's ``context.traits.email``, trimmed and lower-cased (a group's traits describe the group,
so their e-mail is not the user's).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import ibis
import pyarrow as pa
import pyarrow.compute as pc

from tessera.collect.batches import EVENT_SCHEMA, REJECT_SCHEMA, Batch, BatchProcess, build_batch, read_batch
from tessera.collect.log import LogGapError, delete_segments_before
from tessera.errors import WorkspaceError
from tessera.privacy.suppression import drop_suppressed_events, has_suppressions
from tessera.privacy.suppression import salt as privacy_salt
from tessera.workspace import Workspace

log = logging.getLogger("tessera.collect")

__all__ = ["EVENT_SCHEMA", "EVENTS_TABLE", "REJECT_SCHEMA", "REJECTS_TABLE", "Batch", "LoadResult", "Loader",
           "build_batch", "log_directory"]

EVENTS_TABLE = "_tessera_events"
REJECTS_TABLE = "_tessera_events_rejects"
STATE_SCOPE = "collect"
STATE_OFFSET = "offset"
DEDUPE_WINDOW = timedelta(hours=48)
BATCH_BYTES = 16 * 1024 * 1024  # log bytes per micro-batch (about 30k events of 500 bytes)

def not_loaded_yet(adapter, events: pa.Table) -> pa.Table:
    """The events whose message id is not in ``_tessera_events`` yet (within the de-duplication window)."""
    if events.num_rows == 0 or not adapter.exists(EVENTS_TABLE):
        return events
    table = adapter.table(EVENTS_TABLE)
    since = pc.min(events["received_at"]).as_py() - DEDUPE_WINDOW
    ids = ibis.memtable(events.select(["message_id"]))
    known = ids.semi_join(table.filter(table.received_at >= since), "message_id")
    loaded = adapter.to_arrow(known)["message_id"]
    if len(loaded) == 0:
        return events
    return events.filter(pc.invert(pc.is_in(events["message_id"], value_set=loaded.combine_chunks())))


def rejects_not_loaded_yet(adapter, rejects: pa.Table) -> pa.Table:
    """The refused messages of records not loaded yet (a record's offset is its identity)."""
    if rejects.num_rows == 0 or not adapter.exists(REJECTS_TABLE):
        return rejects
    table = adapter.table(REJECTS_TABLE)
    first = pc.min(rejects["log_offset"]).as_py()
    loaded = adapter.to_arrow(table.filter(table.log_offset >= first).select("log_offset").distinct())["log_offset"]
    if len(loaded) == 0:
        return rejects
    return rejects.filter(pc.invert(pc.is_in(rejects["log_offset"], value_set=loaded.combine_chunks())))


@dataclass
class LoadResult:
    records: int
    events: int  # appended to the warehouse
    duplicates: int  # dropped: already loaded or repeated in the batch
    rejects: int
    offset: int  # the next offset to load
    suppressed: int = 0  # dropped: events of erased customers (tessera.privacy.suppression)


class Loader:
    """Loads the log of one workspace into its warehouse, one micro-batch per :meth:`load`."""

    def __init__(self, workspace: Workspace, *, batch_bytes: int = BATCH_BYTES, adapter=None,
                 batches: BatchProcess | None = None):
        self.workspace = workspace
        # The server types the records in a child process (it would hold the interpreter lock
        # against the readers and the run); elsewhere, here.
        self.batches = batches
        # The server's own warehouse connection for events (it owns the workspace); without one,
        # each load opens the warehouse under the write lock and closes it after.
        self.adapter = adapter
        self.log_dir = log_directory(workspace.path)
        self.batch_bytes = batch_bytes
        self.offset = int(workspace.store.get_state(STATE_SCOPE, STATE_OFFSET, 0) or 0)
        self._prepared: tuple[int, int, Batch, int] | None = None  # (offset, records, batch, next offset)
        self._suppressed = 0  # events of erased customers dropped by the last append

    def check_offset(self, end: int) -> None:
        """After a restart: a loaded offset beyond the log's end means the disk lost synced data."""
        if self.offset > end:
            log.error("event loader: the loaded offset %d is beyond the end of the log (%d); the disk lost "
                      "synced records. Loading resumes at the end of the log.", self.offset, end)
            self.offset = end
            self.workspace.store.set_state(STATE_SCOPE, STATE_OFFSET, end)

    def load(self, end: int) -> LoadResult | None:
        """Load the records from the loaded offset up to ``end``; None when the workspace is busy."""
        if end <= self.offset:
            return LoadResult(0, 0, 0, 0, self.offset)
        if self._prepared is None or self._prepared[0] != self.offset:
            # Kept until loaded: a busy workspace (a run can take minutes) costs no re-reading.
            try:
                if self.batches is not None:
                    n_records, batch, next_offset = self.batches.read(self.offset, end, self.batch_bytes)
                else:
                    n_records, batch, next_offset = read_batch(self.log_dir, self.offset, end, self.batch_bytes)
            except LogGapError as exc:
                log.error("event loader: %s; loading resumes at offset %d", exc, exc.resume_at)
                self.offset = exc.resume_at
                return None
            self._prepared = (self.offset, n_records, batch, next_offset)
        _, n_records, batch, next_offset = self._prepared
        ws = self.workspace
        if self.adapter is not None:
            # Appends beside a run: the run reads the events of its own snapshot.
            new, refused = self._append(self.adapter, batch, next_offset)
        else:
            try:
                with ws.writing(wait=0):  # a run holds it: load at a later tick
                    try:
                        new, refused = self._append(ws.adapter, batch, next_offset)
                        if new.num_rows:
                            _refresh_event_segments(ws)
                    finally:
                        ws.close()
            except WorkspaceError as exc:
                log.debug("event loader: the workspace is busy (%s); next tick", exc)
                return None
        self.offset = next_offset
        self._prepared = None
        delete_segments_before(self.log_dir, next_offset)
        suppressed, self._suppressed = self._suppressed, 0
        if suppressed:
            log.info("event loader: %d event(s) of erased customers dropped", suppressed)
        return LoadResult(n_records, new.num_rows,
                          batch.duplicates + batch.events.num_rows - new.num_rows - suppressed,
                          refused.num_rows, next_offset, suppressed)

    def _append(self, adapter, batch: Batch, next_offset: int) -> tuple[pa.Table, pa.Table]:
        new = not_loaded_yet(adapter, batch.events)
        if has_suppressions(adapter):
            new, self._suppressed = drop_suppressed_events(adapter, new, privacy_salt(self.workspace.secrets))
        if new.num_rows:
            adapter.append(EVENTS_TABLE, new)
        refused = rejects_not_loaded_yet(adapter, batch.rejects)
        if refused.num_rows:
            adapter.append(REJECTS_TABLE, refused)
        self.workspace.store.set_state(STATE_SCOPE, STATE_OFFSET, next_offset)
        return new, refused


def _refresh_event_segments(ws: Workspace) -> None:
    """Segments with event conditions take the events just loaded; a failure is logged, never
    stops the loading (the next run recomputes every segment)."""
    try:
        if ws.config.segments:
            ws.refresh_event_segments(hold_lock=False)  # this loader holds the write lock
    except Exception as exc:  # noqa: BLE001 - a segment problem must not stop event loading
        log.error("event loader: segments were not refreshed after the load: %s", exc)


def configure_logging(level: int | str) -> None:
    """Tessera's messages at ``level``, other libraries' (alembic...) at warning and above."""
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("tessera").setLevel(level.upper() if isinstance(level, str) else level)


def log_directory(workspace_path: str | Path) -> Path:
    return Path(workspace_path) / "events" / "log"
