"""Sources (``/api/sources``): the catalog (columns with inferred types, record keys, relations,
imported files, rejects with reasons, a preview of rows after normalization), and create, change,
delete through the writer queue with the checks of ``tessera apply``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel

from tessera.api.auth import Editor, Owner, Viewer
from tessera.api.changes import read
from tessera.api.resources import ChangePublic, OptionalVersion, Version, change, get_object, spec_of
from tessera.browse import source_list
from tessera.browse.rows import plain
from tessera.config.models import SourceConfig

router = APIRouter(prefix="/api", tags=["sources"])


class SourceCreate(SourceConfig):
    """A source as in the YAML."""


class SourceUpdate(SourceConfig):
    """The whole source as in the YAML (its ``name`` is the path's: a source is not renamed)."""


class SourcePublic(BaseModel):
    name: str
    version: str
    updated_at: str | None = None
    spec: dict[str, Any]
    catalog: dict[str, Any] | None = None


class SourcesPublic(BaseModel):
    data: list[dict[str, Any]]
    count: int


class PreviewPublic(BaseModel):
    source: str
    columns: list[str]
    data: list[dict[str, Any]]
    count: int


async def _public(owner, name: str) -> SourcePublic:
    def work(ws):
        obj = ws.config_object("source", name)
        return SourcePublic(name=name, version=obj["version"], updated_at=obj["updated_at"], spec=obj["spec"],
                            catalog=plain(ws.source(name)))

    return await read(owner, work)


@router.get("/sources")
async def list_sources(owner: Owner, _caller: Viewer) -> SourcesPublic:
    """The source catalog: each source's connection, record keys, columns seen, files, rows and rejects."""
    data = await read(owner, source_list)
    return SourcesPublic(data=data, count=len(data))


@router.get("/sources/{name}")
async def show_source(owner: Owner, _caller: Viewer, name: str) -> SourcePublic:
    """One source: its definition and version, columns with inferred types, files, rejects with reasons."""
    return await _public(owner, name)


@router.get("/sources/{name}/preview")
async def preview_source(owner: Owner, _caller: Viewer, name: str, limit: int = 20) -> PreviewPublic:
    """The first rows of a source as the next run stages them: normalized, typed, rejects left out."""
    await get_object(owner, "source", name)
    table = await read(owner, lambda ws: ws.preview_source(name, min(max(limit, 1), 500)))
    rows = [plain(r) for r in table.to_pylist()]
    return PreviewPublic(source=name, columns=table.column_names, data=rows, count=len(rows))


@router.post("/sources", status_code=201)
async def create_source(request: Request, owner: Owner, caller: Editor, body: SourceCreate) -> SourcePublic:
    """Create a source (checked like tessera apply; a job of the writer queue)."""
    await change(request, owner, caller, "source", body.name, spec_of(body), create=True)
    return await _public(owner, body.name)


@router.put("/sources/{name}")
async def change_source(request: Request, owner: Owner, caller: Editor, name: str, version: Version,
                        body: SourceUpdate) -> SourcePublic:
    """Change a source made from ``version`` (409 when it changed since)."""
    await change(request, owner, caller, "source", name, spec_of(body, name), version=version)
    return await _public(owner, name)


@router.delete("/sources/{name}")
async def delete_source(request: Request, owner: Owner, caller: Editor, name: str,
                        version: OptionalVersion = None) -> ChangePublic:
    """Delete a source (refused while a dataset maps it)."""
    return await change(request, owner, caller, "source", name, None, version=version)
