"""The durable event log: append-only segment files of CRC-checked records.

Layout, under ``<workspace>/events/log/``::

    00000000000000000000.log    records from global offset 0
    00000000000067108912.log    the next segment starts where the previous one ended
    .writer.lock                held (flock) by the one process that appends

A record is ``length (u32 LE) | crc32 (u32 LE) | payload``, the CRC covering the length bytes
and the payload. A record's *offset* is its global byte position (segment base + position in
the segment); the loader keeps the offset of the next record to load.

Durability: :class:`GroupCommit` runs one writer thread. Requests hand it their record and
await a future; the thread takes every record waiting, writes them with one ``write`` and one
``fdatasync``, then resolves their futures. So a request is acknowledged only once its record
is on disk, and records that arrive together share one sync (group commit).

Recovery (:meth:`LogWriter.open`): a process killed in the middle of a write can leave a
partial record at the end of the last segment. It is found by its length or CRC and cut off;
it was never acknowledged, since acknowledgement waits for the sync that follows the write.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import struct
import threading
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from tessera.errors import TesseraError

log = logging.getLogger("tessera.collect")

HEADER = struct.Struct("<II")
SEGMENT_BYTES = 64 * 1024 * 1024
MAX_RECORD_BYTES = 4 * 1024 * 1024  # a request makes one record: at most 500 KB of JSON, plus refusals
_SUFFIX = ".log"


class LogError(TesseraError):
    """The log cannot be used (locked by another process, unreadable, or corrupt)."""

    code = "log_unavailable"
    status = 503


class LogGapError(LogError):
    """Records asked for are gone (segments deleted by hand); ``resume_at`` is the next one there is."""

    def __init__(self, message: str, resume_at: int):
        super().__init__(message)
        self.resume_at = resume_at


def record_header(payload: bytes) -> bytes:
    """The 8 bytes written before a payload: its length and the CRC of length and payload."""
    length = len(payload).to_bytes(4, "little")
    return length + zlib.crc32(payload, zlib.crc32(length)).to_bytes(4, "little")


def segment_name(base: int) -> str:
    return f"{base:020d}{_SUFFIX}"


def list_segments(directory: Path) -> list[tuple[int, Path]]:
    """The segments as (base offset, path), oldest first."""
    out = []
    for path in directory.glob(f"*{_SUFFIX}"):
        try:
            out.append((int(path.stem), path))
        except ValueError:
            continue
    return sorted(out)


def _valid_prefix(path: Path) -> int:
    """The length of the longest prefix of a segment made of whole records with a good CRC."""
    good = 0
    with open(path, "rb") as fh:
        while True:
            header = fh.read(HEADER.size)
            if len(header) < HEADER.size:
                return good
            length, crc = HEADER.unpack(header)
            if length > MAX_RECORD_BYTES:
                return good
            payload = fh.read(length)
            if len(payload) < length or zlib.crc32(payload, zlib.crc32(header[:4])) != crc:
                return good
            good += HEADER.size + length


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _lock_writer(directory: Path):
    """The writer lock of a log (an open file holding an exclusive flock), or LogError."""
    directory.mkdir(parents=True, exist_ok=True)
    fh = open(directory / ".writer.lock", "a+")
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.close()
        raise LogError(f"the event log {directory} is already written by another process (a running "
                       "tessera serve?): stop it, or serve another workspace") from None
    return fh


def check_free(directory: str | Path) -> None:
    """Fail early, with LogError, when another process writes the log (e.g. before a server starts)."""
    _lock_writer(Path(directory)).close()


class LogWriter:
    """Appends records to the log; one instance in one process at a time (a file lock sees to it).

    Not thread-safe: :class:`GroupCommit` calls it from its single writer thread.
    """

    def __init__(self, directory: str | Path, *, segment_bytes: int = SEGMENT_BYTES):
        self.directory = Path(directory)
        self.segment_bytes = segment_bytes
        self.base = 0  # global offset of the active segment
        self.position = 0  # bytes in the active segment
        self._fd: int | None = None
        self._lock_fh = None

    @property
    def end(self) -> int:
        """The global offset just past the last record."""
        return self.base + self.position

    def open(self) -> int:
        """Take the writer lock, cut a torn tail off the last segment; return the log's end."""
        self._lock_fh = _lock_writer(self.directory)
        segments = list_segments(self.directory)
        if not segments:
            self._open_segment(0)
            return self.end
        base, path = segments[-1]
        size = path.stat().st_size
        good = _valid_prefix(path)
        if good < size:
            log.warning("event log: cut %d bytes of an unfinished record off the end of %s (it was never "
                        "acknowledged)", size - good, path.name)
            with open(path, "r+b") as fh:
                fh.truncate(good)
                os.fsync(fh.fileno())
        self.base = base
        self.position = good
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        return self.end

    def _open_segment(self, base: int) -> None:
        if self._fd is not None:
            os.close(self._fd)
        path = self.directory / segment_name(base)
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
        _fsync_dir(self.directory)  # the new file's name must survive a crash too
        self.base = base
        self.position = 0

    def write(self, payloads: list[bytes]) -> list[int]:
        """Append records and sync them to disk; return their offsets.

        On an error (disk full...), what was not synced is cut off the segment again. (When the
        records spanned two segments, those of the first one stay: their requests, told of the
        failure, resend them, and de-duplication drops the copies.)
        """
        if self._fd is None:
            raise LogError("the event log is closed")
        offsets: list[int] = []
        chunks: list[bytes] = []
        size = 0
        for payload in payloads:
            if len(payload) > MAX_RECORD_BYTES:
                raise LogError(f"a record of {len(payload)} bytes is larger than {MAX_RECORD_BYTES}")
            record_size = HEADER.size + len(payload)
            if self.position + size + record_size > self.segment_bytes and self.position + size > 0:
                self._write_all(chunks, size)
                self._open_segment(self.end)
                chunks, size = [], 0
            offsets.append(self.end + size)
            chunks += (record_header(payload), payload)
            size += record_size
        self._write_all(chunks, size)
        return offsets

    def _write_all(self, chunks: list[bytes], size: int) -> None:
        if not chunks:
            return
        data = memoryview(b"".join(chunks))
        start = self.position
        try:
            written = 0
            while written < size:
                written += os.write(self._fd, data[written:])
            os.fdatasync(self._fd)
        except OSError:
            try:
                os.ftruncate(self._fd, start)
            except OSError:
                log.exception("event log: could not cut a failed write off the segment")
                self.close()
            raise
        self.position += size

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self._lock_fh is not None:
            self._lock_fh.close()
            self._lock_fh = None


@dataclass
class Record:
    offset: int
    payload: bytes


def read_records(directory: str | Path, start: int, end: int, *, max_bytes: int = 32 * 1024 * 1024
                 ) -> tuple[list[Record], int]:
    """The records from offset ``start`` up to ``end`` (at most about ``max_bytes``), and the next offset.

    ``end`` must be a record boundary that was synced (the writer's committed end).
    """
    directory = Path(directory)
    segments = list_segments(directory)
    records: list[Record] = []
    offset = start
    total = 0
    for i, (base, path) in enumerate(segments):
        seg_end = segments[i + 1][0] if i + 1 < len(segments) else None
        if seg_end is not None and seg_end <= offset:
            continue
        if base > offset:
            raise LogGapError(f"the event log has no record at offset {offset}: the next segment starts at "
                              f"{base} ({path.name}); were segments deleted by hand?", base)
        stop = end if seg_end is None else min(end, seg_end)
        if offset >= stop:
            break
        with open(path, "rb") as fh:
            fh.seek(offset - base)
            data = fh.read(min(stop - offset, max_bytes - total + MAX_RECORD_BYTES + HEADER.size))
        view = memoryview(data)
        pos = 0
        while pos + HEADER.size <= len(view) and offset < stop and total < max_bytes:
            length, crc = HEADER.unpack_from(view, pos)
            payload = view[pos + HEADER.size: pos + HEADER.size + length]
            if len(payload) < length or zlib.crc32(payload, zlib.crc32(view[pos:pos + 4])) != crc:
                raise LogError(f"the event log is corrupt at offset {offset} ({path.name}, byte {offset - base}): "
                               "a synced record fails its CRC check")
            records.append(Record(offset, bytes(payload)))
            size = HEADER.size + length
            pos += size
            offset += size
            total += size
        if total >= max_bytes or offset >= end:
            break
    return records, offset


def delete_segments_before(directory: str | Path, offset: int) -> list[Path]:
    """Delete the segments whose records are all before ``offset`` (never the last one)."""
    segments = list_segments(Path(directory))
    deleted = []
    for (base, path), (next_base, _) in zip(segments, segments[1:]):
        if next_base <= offset:
            path.unlink(missing_ok=True)
            deleted.append(path)
    return deleted


class GroupCommit:
    """One writer thread that batches the records waiting into one write and one sync.

    ``await commit.append(payload)`` returns the record's offset once it is on disk. When the
    write fails, the awaiting requests get the error (and answer 503 so clients retry).
    """

    def __init__(self, writer: LogWriter, *, on_commit: Callable[[int], None] | None = None,
                 max_pending_bytes: int = 64 * 1024 * 1024):
        self.writer = writer
        self.on_commit = on_commit
        self.max_pending_bytes = max_pending_bytes
        self._cond = threading.Condition()
        self._pending: list[tuple[bytes, asyncio.Future]] = []
        self._pending_bytes = 0
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.failed: BaseException | None = None

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._thread = threading.Thread(target=self._run, name="tessera-log-writer", daemon=True)
        self._thread.start()

    @property
    def overloaded(self) -> bool:
        """Too much is waiting for the disk: new requests are asked to come back later."""
        return self._pending_bytes > self.max_pending_bytes

    def append(self, payload: bytes) -> asyncio.Future:
        """Queue a record; the returned future gives its offset once it is synced."""
        future = self._loop.create_future()
        with self._cond:
            if self._stopping:
                raise LogError("the event log is shutting down")
            self._pending.append((payload, future))
            self._pending_bytes += len(payload)
            self._cond.notify()
        return future

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._stopping:
                    self._cond.wait()
                if not self._pending:
                    return
                batch, self._pending = self._pending, []
                self._pending_bytes -= sum(len(p) for p, _ in batch)
            try:
                offsets = self.writer.write([p for p, _ in batch])
                error = None
            except BaseException as exc:  # noqa: BLE001 - handed to the requests waiting
                log.exception("event log: a write failed; the requests waiting for it get 503")
                offsets, error = [], exc
            if error is None and self.on_commit is not None:
                self.on_commit(self.writer.end)
            self._loop.call_soon_threadsafe(_resolve, [f for _, f in batch], offsets, error)

    def stop(self) -> None:
        """Write what is waiting, then end the thread."""
        with self._cond:
            self._stopping = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join()


def _resolve(futures: list[asyncio.Future], offsets: list[int], error: BaseException | None) -> None:
    for i, future in enumerate(futures):
        if future.done():  # the request was cancelled (client gone): nothing to tell
            continue
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(offsets[i])
