"""REST routes of the segments (``/api/segments``): list, show, live count of a draft, members,
history, create, change and delete, all through the Workspace facade.

Each request opens the workspace in a worker thread, like :mod:`tessera.api.routes`; the
server's writer queue and authentication are wired where the router is included.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Literal

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tessera.api.errors import error_response
from tessera.errors import ConfigError, TesseraError, WorkspaceError
from tessera.workspace import Workspace

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


def _run(path, fn: Callable[[Workspace], Any]) -> Any:
    with Workspace.open(path) as ws:
        return fn(ws)


async def _call(request: Request, fn: Callable[[Workspace], Any]) -> Any:
    try:
        return await asyncio.to_thread(_run, request.app.state.workspace_path, fn)
    except ConfigError as exc:
        return error_response(400, str(exc), errors=exc.problems)
    except ValidationError as exc:
        errors = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg'].removeprefix('Value error, ')}"
                  for e in exc.errors()]
        return error_response(400, f"invalid segment: {'; '.join(errors)}", errors=errors)
    except WorkspaceError as exc:
        raise HTTPException(503, detail=str(exc), headers={"Retry-After": "5"}) from None
    except TesseraError as exc:
        raise HTTPException(404 if "unknown segment" in str(exc) else 400, detail=str(exc)) from None


@router.get("/segments")
async def list_segments(request: Request) -> dict:
    """The segments with their size at the last refresh."""
    data = await _call(request, lambda ws: ws.segments())
    return {"data": data, "count": len(data)}


@router.post("/segments/count")
async def count_draft(request: Request, draft: SegmentDraft) -> dict:
    """Live count of a definition (saved or not), with the count after each top-level condition."""
    return await _call(request, lambda ws: ws.segment_count(draft.spec()))


@router.get("/segments/{name}")
async def show_segment(request: Request, name: str) -> dict:
    """One segment: definition, conditions in words, size and version."""
    return await _call(request, lambda ws: ws.segment(name))


@router.get("/segments/{name}/count")
async def count_segment(request: Request, name: str) -> dict:
    """Live count of a saved segment, with the count after each top-level condition."""
    return await _call(request, lambda ws: ws.segment_count(name))


@router.get("/segments/{name}/members")
async def segment_members(request: Request, name: str, limit: int = 100, columns: str | None = None) -> dict:
    """The current members of a segment, newest entries first."""
    cols = [c.strip() for c in columns.split(",") if c.strip()] if columns else None
    data = await _call(request, lambda ws: ws.segment_members(name, limit=min(max(limit, 1), 10_000), columns=cols))
    return {"data": data, "count": len(data)}


@router.get("/segments/{name}/history")
async def segment_history(request: Request, name: str, limit: int = 200) -> dict:
    """The size of a segment at each refresh and its latest entries and exits."""
    return await _call(request, lambda ws: ws.segment_history(name, limit=min(max(limit, 1), 10_000)))


@router.post("/segments", status_code=201)
async def create_segment(request: Request, segment: SegmentCreate) -> dict:
    """Create a segment (its membership is computed at the next run or refresh)."""
    def create(ws: Workspace) -> dict:
        if any(s.name == segment.name for s in ws.config.segments):
            raise HTTPException(409, detail=f"segment '{segment.name}' exists already; change it with PUT")
        ws.save_segment(segment.spec())
        return ws.segment(segment.name)

    return await _call(request, create)


@router.put("/segments/{name}")
async def change_segment(request: Request, name: str, change: SegmentUpdate) -> dict:
    """Change a segment's definition (its version increases at the next refresh)."""
    def update(ws: Workspace) -> dict:
        current = ws.segment(name)["definition"]
        ws.save_segment({**current, **change.model_dump(exclude_none=True), "name": name})
        return ws.segment(name)

    return await _call(request, update)


@router.delete("/segments/{name}")
async def delete_segment(request: Request, name: str) -> dict:
    """Delete a segment (refused while a sync or another segment uses it)."""
    return await _call(request, lambda ws: ws.delete_segment(name))
