"""The definition of one source, dataset or sync as YAML, changed by editors: the text as ``tessera
export`` writes the object, checked by the same code as ``tessera apply`` (every problem at once,
with its place), made by a job of the writer queue from the version shown (the REST API's own
change, :func:`tessera.api.resources.change`: 409 when the object changed since)."""

from __future__ import annotations

import json
import re

import yaml
from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse

from tessera.api.resources import change
from tessera.config.loader import line_of, read_yaml_text
from tessera.errors import ConfigError, NotFoundError, TesseraError, VersionConflict
from tessera.web.auth import Editor
from tessera.web.reading import owner_of, read
from tessera.web.render import render

router = APIRouter(include_in_schema=False)
SECTIONS = {"source": "sources", "dataset": "datasets", "sync": "syncs"}


def as_yaml(spec: dict) -> str:
    return yaml.safe_dump(spec, sort_keys=False, allow_unicode=True, width=110)


async def _stored(request: Request, kind: str, name: str) -> dict:
    return await read(request, lambda ws: ws.config_object(kind, name))


def _page(request: Request, kind: str, name: str, text: str, version: str, status_code: int = 200,
          problems: list | None = None, conflict: str | None = None):
    return render(request, "definition.html", status_code=status_code, nav=SECTIONS[kind], kind=kind, name=name,
                  section=SECTIONS[kind], text=text, version=version, problems=problems or [], conflict=conflict)


_PLACE = re.compile(r"^(?:line \d+, )?(?P<plural>sources|datasets|syncs)\[\d+\](?: \((?P<name>[^)]*)\))?"
                    r"\.(?P<path>[\w.\[\]-]+?)(?=: |\s)")


def placed(problems: list[str], text: str, kind: str, name: str) -> list[str]:
    """Problems of the whole configuration as places in the object's YAML text: ``sources[3]
    (orders).csv.delimiter: ...`` becomes ``line 6, csv.delimiter: ...``. The problems of other
    objects (a segment the change breaks) keep their place in the configuration."""
    try:
        lined = read_yaml_text(text)
    except TesseraError:
        return problems
    out = []
    for problem in problems:
        m = _PLACE.match(problem)
        if not m or m["plural"] != SECTIONS[kind] or m["name"] not in (None, name):
            out.append(problem)
            continue
        loc = tuple(int(i) if i else key for key, i in re.findall(r"([A-Za-z_][\w-]*)|\[(\d+)\]", m["path"]))
        line = line_of(lined, loc)
        out.append(f"{f'line {line}, ' if line else ''}{m['path']}{problem[m.end():]}")
    return out


def parse(text: str, kind: str, name: str) -> dict:
    """The posted YAML of one object -> its definition (ConfigError naming the line when it is not
    YAML, not a mapping, or renames the object)."""
    data = read_yaml_text(text, origin=f"{kind} '{name}'")
    if not isinstance(data, dict):
        raise ConfigError(f"the definition of a {kind} is a mapping of settings (name: ..., ...)",
                          origin=f"{kind} '{name}'")
    if data.get("name", name) != name:
        raise ConfigError(f"name: a {kind} is not renamed here (it was '{name}'); keep the name, or create a new "
                          f"{kind} in the configuration", origin=f"{kind} '{name}'")
    return json.loads(json.dumps({**data, "name": name}, default=str))  # plain values for the job's parameters


async def _edit(request: Request, kind: str, name: str):
    obj = await _stored(request, kind, name)
    return _page(request, kind, name, as_yaml(obj["spec"]), obj["version"])


async def _save(request: Request, user, kind: str, name: str):
    form = await request.form()
    text, version = str(form.get("definition") or ""), str(form.get("version") or "")
    await _stored(request, kind, name)  # 404 for an unknown object
    try:
        await change(request, owner_of(request), user, kind, name, parse(text, kind, name), version=version or None)
    except NotFoundError:
        raise
    except VersionConflict as exc:
        return _page(request, kind, name, text, version, status_code=exc.status, conflict=str(exc))
    except TesseraError as exc:
        return _page(request, kind, name, text, version, status_code=exc.status,
                     problems=placed(getattr(exc, "problems", None) or [str(exc)], text, kind, name))
    return RedirectResponse(f"/{SECTIONS[kind]}/{name}?saved=1", status_code=303)


@router.get("/sources/{name}/edit")
async def edit_source(request: Request, user: Editor, name: str):
    return await _edit(request, "source", name)


@router.post("/sources/{name}/edit")
async def save_source(request: Request, user: Editor, name: str):
    return await _save(request, user, "source", name)


@router.get("/datasets/{name}/edit")
async def edit_dataset(request: Request, user: Editor, name: str):
    return await _edit(request, "dataset", name)


@router.post("/datasets/{name}/edit")
async def save_dataset(request: Request, user: Editor, name: str):
    return await _save(request, user, "dataset", name)


@router.get("/syncs/{name}/edit")
async def edit_sync(request: Request, user: Editor, name: str):
    return await _edit(request, "sync", name)


@router.post("/syncs/{name}/edit")
async def save_sync(request: Request, user: Editor, name: str):
    return await _save(request, user, "sync", name)


@router.post("/syncs/{name}/delete")
async def delete_sync(request: Request, user: Editor, name: str):
    """Delete a sync (what it sent stays at the destination), made from the version shown."""
    obj = await _stored(request, "sync", name)
    version = str((await request.form()).get("version") or "") or None
    try:
        await change(request, owner_of(request), user, "sync", name, None, version=version)
    except NotFoundError:
        raise
    except TesseraError as exc:
        problems = getattr(exc, "problems", None) or [str(exc)]
        conflict = str(exc) if isinstance(exc, VersionConflict) else None
        return _page(request, "sync", name, as_yaml(obj["spec"]), obj["version"], status_code=exc.status,
                     problems=[] if conflict else problems, conflict=conflict)
    return RedirectResponse(f"/syncs?deleted={name}", status_code=303)
