"""Changes of the configuration from the REST API: checked on a reader first (every problem at
once, with its place), then made by a job of the writer queue, which checks again (the same code
as ``tessera apply``) and refuses a change made from an old version (409 ``version_conflict``)."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import Request

from tessera.api.auth import Principal, client_of
from tessera.api.owner import WorkspaceOwner, job_error
from tessera.errors import BusyError

CHANGE_TIMEOUT = 120.0  # seconds a change waits for its job (a run ahead in the queue may take long)


async def run_change(request: Request, owner: WorkspaceOwner, caller: Principal, kind: str, params: dict,
                     *, timeout: float = CHANGE_TIMEOUT) -> dict[str, Any]:
    """Queue a writer job (audited as asked by ``caller``), wait for its end; ``{"job", "changes"}``,
    or its error raised with its code (400 invalid, 404, 409 version_conflict...)."""

    def work() -> dict[str, Any]:
        job = owner.submit(kind, params, by=caller.identity, client=client_of(request))
        done = owner.jobs.wait(job["id"], timeout)
        if done["state"] == "succeeded":
            return {"job": done["id"], "changes": done["result"]}
        if done["state"] in ("queued", "running"):
            raise BusyError(f"job {done['id']} ({kind}) is still {done['state']} behind other jobs: follow it with "
                            f"GET /api/jobs/{done['id']}")
        raise job_error(done)

    return await asyncio.to_thread(work)


async def read(owner: WorkspaceOwner, fn):
    """``fn(workspace)`` on a reader of the server's workspace, in a worker thread."""
    return await asyncio.to_thread(owner.read, fn)
