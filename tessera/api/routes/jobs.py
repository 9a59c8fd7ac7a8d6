"""Jobs of the writer queue: runs, imports, syncs and apply, with progress and cancel."""

from __future__ import annotations

import asyncio
from typing import Any, Literal

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, ConfigDict

from tessera.api.auth import Editor, Owner, Viewer, client_of
from tessera.api.params import RowId

router = APIRouter(prefix="/api", tags=["jobs"])


class JobCreate(BaseModel):
    """A write to queue: ``kind`` and its parameters (run: import_files, as_of, full; import: sources;
    sync: syncs, dry_run; apply: path of a YAML file on the server's machine, or config)."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["run", "import", "sync", "apply"]
    params: dict[str, Any] = {}


@router.get("/jobs")
async def list_jobs(owner: Owner, _caller: Viewer, limit: int = 50) -> list[dict]:
    """The latest jobs, newest first."""
    return await asyncio.to_thread(owner.jobs.list, min(max(limit, 1), 500))


@router.post("/jobs", status_code=202)
async def create_job(request: Request, owner: Owner, caller: Editor, job: JobCreate) -> dict:
    """Queue a run, import, sync (editor) or apply (admin: it replaces the whole configuration,
    connections included); a second run asked while one runs waits its turn."""
    if job.kind == "apply" and not caller.allows("admin"):
        raise HTTPException(403, detail=f"apply replaces the configuration, connections included: this needs the "
                                        f"role admin; {caller.identity} is {caller.role}")
    return await asyncio.to_thread(owner.submit, job.kind, job.params, by=caller.identity,
                                   client=client_of(request))


@router.get("/jobs/{job_id}")
async def get_job(owner: Owner, _caller: Viewer, job_id: RowId, wait: float = 0.0) -> dict:
    """A job with its state, progress (step, counts), log and result; ``wait`` seconds for it to end."""
    if wait > 0:
        return await asyncio.to_thread(owner.jobs.wait, job_id, min(wait, 30.0))
    return await asyncio.to_thread(owner.jobs.get, job_id)


@router.post("/jobs/{job_id}/cancel")
async def cancel_job(owner: Owner, _caller: Editor, job_id: RowId) -> dict:
    """Cancel a queued job, or stop a running one (the last publication is left in place)."""
    return await asyncio.to_thread(owner.jobs.cancel, job_id)
