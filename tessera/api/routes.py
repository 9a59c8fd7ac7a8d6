"""The REST API (``/api``): status, profiles and schedules of the workspace, read through the facade.

Each request opens the workspace in a worker thread and closes it at the end: the embedded
warehouse accepts one process at a time, so the server never keeps it open while the CLI or the
event loader may need it. A request that finds the warehouse busy (a run is publishing) retries
for a few seconds, then answers 503 with ``Retry-After``.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Callable

from fastapi import APIRouter, HTTPException, Request

from tessera.errors import TesseraError, WorkspaceError
from tessera.workspace import Workspace

router = APIRouter(prefix="/api", tags=["api"])
BUSY_WAIT_S = 5.0


def _with_workspace(path, fn: Callable[[Workspace], Any]) -> Any:
    deadline = time.monotonic() + BUSY_WAIT_S
    while True:
        try:
            with Workspace.open(path) as ws:
                return fn(ws)
        except WorkspaceError as exc:
            if "open for writing" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.1)


async def _call(request: Request, fn: Callable[[Workspace], Any]) -> Any:
    try:
        return await asyncio.to_thread(_with_workspace, request.app.state.workspace_path, fn)
    except WorkspaceError as exc:
        if "open for writing" in str(exc):
            raise HTTPException(503, detail=str(exc), headers={"Retry-After": "5"}) from None
        raise HTTPException(500, detail=str(exc)) from None
    except TesseraError as exc:
        raise HTTPException(404 if "unknown" in str(exc) or "no record" in str(exc) else 400,
                            detail=str(exc)) from None


@router.get("/status")
async def status(request: Request) -> dict:
    """Published datasets (rows, version, time) and the last runs."""
    return await _call(request, lambda ws: ws.status())


@router.get("/profiles/{tessera_id}")
async def profile(request: Request, tessera_id: str, dataset: str | None = None, events: int = 50) -> dict:
    """The 360° profile of a unified record: attributes, source records and latest events,
    including events collected since the last run."""
    return await _call(request, lambda ws: ws.profile(tessera_id, dataset, events=min(max(events, 1), 500)))


@router.get("/schedule")
async def schedule(request: Request) -> list[dict]:
    """The scheduled jobs with their next run and last status."""
    return await _call(request, lambda ws: ws.scheduler().next_runs())
