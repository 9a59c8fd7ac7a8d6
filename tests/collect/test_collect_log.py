"""The durable log: records round-trip, segments roll, a torn tail is cut on reopen, corruption is named."""

from __future__ import annotations

import asyncio
import os

import pytest

from tessera.collect.log import (
    HEADER, GroupCommit, LogError, LogGapError, LogWriter, delete_segments_before, list_segments, read_records,
)


def payloads(n: int, size: int = 100) -> list[bytes]:
    return [f"{i:06d}".encode() * (size // 6) for i in range(n)]


def test_records_come_back_in_order_with_their_offsets(tmp_path):
    writer = LogWriter(tmp_path)
    assert writer.open() == 0
    data = payloads(50)
    offsets = writer.write(data[:20]) + writer.write(data[20:])
    records, end = read_records(tmp_path, 0, writer.end)
    assert [r.payload for r in records] == data
    assert [r.offset for r in records] == offsets
    assert end == writer.end
    # From the middle, and a bounded read that stops at a record boundary.
    records, nxt = read_records(tmp_path, offsets[10], writer.end, max_bytes=1)
    assert [r.payload for r in records] == [data[10]] and nxt == offsets[11]
    writer.close()


def test_segments_roll_and_offsets_stay_global(tmp_path):
    writer = LogWriter(tmp_path, segment_bytes=1000)
    writer.open()
    data = payloads(30, size=300)
    offsets = writer.write(data[:15])
    offsets += writer.write(data[15:])
    segments = list_segments(tmp_path)
    assert len(segments) > 5
    records, end = read_records(tmp_path, 0, writer.end)
    assert [r.payload for r in records] == data and [r.offset for r in records] == offsets
    # Loaded segments are deleted; the last one always stays; reading on works.
    deleted = delete_segments_before(tmp_path, offsets[20])
    assert deleted and list_segments(tmp_path)[-1] == segments[-1]
    records, _ = read_records(tmp_path, offsets[20], writer.end)
    assert [r.payload for r in records] == data[20:]
    with pytest.raises(LogGapError) as exc:
        read_records(tmp_path, 0, writer.end)
    assert exc.value.resume_at == list_segments(tmp_path)[0][0]
    writer.close()


def test_a_torn_tail_is_cut_on_reopen(tmp_path):
    writer = LogWriter(tmp_path)
    writer.open()
    data = payloads(5)
    writer.write(data)
    end = writer.end
    writer.close()
    (_, path), = list_segments(tmp_path)
    # A record whose write was cut short: a whole header, half the payload.
    with open(path, "ab") as fh:
        fh.write(HEADER.pack(1000, 12345) + b"x" * 400)
    writer = LogWriter(tmp_path)
    assert writer.open() == end
    assert path.stat().st_size == end
    writer.write([b"after"])
    records, _ = read_records(tmp_path, 0, writer.end)
    assert [r.payload for r in records] == data + [b"after"]
    writer.close()


def test_a_record_with_a_bad_crc_ends_the_log_on_reopen(tmp_path):
    writer = LogWriter(tmp_path)
    writer.open()
    offsets = writer.write(payloads(3))
    writer.close()
    (_, path), = list_segments(tmp_path)
    raw = bytearray(path.read_bytes())
    raw[offsets[2] + HEADER.size + 3] ^= 0xFF  # flip a byte of the last record
    path.write_bytes(bytes(raw))
    writer = LogWriter(tmp_path)
    assert writer.open() == offsets[2]
    writer.close()


def test_corruption_before_the_synced_end_is_reported_not_skipped(tmp_path):
    writer = LogWriter(tmp_path)
    writer.open()
    offsets = writer.write(payloads(3))
    (_, path), = list_segments(tmp_path)
    with open(path, "r+b") as fh:
        fh.seek(offsets[1] + HEADER.size)
        fh.write(b"?")
    with pytest.raises(LogError, match=f"corrupt at offset {offsets[1]}"):
        read_records(tmp_path, 0, writer.end)
    writer.close()


def test_one_writer_per_log(tmp_path):
    first = LogWriter(tmp_path)
    first.open()
    with pytest.raises(LogError, match="already written by another process"):
        LogWriter(tmp_path).open()
    first.close()
    second = LogWriter(tmp_path)
    second.open()
    second.close()


def test_group_commit_syncs_concurrent_appends_together(tmp_path):
    writer = LogWriter(tmp_path)
    writer.open()
    ends = []
    syncs = 0
    original = os.fdatasync

    def counting_fdatasync(fd):
        nonlocal syncs
        syncs += 1
        original(fd)

    async def main():
        commit = GroupCommit(writer, on_commit=ends.append)
        commit.start()
        offsets = await asyncio.gather(*(commit.append(p) for p in payloads(200)))
        commit.stop()
        return offsets

    os.fdatasync = counting_fdatasync
    try:
        offsets = asyncio.run(main())
    finally:
        os.fdatasync = original
    assert offsets == sorted(offsets) and len(set(offsets)) == 200
    assert syncs < 200  # appends that arrived together shared a sync
    assert ends[-1] == writer.end
    records, _ = read_records(tmp_path, 0, writer.end)
    assert [r.payload for r in records] == payloads(200)
    writer.close()


def test_a_failed_write_is_cut_off_and_reported(tmp_path, monkeypatch):
    writer = LogWriter(tmp_path)
    writer.open()
    writer.write([b"good"])
    end = writer.end

    def disk_full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fdatasync", disk_full)
    with pytest.raises(OSError):
        writer.write([b"lost"])
    monkeypatch.undo()
    assert writer.end == end
    (_, path), = list_segments(tmp_path)
    assert path.stat().st_size == end
    writer.write([b"next"])
    records, _ = read_records(tmp_path, 0, writer.end)
    assert [r.payload for r in records] == [b"good", b"next"]
    writer.close()
