"""Datasets (``/api/datasets``): definitions (mappings, semantic fields, normalization and merge
rules, identity keys, computed columns, aggregates, scores) with their version and columns; rows
of a published dataset with a filter, a sort and keyset paging; exports streamed as CSV or
Parquet. Changes go through the writer queue with the checks of ``tessera apply``."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from tessera.api.auth import Editor, Owner, Viewer, client_of
from tessera.api.changes import read
from tessera.api.resources import ChangePublic, OptionalVersion, Version, change, spec_of
from tessera.browse import EXPORT_FORMATS, dataset_rows, export_stream
from tessera.browse.export import BATCH_ROWS
from tessera.config.models import DatasetConfig
from tessera.errors import UsageError

router = APIRouter(prefix="/api", tags=["datasets"])


class DatasetCreate(DatasetConfig):
    """A dataset as in the YAML."""


class DatasetUpdate(DatasetConfig):
    """The whole dataset as in the YAML (its ``name`` is the path's: a dataset is not renamed)."""


class DatasetPublic(BaseModel):
    name: str
    version: str
    updated_at: str | None = None
    spec: dict[str, Any]
    columns: list[dict[str, Any]]
    published: dict[str, Any] | None = None


class DatasetsPublic(BaseModel):
    data: list[dict[str, Any]]
    count: int


class RowsPublic(BaseModel):
    data: list[dict[str, Any]]
    count: int
    next_cursor: str | None = None
    sort: list[str]
    total: int | None = None


async def _public(owner, name: str) -> DatasetPublic:
    def work(ws):
        obj = ws.config_object("dataset", name)
        latest = ws.store.latest_publication(name)
        return DatasetPublic(name=name, version=obj["version"], updated_at=obj["updated_at"], spec=obj["spec"],
                             columns=ws.describe(name),
                             published={k: latest[k] for k in ("version", "rows", "published_at")} if latest else None)

    return await read(owner, work)


@router.get("/datasets")
async def list_datasets(owner: Owner, _caller: Viewer) -> DatasetsPublic:
    """The datasets with their version, entity and last publication (rows, time)."""

    def work(ws):
        published = {d["dataset"]: d for d in ws.status()["datasets"]}
        return [{"name": o["name"], "version": o["version"], "entity": o["spec"].get("entity"),
                 "deduplicate": bool(o["spec"].get("deduplicate")), "rows": published.get(o["name"], {}).get("rows"),
                 "published_at": published.get(o["name"], {}).get("published_at")}
                for o in ws.config_objects() if o["kind"] == "dataset"]

    data = await read(owner, work)
    return DatasetsPublic(data=data, count=len(data))


@router.get("/datasets/{name}")
async def show_dataset(owner: Owner, _caller: Viewer, name: str) -> DatasetPublic:
    """One dataset: its definition and version, its columns (type, semantic field, merge rule, identity key)."""
    return await _public(owner, name)


@router.post("/datasets", status_code=201)
async def create_dataset(request: Request, owner: Owner, caller: Editor, body: DatasetCreate) -> DatasetPublic:
    """Create a dataset (checked like tessera apply; a job of the writer queue; built at the next run)."""
    await change(request, owner, caller, "dataset", body.name, spec_of(body), create=True)
    return await _public(owner, body.name)


@router.put("/datasets/{name}")
async def change_dataset(request: Request, owner: Owner, caller: Editor, name: str, version: Version,
                         body: DatasetUpdate) -> DatasetPublic:
    """Change a dataset made from ``version`` (409 when it changed since)."""
    await change(request, owner, caller, "dataset", name, spec_of(body, name), version=version)
    return await _public(owner, name)


@router.delete("/datasets/{name}")
async def delete_dataset(request: Request, owner: Owner, caller: Editor, name: str,
                         version: OptionalVersion = None) -> ChangePublic:
    """Delete a dataset (refused while a relation, segment, sync or aggregate uses it)."""
    return await change(request, owner, caller, "dataset", name, None, version=version)


def _conditions(text: str | None) -> list[dict] | None:
    if not text:
        return None
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise UsageError(f"filter: not JSON ({exc.msg} at character {exc.pos}); send a list of conditions as in a "
                         "segment, e.g. [{\"column\": \"country\", \"op\": \"=\", \"value\": \"FR\"}]") from None
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(c, dict) for c in value):
        raise UsageError("filter: a list of conditions as in a segment, e.g. "
                         "[{\"column\": \"country\", \"op\": \"=\", \"value\": \"FR\"}]")
    return value


@router.get("/datasets/{name}/rows")
async def rows(owner: Owner, _caller: Viewer, name: str,
               filter: Annotated[str | None, Query(max_length=20_000, description="conditions as in a segment (JSON)")] = None,
               match: Literal["all", "any"] = "all",
               sql: Annotated[str | None, Query(max_length=5_000, description="a SQL condition (allow-listed)")] = None,
               sort: Annotated[str | None, Query(max_length=1_000, description="col or -col, comma-separated")] = None,
               limit: Annotated[int, Query(ge=1, le=1000)] = 50,
               cursor: Annotated[str | None, Query(max_length=10_000, description="next_cursor of the last page")] = None,
               columns: Annotated[str | None, Query(max_length=10_000, description="comma-separated")] = None,
               total: bool = False) -> RowsPublic:
    """A page of a published dataset's rows: a filter, a sort, and the cursor of the next page (keyset)."""
    conditions = _conditions(filter)
    cols = [c.strip() for c in columns.split(",") if c.strip()] if columns else None
    page = await read(owner, lambda ws: dataset_rows(ws, name, conditions=conditions, match=match, sql=sql,
                                                     sort=sort, limit=limit, cursor=cursor, columns=cols,
                                                     total=total))
    return RowsPublic(**page)


@router.get("/datasets/{name}/export", response_class=StreamingResponse,
            responses={200: {"content": {t: {} for t in EXPORT_FORMATS.values()}}})
async def export(request: Request, owner: Owner, caller: Viewer, name: str,
                 format: Literal["csv", "parquet"] = "csv") -> StreamingResponse:
    """A published dataset streamed as CSV or Parquet, every row (editors, admins, and viewers granted ``export``; audited)."""
    await read(owner, lambda ws: ws.table(name))  # 404 for a dataset not published (viewers may list them)
    if caller.role == "viewer" and "export" not in await asyncio.to_thread(_grants, request, caller.identity):
        raise HTTPException(403, detail=f"exporting data needs the role editor, or the grant export for a viewer "
                                        f"(an admin: PUT /api/users/{caller.identity}/grants); {caller.identity} is viewer")

    def open_stream():
        ws = owner.workspace.reader()
        rows = ws.export_table(name)  # what `tessera` exports: with the segments column; 404 before the stream
        source = owner.workspace.adapter
        adapter = source.reader()  # a connection of its own: the stream is read across threads
        try:
            batches = adapter.to_batches(rows, BATCH_ROWS)
        except BaseException:
            if adapter is not source:
                adapter.close()
            raise
        owner.workspace.store.audit("export", actor=caller.identity, target=f"dataset {name}",
                                    details={"format": format, "via": "api"}, client=client_of(request))
        return source, adapter, batches

    source, adapter, batches = await asyncio.to_thread(open_stream)

    def body():
        try:
            yield from export_stream(batches, format)
        finally:
            if adapter is not source:
                adapter.close()

    filename = f"{name}.{format}"
    return StreamingResponse(body(), media_type=EXPORT_FORMATS[format],
                             headers={"Content-Disposition": f'attachment; filename="{filename}"'})


def _grants(request: Request, email: str) -> list[str]:
    try:
        return request.app.state.users.grants(email)
    except Exception:  # noqa: BLE001 - the local credential or a removed user: no grant
        return []
