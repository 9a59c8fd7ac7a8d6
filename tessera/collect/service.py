"""The collection service of the server: write keys, the durable log, the loader thread.

:class:`Collector` lives as long as the server (started and stopped by the app's lifespan) and
answers the ``/v1`` routes with :meth:`Collector.ingest`. A request is answered 200 only when its
events are synced to the log; see :mod:`tessera.collect` for what the clients make of each answer.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from pathlib import Path

import orjson
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from tessera.collect.batches import BatchProcess
from tessera.collect.keys import WriteKeys
from tessera.collect.loader import STATE_OFFSET, STATE_SCOPE, Loader, log_directory
from tessera.collect.log import GroupCommit, LogError, LogWriter
from tessera.collect.messages import (
    BodyReader, RequestError, basic_auth_user, build_record, check_messages, parse_json, parse_time,
)
from tessera.httperrors import error_response
from tessera.workspace import Workspace

log = logging.getLogger("tessera.collect")

_OK = b'{"success":true}'
_KEY_RELOAD_SPACING = 0.2  # seconds between two reloads of the write keys caused by unknown keys


class RecentIds:
    """The message ids accepted lately (two generations of sets: O(1) to add, test and forget)."""

    def __init__(self, capacity: int):
        self.half = max(1, capacity // 2)
        self._current: set[str] = set()
        self._previous: set[str] = set()

    def __contains__(self, message_id: str) -> bool:
        return message_id in self._current or message_id in self._previous

    def add_all(self, ids: list[str]) -> None:
        self._current.update(ids)
        if len(self._current) >= self.half:
            self._previous, self._current = self._current, set()


class Collector:
    """Event collection for one workspace (one per server process: the log has one writer).

    Args:
        workspace_path: the workspace folder.
        workspace: the server's open workspace (the server owns it); None opens one.
        loader: start the loader thread that moves logged events into the warehouse.
        loader_interval: seconds between two micro-batches of the loader.
        refresh_interval: seconds between two checks for changed write keys.
        recent_ids: how many recently accepted message ids are answered without logging them again.
    """

    def __init__(self, workspace_path: str | Path, *, workspace: Workspace | None = None, loader: bool = True,
                 loader_interval: float = 1.0, refresh_interval: float = 3.0, recent_ids: int = 100_000):
        self.path = Path(workspace_path).resolve()
        self.with_loader = loader
        self.loader_interval = loader_interval
        self.refresh_interval = refresh_interval
        self.recent = RecentIds(recent_ids)
        self.workspace: Workspace | None = workspace
        self._own_workspace = workspace is None
        self.keys: WriteKeys | None = None
        self.writer: LogWriter | None = None
        self.commit: GroupCommit | None = None
        self.committed = 0  # the log's synced end
        self.loaded_callbacks: list = []  # called with each LoadResult that appended events
        self._loader: threading.Thread | None = None
        self._stop_loader = threading.Event()
        self._loaded = 0
        self._watch_task: asyncio.Task | None = None
        self._key_reload = asyncio.Lock()

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        if self.workspace is None:
            self.workspace = await asyncio.to_thread(Workspace.open, self.path)
        self.keys = WriteKeys(self.workspace)
        await asyncio.to_thread(self.keys.refresh, force=True)
        if not self.keys.connections:
            log.warning("no connection of type http in %s: every event is refused (401) until one is applied",
                        self.path)
        self.writer = LogWriter(log_directory(self.path))
        end = await asyncio.to_thread(self.writer.open)
        self.committed = end
        self.commit = GroupCommit(self.writer, on_commit=self._set_committed)
        self.commit.start()
        if self.with_loader:
            self._loader = threading.Thread(target=self._load_loop, name="tessera-event-loader", daemon=True)
            self._loader.start()
        self._watch_task = asyncio.create_task(self._watch())
        log.info("collecting events for %s (connections: %s), log end %d", self.path,
                 ", ".join(self.keys.connections) or "none", end)

    async def stop(self) -> None:
        if self._watch_task is not None:
            self._watch_task.cancel()
        if self.commit is not None:
            await asyncio.to_thread(self.commit.stop)
        if self.writer is not None:
            self.writer.close()
        if self._loader is not None:
            self._stop_loader.set()  # it loads what was synced, then ends
            await asyncio.to_thread(self._loader.join, 60)
            if self._loader.is_alive():
                log.warning("the event loader did not stop in time; the events left are loaded at the next start")
        if self.workspace is not None and self._own_workspace:
            self.workspace.close()

    def _load_loop(self) -> None:
        """The loader thread: one micro-batch every ``loader_interval`` seconds (at once when a
        whole batch waits), appended through a warehouse connection of its own, beside any run."""
        adapter = self.workspace.adapter.reader()
        batches = BatchProcess(log_directory(self.path))
        loader = Loader(self.workspace, adapter=adapter, batches=batches)
        loader.check_offset(self.committed)
        self._loaded = loader.offset
        last, failures = 0.0, 0
        try:
            while True:
                stopping = self._stop_loader.is_set()
                end = self.committed
                if end <= loader.offset:
                    if stopping:
                        return
                    self._stop_loader.wait(0.05)
                    continue
                if not stopping and time.monotonic() - last < self.loader_interval \
                        and end - loader.offset < loader.batch_bytes:
                    self._stop_loader.wait(0.02)
                    continue
                try:
                    result = loader.load(end)
                    failures = 0
                except Exception:  # noqa: BLE001 - the events stay in the log: report, wait, try again
                    failures += 1
                    log.exception("event loader: loading failed (attempt %d); the events stay in the log", failures)
                    if stopping and failures >= 3:
                        return
                    self._stop_loader.wait(min(30.0, 0.5 * 2 ** failures))
                    continue
                last = time.monotonic()
                if result is not None:
                    self._loaded = result.offset
                    if result.events or result.rejects:
                        log.info("event loader: %d events loaded, %d duplicates dropped, %d refused (offset %d)",
                                 result.events, result.duplicates, result.rejects, result.offset)
                        for callback in self.loaded_callbacks:
                            try:
                                callback(result)
                            except Exception:  # noqa: BLE001 - loading goes on
                                log.exception("event loader: a callback after a load failed")
        finally:
            batches.close()
            adapter.close()

    def _set_committed(self, end: int) -> None:
        self.committed = end

    async def _watch(self) -> None:
        """Every few seconds: reload changed write keys."""
        while True:
            await asyncio.sleep(self.refresh_interval)
            try:
                if await asyncio.to_thread(self.keys.refresh):
                    log.info("write keys reloaded (connections: %s)", ", ".join(self.keys.connections) or "none")
            except Exception:  # noqa: BLE001 - keep serving with the keys we have
                log.exception("could not reload the write keys; the previous ones stay in use")

    def status(self) -> dict:
        """The log's end and the loader's offset (what is left to load is the difference)."""
        loaded = self.workspace.store.get_state(STATE_SCOPE, STATE_OFFSET, 0) if self.workspace else 0
        return {
            "log_end": self.committed,
            "loaded_offset": loaded,
            "loader_running": bool(self._loader and self._loader.is_alive()),
            "connections": self.keys.connections if self.keys else [],
        }

    # ------------------------------------------------------------------ requests
    async def ingest(self, request: Request, kind: str) -> Response:
        """Answer one ``/v1`` request: ``kind`` is ``batch`` or the type of a single call.

        200 once the accepted messages are synced to the log (refused ones are logged too, with
        their reason); 400/401/413 for what resending cannot fix; 503 when the log cannot take it.
        """
        received_us = time.time_ns() // 1000
        try:
            data = await _read_json(request)
            connection = await self.authenticate(request, data)
            messages, defaults, sent_at = _messages_of(data, kind)
            checked = check_messages(messages, kind, connection=connection, recent=self.recent, defaults=defaults)
            if checked.accepted or checked.rejects:
                await self._log(build_record(connection, received_us, sent_at, checked))
                self.recent.add_all(checked.message_ids)
            if checked.rejects and not checked.accepted:
                raise _all_refused(checked, kind)
        except RequestError as exc:
            headers = {"Retry-After": "1"} if exc.status == 503 else None
            return error_response(exc.status, exc.message, errors=exc.errors, code=exc.code, headers=headers)
        except ClientDisconnect:
            return Response(status_code=499)
        if checked.rejects:
            body = {"success": True, "rejected": len(checked.rejects), "errors": _reasons(checked)}
            return Response(orjson.dumps(body), media_type="application/json")
        return Response(_OK, media_type="application/json")

    async def _log(self, record: bytes) -> None:
        if self.commit.overloaded:
            raise RequestError(503, "overloaded", "the server is writing a backlog to disk: retry in a second")
        try:
            await self.commit.append(record)
        except (LogError, OSError) as exc:
            raise RequestError(503, "log_unavailable", f"the event log could not be written ({exc}): retry later"
                               ) from None

    async def authenticate(self, request: Request, data: dict) -> str:
        """The connection of the request's write key; 401 when there is none.

        An unknown key may have been applied a moment ago: the keys are reloaded first, unless a
        reload began after the request arrived. Reloads are at least ``_KEY_RELOAD_SPACING`` apart,
        so a flood of wrong keys costs a few cheap queries per second, never one per request.
        """
        arrived = time.monotonic()
        key = basic_auth_user(request.headers.get("authorization"))
        if key is None and isinstance(data.get("writeKey"), str):
            key = data["writeKey"]
        if not key:
            raise RequestError(401, "missing_write_key",
                               "no write key: send it as the HTTP Basic user name (Authorization: Basic "
                               "base64('<write key>:')) or as writeKey in the body")
        connection = self.keys.lookup(key)
        if connection is None:
            async with self._key_reload:
                if self.keys.last_check < arrived:
                    await asyncio.sleep(max(0.0, self.keys.last_check + _KEY_RELOAD_SPACING - time.monotonic()))
                    await asyncio.to_thread(self.keys.refresh)
                connection = self.keys.lookup(key)
        if connection is None:
            raise RequestError(401, "invalid_write_key",
                               "the write key is not the write_key of any http connection of this workspace: "
                               "check the key, or declare a connection of type http with it and run tessera apply")
        return connection


async def _read_json(request: Request) -> dict:
    reader = BodyReader(request.headers.get("content-encoding"))
    async for chunk in request.stream():
        reader.feed(chunk)
    return parse_json(reader.finish())


def _messages_of(data: dict, kind: str) -> tuple[list, dict | None, str | None]:
    """The messages of a request, the defaults they inherit and the request's sentAt."""
    if kind != "batch":
        return [data], None, None  # a single call: its own sentAt, if any, is read by the loader
    messages = data.get("batch")
    if not isinstance(messages, list):
        raise RequestError(400, "invalid_batch", "the body has no 'batch' list of messages: send {\"batch\": [...]}")
    sent_at = data.get("sentAt")
    if sent_at is not None and parse_time(sent_at) is None:
        raise RequestError(400, "invalid_sent_at",
                           f"sentAt {sent_at!r} is not an ISO 8601 date-time (e.g. 2024-05-01T12:30:00Z)")
    defaults = {k: data[k] for k in ("context", "integrations") if isinstance(data.get(k), dict)}
    return messages, defaults, sent_at


def _reasons(checked) -> list[str]:
    return [f"message {r['index']}: {r['reason']}" for r in checked.rejects[:20]]


def _all_refused(checked, kind: str) -> RequestError:
    reasons = _reasons(checked)
    if kind != "batch" and checked.too_large:
        return RequestError(413, "payload_too_large", f"the message was refused: {reasons[0]}", reasons)
    what = "the message was" if kind != "batch" else f"all {len(checked.rejects)} messages were"
    return RequestError(400, "invalid_message", f"{what} refused: {reasons[0]}", reasons)
