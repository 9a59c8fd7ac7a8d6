"""Runs and imports (``/api/runs``, ``/api/imports``): started as jobs of the writer queue
(follow them with ``GET /api/jobs/{id}/events``, cancel with ``POST /api/jobs/{id}/cancel``),
and the history of runs with their steps and counts."""

from __future__ import annotations

import asyncio
from datetime import date
from typing import Annotated

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from tessera.api.auth import Editor, Owner, Viewer, client_of
from tessera.api.changes import read
from tessera.api.params import RowId
from tessera.errors import NotFoundError

router = APIRouter(prefix="/api", tags=["runs"])


class RunCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    import_files: bool = Field(default=True, description="import new data first")
    as_of: date | None = Field(default=None, description="the date scores and windows are computed at")
    full: bool = Field(default=False, description="rebuild everything, even when nothing changed since the last run")


class ImportCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sources: list[Annotated[str, Field(max_length=255)]] | None = Field(default=None, description="default: all")
    retry_refused: bool = False


@router.get("/runs")
async def list_runs(owner: Owner, _caller: Viewer, limit: Annotated[int, Query(ge=1, le=500)] = 20) -> dict:
    """The latest runs and imports with their state, steps and counts, newest first."""
    data = await read(owner, lambda ws: ws.runs(limit))
    return {"data": data, "count": len(data)}


@router.get("/runs/{run_id}")
async def show_run(owner: Owner, _caller: Viewer, run_id: RowId) -> dict:
    """One run with its steps (time, counts) and error."""

    def work(ws):
        try:
            return ws.store.get_run(run_id)
        except KeyError:
            raise NotFoundError(f"no run {run_id}: list them with GET /api/runs") from None

    return await read(owner, work)


@router.post("/runs", status_code=202)
async def start_run(request: Request, owner: Owner, caller: Editor, body: RunCreate | None = None) -> dict:
    """Start a run (import, unify, enrich, publish) as a job; answered at once with the queued job."""
    body = body or RunCreate()
    params = {"import_files": body.import_files, "as_of": body.as_of.isoformat() if body.as_of else None,
              "full": body.full}
    return await asyncio.to_thread(owner.submit, "run", params, by=caller.identity, client=client_of(request))


@router.post("/imports", status_code=202)
async def start_import(request: Request, owner: Owner, caller: Editor, body: ImportCreate | None = None) -> dict:
    """Import new data of sources (all, or ``sources``) as a job, without a run."""
    body = body or ImportCreate()
    if body.sources:
        known = await read(owner, lambda ws: {s.name for s in ws.config.sources})
        unknown = [s for s in body.sources if s not in known]
        if unknown:
            raise NotFoundError(f"unknown source(s) {', '.join(unknown)} (sources: {', '.join(sorted(known)) or 'none'})")
    return await asyncio.to_thread(owner.submit, "import", {"sources": body.sources, "retry_refused": body.retry_refused},
                                   by=caller.identity, client=client_of(request))
