"""Reads and writes of the pages through the server's owner of the workspace."""

from __future__ import annotations

import asyncio
from typing import Any, Callable, TypeVar

from fastapi import Request

from tessera.api.owner import WorkspaceOwner

T = TypeVar("T")


def owner_of(request: Request) -> WorkspaceOwner:
    return request.app.state.owner


async def read(request: Request, fn: Callable[[Any], T]) -> T:
    """``fn(workspace)`` on a reader of the last publication, in a worker thread (never waits for a run)."""
    return await asyncio.to_thread(owner_of(request).read, fn)


async def submit(request: Request, kind: str, params: dict, by: str) -> dict:
    """Queue a job of the writer queue (run, import, sync...); the job, queued."""
    client = request.client.host if request.client else None
    return await asyncio.to_thread(owner_of(request).submit, kind, params, by=by, client=client)


async def run_job(request: Request, kind: str, params: dict, by: str, timeout: float = 120) -> Any:
    """Queue a job and wait for its end (short jobs: save a segment); its result or its error."""
    return await asyncio.to_thread(owner_of(request).run_job, kind, params, requested_by=by, timeout=timeout)
