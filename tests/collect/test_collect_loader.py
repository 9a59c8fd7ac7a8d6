"""The loader in-process: replay after a crash stores nothing twice, a busy workspace delays a tick."""

from __future__ import annotations

import time

from collect_helpers import events, make_workspace, rejects

from tessera.collect.loader import EVENTS_TABLE, STATE_OFFSET, STATE_SCOPE, Loader, log_directory
from tessera.collect.log import LogWriter
from tessera.collect.messages import build_record, check_messages
from tessera.workspace import Workspace


def log_events(path, ids: list[str]) -> int:
    """Write one record per id to the workspace's log, as the server does; return the log's end.

    An id starting with ``bad`` makes a message without an event name (refused, logged as such).
    """
    writer = LogWriter(log_directory(path))
    writer.open()
    for message_id in ids:
        message = {"type": "track", "userId": "u", "messageId": message_id}
        if not message_id.startswith("bad"):
            message["event"] = "E"
        checked = check_messages([message], "batch", connection="web")
        writer.write([build_record("web", time.time_ns() // 1000, None, checked)])
    end = writer.end
    writer.close()
    return end


def test_a_replay_after_a_crash_between_append_and_offset_stores_nothing_twice(tmp_path):
    path = make_workspace(tmp_path / "ws")
    end = log_events(path, [f"m{i}" for i in range(10)] + ["bad1"])
    ws = Workspace.open(path)
    result = Loader(ws).load(end)
    assert (result.events, result.rejects, result.offset) == (10, 1, end)
    assert ws.store.get_state(STATE_SCOPE, STATE_OFFSET) == end
    # The crash: rows appended, offset not saved. The next loader starts from 0 again.
    ws.store.set_state(STATE_SCOPE, STATE_OFFSET, 0)
    end = log_events(path, ["m10", "m3"])  # one new event, and a retry of an old one
    result = Loader(ws).load(end)
    assert (result.events, result.duplicates, result.rejects, result.offset) == (1, 11, 0, end)
    ws.close()
    assert sorted(r["message_id"] for r in events(path)) == sorted(f"m{i}" for i in range(11))
    assert [r["reason"] for r in rejects(path)] == ["a track needs an event name (event)"]


def test_a_busy_workspace_delays_the_load(tmp_path):
    path = make_workspace(tmp_path / "ws")
    end = log_events(path, ["a", "b"])
    ws = Workspace.open(path)
    loader = Loader(ws)
    other = Workspace.open(path)
    with other.writing():  # e.g. a tessera run
        assert loader.load(end) is None
        assert loader.offset == 0
    other.close()
    assert loader.load(end).events == 2
    ws.close()


def test_a_loaded_offset_beyond_the_log_is_reset_to_its_end(tmp_path):
    path = make_workspace(tmp_path / "ws")
    end = log_events(path, ["a"])
    ws = Workspace.open(path)
    ws.store.set_state(STATE_SCOPE, STATE_OFFSET, end + 1000)
    loader = Loader(ws)
    loader.check_offset(end)
    assert loader.offset == end and ws.store.get_state(STATE_SCOPE, STATE_OFFSET) == end
    with ws.writing():
        assert not ws.adapter.exists(EVENTS_TABLE)
        ws.close()


def test_the_typing_process_gives_what_typing_in_process_gives(tmp_path):
    """The server types logged events in a child process: the same tables, the gaps told, and a
    child that died is started again."""
    import pytest

    from tessera.collect.batches import BatchProcess, read_batch
    from tessera.collect.log import LogGapError

    path = make_workspace(tmp_path / "ws")
    end = log_events(path, ["a", "b", "bad1", "a"])
    child = BatchProcess(log_directory(path))
    try:
        n, batch, next_offset = child.read(0, end, 1 << 20)
        here = read_batch(log_directory(path), 0, end, 1 << 20)
        assert (n, next_offset, batch.duplicates) == (here[0], here[2], here[1].duplicates) == (4, end, 1)
        assert batch.events.equals(here[1].events) and batch.rejects.equals(here[1].rejects)
        assert batch.events.column("message_id").to_pylist() == ["a", "b"]
        child._proc.kill()
        child._proc.wait()
        assert child.read(0, end, 1 << 20)[1].events.equals(here[1].events)  # a new child
        (log_directory(path) / "00000000000000000000.log").rename(log_directory(path) / "00000000000000000100.log")
        with pytest.raises(LogGapError) as gap:
            child.read(0, end, 1 << 20)
        assert gap.value.resume_at == 100
    finally:
        child.close()
