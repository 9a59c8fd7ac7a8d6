"""The server's reading threads (status and profiles), the answers it keeps, and FastAPI's telemetry switch."""

from __future__ import annotations

import asyncio
import threading

import pytest

from tessera.api.answers import Answers
from tessera.api.app import telemetry
from tessera.api.owner import ReadThreads
from tessera.errors import NotFoundError


def test_reads_come_back_with_their_result_or_their_error_and_the_threads_stop():
    pool = ReadThreads(3)

    async def main():
        names = await asyncio.gather(*(pool.run(lambda i=i: (i, threading.current_thread().name)) for i in range(30)))
        assert [i for i, _ in names] == list(range(30))
        assert {name for _, name in names} <= {f"tessera-read-{i}" for i in range(3)}
        with pytest.raises(NotFoundError, match="no record"):
            await pool.run(_missing)

    asyncio.run(main())
    pool.stop()
    for t in pool._threads:
        t.join(timeout=10)
        assert not t.is_alive()


def _missing():
    raise NotFoundError("no record T1")


def test_telemetry_is_off_unless_asked(monkeypatch):
    monkeypatch.delenv("FASTAPI_OTEL_AUTO_CONFIGURE", raising=False)
    monkeypatch.delenv("TESSERA_OTEL", raising=False)
    assert telemetry() == {"tracing": False, "metrics": False, "logs": False}
    monkeypatch.setenv("TESSERA_OTEL", "true")
    assert telemetry() == {}


def _first_customer(owner) -> str:
    return owner.read(lambda ws: ws.adapter.to_arrow(ws.table("contacts").select("tessera_id").limit(1))
                      .to_pylist()[0]["tessera_id"])


def test_a_profile_is_answered_again_until_a_job_returns(shop):
    owner, viewer = shop["app"].state.owner, shop["clients"]["viewer"]
    tid = _first_customer(owner)
    answers = owner.answers
    first = viewer.get(f"/api/profiles/{tid}")
    hits, misses = answers.hits, answers.misses
    again = viewer.get(f"/api/profiles/{tid}")
    assert again.status_code == 200 and again.content == first.content
    assert (answers.hits, answers.misses) == (hits + 1, misses)
    other = viewer.get(f"/api/profiles/{tid}", params={"events": 5})  # another question: read for itself
    assert other.status_code == 200 and answers.misses == misses + 1

    job = shop["clients"]["editor"].post("/api/jobs", json={"kind": "run", "params": {}}).json()
    done = viewer.get(f"/api/jobs/{job['id']}", params={"wait": 60}).json()
    assert done["state"] == "succeeded", done  # nothing new: the publication stays, the answers go
    after = viewer.get(f"/api/profiles/{tid}")
    assert after.status_code == 200 and answers.misses == misses + 2  # read again after the job


def test_an_answer_read_while_something_changed_is_not_kept_and_the_oldest_go_first(shop):
    owner = shop["app"].state.owner
    answers = Answers(max_answers=2)
    built: list[str] = []

    def build(key: str, change: bool = False):
        def make() -> bytes:
            built.append(key)
            if change:  # an erase or an event load while this answer was read
                answers.changed()
            return key.encode()
        return make

    def get(key: str, change: bool = False) -> bytes:
        return owner.read(lambda ws: answers.get(ws, key, build(key, change)))

    assert get("a", change=True) == b"a" and get("a") == b"a" and built == ["a", "a"]
    assert get("a") == b"a" and built == ["a", "a"]  # kept the second time
    get("b"), get("c")  # at most two kept: "a", read least recently, is dropped
    assert get("c") == b"c" and built == ["a", "a", "b", "c"]
    get("a")
    assert built == ["a", "a", "b", "c", "a"]


def test_an_answer_larger_than_the_bound_is_not_kept_and_drops_none_kept(shop):
    owner = shop["app"].state.owner
    answers = Answers(max_bytes=100)
    built: list[str] = []

    def get(key: str, size: int) -> bytes:
        def make() -> bytes:
            built.append(key)
            return key.encode() * size
        return owner.read(lambda ws: answers.get(ws, key, make))

    get("a", 40), get("b", 40)
    assert len(get("c", 1000)) == 1000  # given, but more than every kept answer may hold
    get("a", 40), get("b", 40)  # the kept ones are still given
    assert built == ["a", "b", "c"]
    get("c", 1000)
    assert built == ["a", "b", "c", "c"]  # never kept
