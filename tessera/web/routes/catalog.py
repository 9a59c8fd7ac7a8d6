"""The source catalog and the datasets (connections: :mod:`tessera.web.routes.connections`)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from tessera import overview
from tessera.browse.rows import columns_of, dataset_rows
from tessera.errors import NotFoundError, TesseraError
from tessera.web.auth import Viewer
from tessera.web.reading import read
from tessera.web.render import render

router = APIRouter(include_in_schema=False)


def _sources(ws) -> list[dict]:
    rejects = {r["source"]: r["rows"] for r in overview.rejects_by_source(ws)}
    files: dict[str, int] = {}
    for f in ws.store.list_imported_files():
        files[f["source"]] = files.get(f["source"], 0) + 1
    return [{"name": s.name, "connection": s.connection, "what": s.pattern or s.table or s.query or "(events)",
             "files": files.get(s.name, 0), "rejected": rejects.get(s.name, 0),
             "datasets": [d.name for d in ws.config.datasets if any(m.source == s.name for m in d.mappings)]}
            for s in ws.config.sources]


@router.get("/sources")
async def sources(request: Request, user: Viewer):
    return render(request, "sources.html", nav="sources", sources=await read(request, _sources))


def _source(ws, name: str) -> dict:
    info = ws.source(name)
    reasons = next((r["reasons"] for r in overview.rejects_by_source(ws) if r["source"] == name), [])
    return {"source": info, "reasons": reasons}


def _preview(ws, name: str) -> dict:
    try:
        table = ws.preview_source(name, 20)
        return {"columns": [c for c in table.column_names if not c.startswith("_tessera")],
                "rows": table.to_pylist(), "error": None}
    except TesseraError as exc:
        return {"columns": [], "rows": [], "error": str(exc)}


@router.get("/sources/{name}")
async def source(request: Request, user: Viewer, name: str):
    known = await read(request, lambda ws: [s.name for s in ws.config.sources])
    if name not in known:
        raise NotFoundError(f"no source '{name}' (sources: {', '.join(known) or 'none'})")
    return render(request, "source.html", nav="sources", **(await read(request, lambda ws: _source(ws, name))))


@router.get("/sources/{name}/preview")
async def source_preview(request: Request, user: Viewer, name: str):
    """A source's preview (its rows staged as the next run reads them), asked by the source's page
    once it is shown: staging takes longer than the rest of the page."""
    known = await read(request, lambda ws: [s.name for s in ws.config.sources])
    if name not in known:
        raise NotFoundError(f"no source '{name}' (sources: {', '.join(known) or 'none'})")
    return render(request, "source_preview.html", preview=await read(request, lambda ws: _preview(ws, name)))


@router.get("/datasets")
async def datasets(request: Request, user: Viewer):
    data = await read(request, overview.holdings)
    return render(request, "datasets.html", nav="datasets", datasets=data["datasets"])


def _dataset(ws, name: str) -> dict:
    ds = next((d for d in ws.config.datasets if d.name == name), None)
    if ds is None:
        raise NotFoundError(f"no dataset '{name}' (datasets: {', '.join(ws.datasets()) or 'none'})")
    described = ws.describe(name)
    preview = None
    if ws.adapter.published_target(name) is not None:
        # the first rows by tessera_id, as the API's pages of rows give them
        columns = [c for c in columns_of(ws, name) if not c.startswith("_")]
        page = dataset_rows(ws, name, limit=20, columns=columns, total=True)
        preview = {"columns": columns, "rows": page["data"], "total": page["total"]}
    shown = {c["column"] for c in described}
    published_only = [c for c in (preview["columns"] if preview else []) if c not in shown and c != "tessera_id"]
    return {"dataset": ds.model_dump(mode="json", by_alias=True, exclude_defaults=True), "columns": described,
            "extra_columns": published_only, "preview": preview, "deduplicate": bool(ds.deduplicate),
            "segments": [s.name for s in ws.config.segments if s.dataset == name]}


@router.get("/datasets/{name}")
async def dataset(request: Request, user: Viewer, name: str):
    return render(request, "dataset.html", nav="datasets", **(await read(request, lambda ws: _dataset(ws, name))))
