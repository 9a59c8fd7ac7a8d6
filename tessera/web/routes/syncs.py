"""Syncs: the list with their last runs, a new file sync from a segment, the dry-run plan and
sending now (jobs of the writer queue)."""

from __future__ import annotations

from dataclasses import asdict, is_dataclass

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse
from pydantic import ValidationError

from tessera.errors import ConfigError, NotFoundError, TesseraError
from tessera.syncs.edit import config_with_sync
from tessera.web.auth import Editor, Viewer
from tessera.web.reading import read, run_job, submit
from tessera.web.render import render

router = APIRouter(include_in_schema=False)
FILE_TYPES = ("local", "ftp", "ftps", "sftp")
MODES = ("upsert", "insert", "mirror")
FORMATS = ("csv", "json", "parquet")


def _last_runs(ws) -> dict[str, dict]:
    last: dict[str, dict] = {}
    for r in ws.store.list_runs(200, kind="sync"):
        last.setdefault(r["target"], r)
    return last


def _syncs(ws) -> dict:
    last = _last_runs(ws)
    types = {c.name: c.type for c in ws.config.connections}
    return {"syncs": [{**s.model_dump(mode="json", by_alias=True), "connection_type": types.get(s.connection),
                       "last": last.get(s.name)} for s in ws.config.syncs]}


def _form_options(ws) -> dict:
    return {"segments": [(s.name, s.dataset) for s in ws.config.segments],
            "connections": [(c.name, c.type) for c in ws.config.connections if c.type in FILE_TYPES],
            "modes": MODES, "formats": FORMATS}


@router.get("/syncs")
async def syncs(request: Request, user: Viewer):
    return render(request, "syncs.html", nav="syncs", **(await read(request, _syncs)))


@router.get("/syncs/new")
async def new_sync(request: Request, user: Editor, segment: str | None = None):
    options = await read(request, _form_options)
    form = {"segment": segment or "", "mode": "mirror", "format": "csv", "folder": "audiences", "name": "",
            "connection": options["connections"][0][0] if options["connections"] else "", "file_name": ""}
    return render(request, "sync_new.html", nav="syncs", form=form, errors=[], **options)


@router.post("/syncs/new")
async def create_sync(request: Request, user: Editor):
    raw = {k: str(v).strip() for k, v in (await request.form()).items()}
    options = await read(request, _form_options)
    form = {k: raw.get(k, "") for k in ("name", "segment", "connection", "mode", "format", "folder", "file_name",
                                         "description", "fields")}
    datasets = dict(options["segments"])
    errors = []
    if form["segment"] not in datasets:
        errors.append(("segment", "syncs.error_segment"))
    if form["connection"] not in dict(options["connections"]):
        errors.append(("connection", "syncs.error_connection"))
    existing = await read(request, lambda ws: [s.name for s in ws.config.syncs])
    if form["name"] in existing:
        errors.append(("name", "syncs.error_taken"))
    definition = {"name": form["name"], "dataset": datasets.get(form["segment"], ""), "segment": form["segment"],
                  "connection": form["connection"], "mode": form["mode"] if form["mode"] in MODES else "mirror",
                  "format": form["format"] if form["format"] in FORMATS else "csv", "folder": form["folder"] or "."}
    for key in ("file_name", "description"):
        if form[key]:
            definition[key] = form[key]
    fields, bad = parse_fields(form["fields"])
    if bad:
        errors.append(("fields", "syncs.error_fields"))
    elif fields:
        definition["fields"] = fields
    problems: list[str] = []
    if not errors:
        try:
            config = await read(request, lambda ws: config_with_sync(ws.config, definition))
            await run_job(request, "apply", {"config": config}, user.identity)
        except ValidationError as exc:
            problems = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg'].removeprefix('Value error, ')}"
                        for e in exc.errors()]
        except ConfigError as exc:
            problems = list(getattr(exc, "problems", None) or [str(exc)])
    if errors or problems:
        return render(request, "sync_new.html", status_code=400, nav="syncs", form=form, errors=errors,
                      problems=problems, **options)
    return RedirectResponse(f"/syncs/{form['name']}", status_code=303)


def parse_fields(text: str) -> tuple[dict[str, str], list[str]]:
    """``destination = column`` lines (or a bare column: the same name at the destination) -> the
    sync's ``fields``, and the lines that are neither."""
    fields, bad = {}, []
    for line in (text or "").splitlines():
        line = line.strip()
        if not line:
            continue
        dest, sep, col = line.partition("=")
        dest, col = dest.strip(), (col.strip() if sep else dest.strip())
        if not dest or not col or any(c.isspace() for c in dest + col):
            bad.append(line)
        else:
            fields[dest] = col
    return fields, bad


def _sync(ws, name: str) -> dict:
    sync = next((s for s in ws.config.syncs if s.name == name), None)
    if sync is None:
        raise NotFoundError(f"no sync '{name}' (syncs: {', '.join(s.name for s in ws.config.syncs) or 'none'})")
    runs = [r for r in ws.store.list_runs(100, kind="sync") if r["target"] == name][:10]
    conn = next((c for c in ws.config.connections if c.name == sync.connection), None)
    return {"sync": sync.model_dump(mode="json", by_alias=True), "runs": runs,
            "connection_type": conn.type if conn else None}


@router.get("/syncs/{name}")
async def sync_page(request: Request, user: Viewer, name: str):
    return render(request, "sync.html", nav="syncs", plan=None, **(await read(request, lambda ws: _sync(ws, name))))


@router.post("/syncs/{name}/plan")
async def plan(request: Request, user: Editor, name: str):
    """The dry run: what a send would insert, update and delete, without sending anything."""
    data = await read(request, lambda ws: _sync(ws, name))
    try:
        results = await run_job(request, "sync", {"syncs": [name], "dry_run": True}, user.identity)
        result = results[0] if isinstance(results, list) and results else results
        plan = asdict(result) if is_dataclass(result) else result
        error = None
    except TesseraError as exc:
        plan, error = None, str(exc)
    return render(request, "sync.html", nav="syncs", plan=plan, plan_error=error, **data)


@router.post("/syncs/{name}/run")
async def run(request: Request, user: Editor, name: str):
    await read(request, lambda ws: _sync(ws, name))  # 404 for an unknown sync
    job = await submit(request, "sync", {"syncs": [name]}, user.identity)
    return RedirectResponse(f"/runs/jobs/{job['id']}", status_code=303)
