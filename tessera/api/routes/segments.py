"""REST routes of the segments (``/api/segments``): list, show, live count of a draft, members,
history, create, change and delete. Reads run on a reader of the server's workspace; changes are
jobs of the writer queue.

"""

from __future__ import annotations

import asyncio
from typing import Any, Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tessera.api.auth import Editor, Owner, Viewer
from tessera.api.resources import OptionalVersion
from tessera.api.resources import change as change_object
from tessera.config.models import SegmentConfig
from tessera.errors import ConfigError, ConflictError

router = APIRouter(prefix="/api", tags=["segments"])


class SegmentDraft(BaseModel):
    """A segment definition as in the YAML (``name`` optional for a count)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    name: str | None = None
    dataset: str = "contacts"
    description: str | None = None
    match: Literal["all", "any"] = "all"
    conditions: list[dict[str, Any]] = Field(min_length=1)

    def spec(self) -> dict:
        return self.model_dump(exclude_none=True)


class SegmentCreate(SegmentDraft):
    name: str


class SegmentUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dataset: str | None = None
    description: str | None = None
    match: Literal["all", "any"] | None = None
    conditions: list[dict[str, Any]] | None = None


async def _read(owner, fn):
    try:
        return await asyncio.to_thread(owner.read, fn)
    except ValidationError as exc:
        raise _invalid(exc) from None


def _invalid(exc: ValidationError) -> ConfigError:
    return ConfigError([f"{'.'.join(str(p) for p in e['loc'])}: {e['msg'].removeprefix('Value error, ')}"
                        for e in exc.errors()], origin="the segment")


@router.get("/segments")
async def list_segments(owner: Owner, _caller: Viewer) -> dict:
    """The segments with their size at the last refresh."""
    data = await _read(owner, lambda ws: ws.segments())
    return {"data": data, "count": len(data)}


@router.post("/segments/count")
async def count_draft(owner: Owner, _caller: Viewer, draft: SegmentDraft) -> dict:
    """Live count of a definition (saved or not), with the count after each top-level condition."""
    return await _read(owner, lambda ws: ws.segment_count(draft.spec()))


def _with_config_version(ws, name: str) -> dict:
    out = ws.segment(name)
    out["config_version"] = ws.config_object("segment", name)["version"]
    return out


@router.get("/segments/{name}")
async def show_segment(owner: Owner, _caller: Viewer, name: str) -> dict:
    """One segment: definition, conditions in words, size, version and config_version (send it back with a change)."""
    return await _read(owner, lambda ws: _with_config_version(ws, name))


@router.get("/segments/{name}/count")
async def count_segment(owner: Owner, _caller: Viewer, name: str) -> dict:
    """Live count of a saved segment, with the count after each top-level condition."""
    return await _read(owner, lambda ws: ws.segment_count(name))


@router.get("/segments/{name}/members")
async def segment_members(owner: Owner, _caller: Viewer, name: str, limit: int = 100,
                          columns: str | None = None) -> dict:
    """The current members of a segment, newest entries first."""
    cols = [c.strip() for c in columns.split(",") if c.strip()] if columns else None
    data = await _read(owner, lambda ws: ws.segment_members(name, limit=min(max(limit, 1), 10_000), columns=cols))
    return {"data": data, "count": len(data)}


@router.get("/segments/{name}/history")
async def segment_history(owner: Owner, _caller: Viewer, name: str, limit: int = 200) -> dict:
    """The size of a segment at each refresh and its latest entries and exits."""
    return await _read(owner, lambda ws: ws.segment_history(name, limit=min(max(limit, 1), 10_000)))


@router.post("/segments", status_code=201)
async def create_segment(owner: Owner, caller: Editor, segment: SegmentCreate) -> dict:
    """Create a segment (its membership is computed at the next run or refresh)."""
    try:
        definition = SegmentConfig.model_validate(segment.spec()).model_dump(mode="json", exclude_defaults=True,
                                                                              by_alias=True)
    except ValidationError as exc:
        raise _invalid(exc) from None
    if any(s["name"] == segment.name for s in await _read(owner, lambda ws: ws.segments())):
        raise ConflictError(f"segment '{segment.name}' exists already; change it with PUT /api/segments/{segment.name}")
    await asyncio.to_thread(owner.run_job, "segment_save", {"definition": definition}, requested_by=caller.identity)
    return await _read(owner, lambda ws: _with_config_version(ws, segment.name))


@router.put("/segments/{name}")
async def change_segment(request: Request, owner: Owner, caller: Editor, name: str, change: SegmentUpdate,
                         version: OptionalVersion = None) -> dict:
    """Change a segment's definition (its version increases at the next refresh); with ``version`` (its
    config_version), 409 when it changed since."""
    current = (await _read(owner, lambda ws: ws.segment(name)))["definition"]
    try:
        definition = SegmentConfig.model_validate({**current, **change.model_dump(exclude_none=True), "name": name})
    except ValidationError as exc:
        raise _invalid(exc) from None
    spec = definition.model_dump(mode="json", exclude_defaults=True, by_alias=True)
    if version is not None:
        await change_object(request, owner, caller, "segment", name, spec, version=version)
    else:
        await asyncio.to_thread(owner.run_job, "segment_save", {"definition": spec}, requested_by=caller.identity)
    return await _read(owner, lambda ws: _with_config_version(ws, name))


@router.delete("/segments/{name}")
async def delete_segment(request: Request, owner: Owner, caller: Editor, name: str,
                         version: OptionalVersion = None) -> dict:
    """Delete a segment (refused while a sync or another segment uses it); with ``version``, 409 when it changed since."""
    await _read(owner, lambda ws: ws.segment(name))  # 404 for an unknown segment
    if version is not None:
        return (await change_object(request, owner, caller, "segment", name, None, version=version)).model_dump()
    return await asyncio.to_thread(owner.run_job, "segment_delete", {"name": name}, requested_by=caller.identity)
