"""Syncs (``/api/syncs``): definitions with their version, the dry-run plan (what a sync would
insert, update, delete), a sync started as a job, and create, change, delete through the writer
queue with the checks of ``tessera apply``."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel

from tessera.api.auth import Editor, Owner, Viewer, client_of
from tessera.api.changes import run_change
from tessera.api.resources import ChangePublic, OptionalVersion, Version, change, get_object, list_objects, spec_of
from tessera.config.models import SyncConfig
from tessera.errors import SyncError

router = APIRouter(prefix="/api", tags=["syncs"])


class SyncCreate(SyncConfig):
    """A sync as in the YAML."""


class SyncUpdate(SyncConfig):
    """The whole sync as in the YAML (its ``name`` is the path's: a sync is not renamed)."""


class SyncPublic(BaseModel):
    name: str
    version: str
    updated_at: str | None = None
    spec: dict[str, Any]


class SyncsPublic(BaseModel):
    data: list[SyncPublic]
    count: int


class SyncPlanPublic(BaseModel):
    job: int
    plan: dict[str, Any]


def _public(obj: dict) -> SyncPublic:
    return SyncPublic(name=obj["name"], version=obj["version"], updated_at=obj["updated_at"], spec=obj["spec"])


@router.get("/syncs")
async def list_syncs(owner: Owner, _caller: Viewer) -> SyncsPublic:
    """The syncs with their version."""
    data = [_public(o) for o in await list_objects(owner, "sync")]
    return SyncsPublic(data=data, count=len(data))


@router.get("/syncs/{name}")
async def show_sync(owner: Owner, _caller: Viewer, name: str) -> SyncPublic:
    """One sync: its definition and version."""
    return _public(await get_object(owner, "sync", name))


@router.post("/syncs/{name}/plan")
async def plan_sync(request: Request, owner: Owner, caller: Editor, name: str) -> SyncPlanPublic:
    """The dry-run plan of a sync: the records it would insert, update and delete; nothing is sent."""
    await get_object(owner, "sync", name)
    done = await run_change(request, owner, caller, "sync", {"syncs": [name], "dry_run": True})
    plan = (done["changes"] or [{}])[0]
    if plan.get("status") == "failed":  # the plan could not be computed: an error, not a plan
        errors = [str(e) for e in plan.get("errors") or []] or [f"the plan of sync '{name}' failed (job {done['job']})"]
        failed = SyncError(errors[0])
        failed.problems = errors  # the error body's "errors"
        raise failed
    return SyncPlanPublic(job=done["job"], plan=plan)


@router.post("/syncs/{name}/run", status_code=202)
async def run_sync(request: Request, owner: Owner, caller: Editor, name: str) -> dict:
    """Start a sync as a job of the writer queue (follow it with GET /api/jobs/{id}/events)."""
    await get_object(owner, "sync", name)
    return await asyncio.to_thread(owner.submit, "sync", {"syncs": [name]}, by=caller.identity,
                                   client=client_of(request))


@router.post("/syncs", status_code=201)
async def create_sync(request: Request, owner: Owner, caller: Editor, body: SyncCreate) -> SyncPublic:
    """Create a sync (checked like tessera apply; a job of the writer queue)."""
    await change(request, owner, caller, "sync", body.name, spec_of(body), create=True)
    return _public(await get_object(owner, "sync", body.name))


@router.put("/syncs/{name}")
async def change_sync(request: Request, owner: Owner, caller: Editor, name: str, version: Version,
                      body: SyncUpdate) -> SyncPublic:
    """Change a sync made from ``version`` (409 when it changed since)."""
    await change(request, owner, caller, "sync", name, spec_of(body, name), version=version)
    return _public(await get_object(owner, "sync", name))


@router.delete("/syncs/{name}")
async def delete_sync(request: Request, owner: Owner, caller: Editor, name: str,
                      version: OptionalVersion = None) -> ChangePublic:
    """Delete a sync (what it sent stays at its destination)."""
    return await change(request, owner, caller, "sync", name, None, version=version)
