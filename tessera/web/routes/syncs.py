"""Syncs: the list with their last runs, a new sync of a segment or a dataset to files, a database
table or a webhook, the dry-run plan, sending now (jobs of the writer queue) and the last sends
with the records that failed."""

from __future__ import annotations

import re
from dataclasses import asdict, is_dataclass

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse
from pydantic import ValidationError

from tessera import overview
from tessera.api.resources import change
from tessera.config.models import SyncConfig
from tessera.errors import ConflictError, NotFoundError, TesseraError
from tessera.syncs.destinations import DESTINATION_TYPES, FILE_TYPES, TABLE_TYPES
from tessera.syncs.sent import failures
from tessera.web.auth import Editor, Viewer
from tessera.web.reading import owner_of, read, run_job, submit
from tessera.web.render import render

router = APIRouter(include_in_schema=False)
MODES = ("upsert", "insert", "mirror")
FORMATS = ("csv", "json", "parquet")
FORM_FIELDS = ("name", "segment", "connection", "mode", "format", "folder", "file_name", "table", "key", "description",
               "fields")
DATASET = "dataset:"  # the audience value of a whole dataset (a segment's is its name)


def group_of(kind: str) -> str:
    """How a destination of this connection type is filled: files, a table or a webhook."""
    return "file" if kind in FILE_TYPES else "table" if kind in TABLE_TYPES else "webhook"


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
    columns = {}
    for d in ws.config.datasets:
        try:
            columns[d.name] = [c["column"] for c in ws.describe(d.name)]
        except TesseraError:
            columns[d.name] = []
    return {"segments": [(s.name, s.dataset) for s in ws.config.segments],
            "datasets": [d.name for d in ws.config.datasets], "columns": columns,
            "connections": [(c.name, c.type, group_of(c.type)) for c in ws.config.connections
                            if c.type in DESTINATION_TYPES],
            "modes": MODES, "formats": FORMATS}


@router.get("/syncs")
async def syncs(request: Request, user: Viewer):
    return render(request, "syncs.html", nav="syncs", **(await read(request, _syncs)))


@router.get("/syncs/new")
async def new_sync(request: Request, user: Editor, segment: str | None = None):
    options = await read(request, _form_options)
    form = {"segment": segment or "", "mode": "mirror", "format": "csv", "folder": "audiences", "name": "",
            "connection": options["connections"][0][0] if options["connections"] else "", "file_name": "",
            "table": "", "key": "tessera_id"}
    return render(request, "sync_new.html", nav="syncs", form=form, errors={}, problems=[], **options)


def _definition(form: dict, options: dict, errors: dict) -> dict:
    """The sync the form describes (as the YAML writes it); what is wrong goes to ``errors``."""
    segments = dict(options["segments"])
    if form["segment"].startswith(DATASET) and form["segment"][len(DATASET):] in options["datasets"]:
        dataset, segment = form["segment"][len(DATASET):], None
    elif form["segment"] in segments:
        dataset, segment = segments[form["segment"]], form["segment"]
    else:
        dataset, segment = "", None
        errors["segment"] = "syncs.error_segment"
    types = {c: ty for c, ty, _g in options["connections"]}
    group = group_of(types[form["connection"]]) if form["connection"] in types else None
    if group is None:
        errors["connection"] = "syncs.error_connection"
    if not form["name"]:
        errors["name"] = "form.required"
    definition = {"name": form["name"], "dataset": dataset, "connection": form["connection"],
                  "mode": form["mode"] if form["mode"] in MODES else "upsert"}
    if segment:
        definition["segment"] = segment
    if form["key"] and form["key"] != "tessera_id":
        definition["key"] = form["key"]
    if group == "file":
        definition.update(format=form["format"] if form["format"] in FORMATS else "csv", folder=form["folder"] or ".")
        if form["file_name"]:
            definition["file_name"] = form["file_name"]
    elif group == "table":
        if not form["table"]:
            errors["table"] = "syncs.error_table"
        definition["table"] = form["table"]
    if form["description"]:
        definition["description"] = form["description"]
    fields, bad = parse_fields(form["fields"])
    if bad:
        errors["fields"] = "syncs.error_fields"
    elif fields:
        definition["fields"] = fields
    return definition


_PLACE = re.compile(r"^syncs\[\d+\] \([^)]*\)\.(\w+)")


@router.post("/syncs/new")
async def create_sync(request: Request, user: Editor):
    """Create a sync to files, a database table or a webhook, checked like ``tessera apply`` (the
    REST API's own change: every problem at once, then a job of the writer queue)."""
    raw = {k: str(v).strip() for k, v in (await request.form()).items()}
    options = await read(request, _form_options)
    form = {k: raw.get(k, "") for k in FORM_FIELDS}
    errors: dict[str, str] = {}
    definition = _definition(form, options, errors)
    if form["name"] in await read(request, lambda ws: [s.name for s in ws.config.syncs]):
        errors["name"] = "syncs.error_taken"
    problems: list[str] = []
    status = 400
    if not errors:
        try:
            SyncConfig.model_validate(definition)
            await change(request, owner_of(request), user, "sync", form["name"], definition, create=True)
        except ValidationError as exc:
            for e in exc.errors():
                place = str(e["loc"][0]) if e["loc"] else ""
                message = e["msg"].removeprefix("Value error, ")
                if place in FORM_FIELDS and place not in errors:
                    errors[place] = message
                else:
                    problems.append(f"{'.'.join(str(p) for p in e['loc'])}: {message}")
        except ConflictError:
            errors["name"], status = "syncs.error_taken", 409
        except TesseraError as exc:
            status = exc.status
            for problem in getattr(exc, "problems", None) or [str(exc)]:
                m = _PLACE.match(problem)
                place = m.group(1) if m else ""
                if place in FORM_FIELDS and place not in errors:
                    errors[place] = problem[m.end():].lstrip(".:, ")
                else:
                    problems.append(problem)
    if errors or problems:
        return render(request, "sync_new.html", status_code=status, nav="syncs", form=form, errors=errors,
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
    runs = [{**r, "seconds": overview._seconds(r.get("started_at"), r.get("finished_at"))}
            for r in ws.store.list_runs(100, kind="sync") if r["target"] == name][:10]
    conn = next((c for c in ws.config.connections if c.name == sync.connection), None)
    return {"sync": sync.model_dump(mode="json", by_alias=True), "runs": runs,
            "connection_type": conn.type if conn else None, "failures": failures(ws, name)}


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
