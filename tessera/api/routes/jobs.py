"""Jobs of the writer queue: runs, imports, syncs and apply, with progress and cancel."""

from __future__ import annotations

import asyncio
from typing import Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict

from tessera.api.auth import Caller, Owner

router = APIRouter(prefix="/api", tags=["jobs"])


class JobCreate(BaseModel):
    """A write to queue: ``kind`` and its parameters (run: import_files, as_of; import: sources;
    sync: syncs, dry_run; apply: path of a YAML file on the server's machine, or config)."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["run", "import", "sync", "apply"]
    params: dict[str, Any] = {}


@router.get("/jobs")
async def list_jobs(owner: Owner, _caller: Caller, limit: int = 50) -> list[dict]:
    """The latest jobs, newest first."""
    return await asyncio.to_thread(owner.jobs.list, min(max(limit, 1), 500))


@router.post("/jobs", status_code=202)
async def create_job(owner: Owner, caller: Caller, job: JobCreate) -> dict:
    """Queue a run, import, sync or apply; a second run asked while one runs waits its turn."""
    return await asyncio.to_thread(owner.jobs.submit, job.kind, job.params, requested_by=caller)


@router.get("/jobs/{job_id}")
async def get_job(owner: Owner, _caller: Caller, job_id: int, wait: float = 0.0) -> dict:
    """A job with its state, progress (step, counts), log and result; ``wait`` seconds for it to end."""
    if wait > 0:
        return await asyncio.to_thread(owner.jobs.wait, job_id, min(wait, 30.0))
    return await asyncio.to_thread(owner.jobs.get, job_id)


@router.post("/jobs/{job_id}/cancel")
async def cancel_job(owner: Owner, _caller: Caller, job_id: int) -> dict:
    """Cancel a queued job, or stop a running one (the last publication is left in place)."""
    return await asyncio.to_thread(owner.jobs.cancel, job_id)
