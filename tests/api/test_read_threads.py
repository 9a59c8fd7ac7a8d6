"""The server's reading threads (status and profiles) and FastAPI's telemetry switch."""

from __future__ import annotations

import asyncio
import threading

import pytest

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
