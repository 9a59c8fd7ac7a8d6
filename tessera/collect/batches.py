"""Typing logged events into Arrow tables, in a child process of the server.

:func:`build_batch` turns log records (JSON payloads) into one Arrow table of typed events and
one of refused messages. It is plain Python over each message, about as costly as everything
else the server does together: in the server's process it would hold the interpreter lock
against the readers and the run. :class:`BatchProcess` runs it in a child process that reads
the log itself and hands the two tables back as Arrow IPC streams; the loader thread only waits
(without the lock) and appends them to the warehouse.

The child is ``python -m tessera.collect.batches``: it imports this module and the log's, never
the rest of Tessera. Requests are JSON lines on its stdin; each answer is a length-prefixed JSON
header followed by two length-prefixed Arrow IPC streams (events, refused messages).
"""

from __future__ import annotations

import json
import logging
import struct
import subprocess
import sys
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import orjson
import pyarrow as pa

from tessera.collect.log import LogGapError, read_records
from tessera.collect.messages import parse_time

log = logging.getLogger("tessera.collect")

_TS = pa.timestamp("us")
EVENT_SCHEMA = pa.schema([
    ("message_id", pa.string()),
    ("connection", pa.string()),
    ("type", pa.string()),
    ("event", pa.string()),
    ("name", pa.string()),
    ("user_id", pa.string()),
    ("anonymous_id", pa.string()),
    ("previous_id", pa.string()),
    ("group_id", pa.string()),
    ("email", pa.string()),
    ("timestamp", _TS),
    ("original_timestamp", _TS),
    ("sent_at", _TS),
    ("received_at", _TS),
    ("properties", pa.string()),
    ("traits", pa.string()),
    ("context", pa.string()),
    ("integrations", pa.string()),
    ("extra", pa.string()),  # the other top-level fields (page category, channel...), as JSON
    ("log_offset", pa.int64()),
])
REJECT_SCHEMA = pa.schema([
    ("connection", pa.string()),
    ("received_at", _TS),
    ("reason", pa.string()),
    ("message", pa.string()),
    ("log_offset", pa.int64()),
])
_MAPPED = frozenset({
    "messageId", "type", "event", "name", "userId", "anonymousId", "previousId", "groupId", "timestamp",
    "originalTimestamp", "sentAt", "receivedAt", "properties", "traits", "context", "integrations", "writeKey",
})
_EPOCH = datetime(1970, 1, 1)


def _utc(value) -> datetime | None:
    """A naive UTC datetime from an ISO 8601 string (no offset: taken as UTC)."""
    if value is None:
        return None
    dt = parse_time(value)
    if dt is None or dt.tzinfo is None:
        return dt
    return dt.astimezone(timezone.utc).replace(tzinfo=None)


def _text(value) -> str | None:
    if value is None or value == "":
        return None
    return value if type(value) is str else str(value)


def _json(value) -> str | None:
    # decode() copies into an exact-size str: orjson's bytes keep a buffer of several KB each.
    return None if value is None else orjson.dumps(value).decode()


@dataclass
class Batch:
    events: pa.Table
    rejects: pa.Table
    duplicates: int  # message ids repeated inside the batch


def build_batch(records) -> Batch:
    """Typed columns of the messages of log records (first occurrence of a message id wins)."""
    names = EVENT_SCHEMA.names
    cols: dict[str, list] = {n: [] for n in names}
    rejects: dict[str, list] = {n: [] for n in REJECT_SCHEMA.names}
    seen: set[str] = set()
    duplicates = 0
    for record in records:
        data = orjson.loads(record.payload)
        connection = data["connection"]
        received = _EPOCH + timedelta(microseconds=data["received_at"])
        request_sent = _utc(data.get("sent_at"))
        for m in data["messages"]:
            message_id = m["messageId"]
            if message_id in seen:
                duplicates += 1
                continue
            seen.add(message_id)
            kind = m["type"]
            traits = m.get("traits")
            context = m.get("context")
            context_traits = context.get("traits") if context else None
            if type(context_traits) is not dict:
                context_traits = None
            if kind == "identify" and traits is None:
                traits = context_traits  # RudderStack's clients send an identify's traits there
            email = traits.get("email") if kind == "identify" and traits else None
            if email is None and context_traits:
                email = context_traits.get("email")
            original = _utc(m.get("originalTimestamp") or m.get("timestamp"))
            sent = _utc(m["sentAt"]) if m.get("sentAt") else request_sent
            if m.get("timestamp") and m.get("originalTimestamp"):
                # Both sent (rudder-sdk-node): ``timestamp`` is the caller's, the event time as the
                # Segment spec defines it; ``originalTimestamp`` is the device's clock at the call.
                timestamp = _utc(m["timestamp"])
            elif original is not None and sent is not None:
                timestamp = received - (sent - original)
            else:
                timestamp = original or received
            extra = {k: v for k, v in m.items() if k not in _MAPPED}
            cols["message_id"].append(message_id)
            cols["connection"].append(connection)
            cols["type"].append(kind)
            cols["event"].append(_text(m.get("event")))
            cols["name"].append(_text(m.get("name")))
            cols["user_id"].append(_text(m.get("userId")))
            cols["anonymous_id"].append(_text(m.get("anonymousId")))
            cols["previous_id"].append(_text(m.get("previousId")))
            cols["group_id"].append(_text(m.get("groupId")))
            cols["email"].append(email.strip().lower() or None if type(email) is str else None)
            cols["timestamp"].append(timestamp)
            cols["original_timestamp"].append(original)
            cols["sent_at"].append(sent)
            cols["received_at"].append(received)
            cols["properties"].append(_json(m.get("properties")))
            cols["traits"].append(_json(traits))
            cols["context"].append(_json(context))
            cols["integrations"].append(_json(m.get("integrations")))
            cols["extra"].append(_json(extra) if extra else None)
            cols["log_offset"].append(record.offset)
        for reject in data.get("rejects") or ():
            rejects["connection"].append(connection)
            rejects["received_at"].append(received)
            rejects["reason"].append(reject["reason"])
            rejects["message"].append(reject.get("message"))
            rejects["log_offset"].append(record.offset)
    events = pa.table([pa.array(cols[n], type=EVENT_SCHEMA.field(n).type) for n in names], schema=EVENT_SCHEMA)
    rejected = pa.table([pa.array(rejects[n], type=REJECT_SCHEMA.field(n).type) for n in REJECT_SCHEMA.names],
                        schema=REJECT_SCHEMA)
    return Batch(events, rejected, duplicates)


def read_batch(log_dir: str | Path, offset: int, end: int, max_bytes: int) -> tuple[int, Batch, int]:
    """The records from ``offset`` up to ``end`` (about ``max_bytes``), typed: (records, batch, next offset).

    Raises:
        LogGapError: the records at ``offset`` are gone.
    """
    records, next_offset = read_records(log_dir, offset, end, max_bytes=max_bytes)
    return len(records), build_batch(records), next_offset


_LENGTH = struct.Struct("<Q")


def _ipc(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def _serve(log_dir: str) -> None:
    """The child's loop: one batch per request line, until stdin closes."""
    out = sys.stdout.buffer
    for line in sys.stdin.buffer:
        ask = json.loads(line)
        parts: list[bytes] = []
        try:
            n, batch, next_offset = read_batch(log_dir, ask["offset"], ask["end"], ask["max_bytes"])
            head = {"records": n, "duplicates": batch.duplicates, "next": next_offset}
            parts = [_ipc(batch.events), _ipc(batch.rejects)]
        except LogGapError as exc:
            head = {"gap": str(exc), "resume_at": exc.resume_at}
        except Exception as exc:  # noqa: BLE001 - told to the server, which logs it and tries again
            head = {"error": f"{type(exc).__name__}: {exc}"}
        data = json.dumps(head).encode()
        out.write(_LENGTH.pack(len(data)) + data)
        for part in parts:
            out.write(_LENGTH.pack(len(part)) + part)
        out.flush()


class BatchProcess:
    """The child process that types the log's records (see the module's documentation).

    Started at the first :meth:`read`; started again after it died. One caller at a time (the
    loader thread)."""

    def __init__(self, log_dir: str | Path):
        self.log_dir = str(log_dir)
        self._proc: subprocess.Popen | None = None
        self._lock = threading.Lock()

    def read(self, offset: int, end: int, max_bytes: int) -> tuple[int, Batch, int]:
        """As :func:`read_batch`, in the child process."""
        with self._lock:
            if self._proc is None or self._proc.poll() is not None:
                self._proc = subprocess.Popen([sys.executable, "-m", "tessera.collect.batches", self.log_dir],
                                              stdin=subprocess.PIPE, stdout=subprocess.PIPE)
            proc = self._proc
            try:
                proc.stdin.write(json.dumps({"offset": offset, "end": end, "max_bytes": max_bytes}).encode() + b"\n")
                proc.stdin.flush()
                head = json.loads(self._frame(proc))
                if "gap" in head:
                    raise LogGapError(head["gap"], head["resume_at"])
                if "error" in head:
                    raise RuntimeError(f"typing the logged events failed: {head['error']}")
                events = pa.ipc.open_stream(self._frame(proc)).read_all()
                rejects = pa.ipc.open_stream(self._frame(proc)).read_all()
            except (OSError, EOFError, ValueError):
                self._stop()  # a broken child: the next read starts a new one
                raise
        return head["records"], Batch(events, rejects, head["duplicates"]), head["next"]

    @staticmethod
    def _frame(proc: subprocess.Popen) -> bytes:
        size = proc.stdout.read(_LENGTH.size)
        if len(size) < _LENGTH.size:
            raise EOFError(f"the event typing process ended (exit code {proc.poll()})")
        (n,) = _LENGTH.unpack(size)
        data = proc.stdout.read(n)
        if len(data) < n:
            raise EOFError(f"the event typing process ended (exit code {proc.poll()})")
        return data

    def _stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        try:
            proc.stdin.close()
        except OSError:
            pass
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def close(self) -> None:
        with self._lock:
            self._stop()


if __name__ == "__main__":
    _serve(sys.argv[1])
