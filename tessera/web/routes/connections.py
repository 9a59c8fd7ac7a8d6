"""Connections: the list with a test button, and (admins) a form per connection type to create,
change and delete one. Changes go through the REST API's own code
(:func:`tessera.api.routes.connections.save_connection`): the writer queue, every check of
``tessera apply``, plain secrets stored encrypted, a change made from an old version refused."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse

from tessera.api.resources import change
from tessera.api.routes.connections import public_connection, save_connection
from tessera.errors import ConfigError, ConflictError, ConnectionFailed, NotFoundError, TesseraError, VersionConflict
from tessera.web import connection_form as cf
from tessera.web.auth import Admin, Editor, Viewer
from tessera.web.reading import owner_of, read
from tessera.web.render import render

router = APIRouter(include_in_schema=False)


def _connections(ws) -> list[dict]:
    out = []
    versions = {o["name"]: o["version"] for o in ws.config_objects() if o["kind"] == "connection"}
    for c in ws.config.connections:
        out.append({"name": c.name, "type": c.type, "description": c.description, "version": versions.get(c.name),
                    "sources": [s.name for s in ws.config.sources if s.connection == c.name],
                    "syncs": [s.name for s in ws.config.syncs if s.connection == c.name]})
    return out


async def _list_page(request: Request, status_code: int = 200, **values):
    return render(request, "connections.html", status_code=status_code, nav="connections",
                  connections=await read(request, _connections), **{"tested": None, "error": None, **values})


@router.get("/connections")
async def connections(request: Request, user: Viewer):
    return await _list_page(request)


@router.post("/connections/{name}/test")
async def test_connection(request: Request, user: Editor, name: str):
    """Open the connection for real and check what its sources read (an HTMX fragment)."""
    known = await read(request, lambda ws: [c.name for c in ws.config.connections])
    if name not in known:
        raise NotFoundError(f"no connection '{name}' (connections: {', '.join(known) or 'none'})")
    try:
        lines, ok = await read(request, lambda ws: ws.test_connection(name)), True
    except ConnectionFailed as exc:
        lines, ok = [str(exc)], False
    except TesseraError as exc:
        lines, ok = [str(exc)], False
    tested = {"name": name, "lines": lines, "ok": ok}
    if request.headers.get("hx-request") == "true":
        return render(request, "connection_test.html", tested=tested)
    return await _list_page(request, tested=tested)


def _form_page(request: Request, *, kind: str, values: dict, status_code: int = 200, existing: dict | None = None,
               errors: dict | None = None, problems: list | None = None, conflict: str | None = None):
    return render(request, "connection_form.html", status_code=status_code, nav="connections", kind=kind,
                  types=cf.TYPES, fields=cf.fields_of(kind), values=values, existing=existing, errors=errors or {},
                  problems=problems or [], conflict=conflict, required=cf.REQUIRED)


@router.get("/connections/new")
async def new_connection(request: Request, user: Admin, type: str = "local"):
    kind = type if type in cf.TYPES else "local"
    return _form_page(request, kind=kind, values={"name": "", **cf.values_of(kind, {})})


async def _save(request: Request, user, kind: str, *, existing: dict | None):
    form = await request.form()
    spec, errors, shown = cf.parse(kind, form, name=existing["name"] if existing else None)
    problems, conflict, status = [], None, 400
    if not errors:
        version = str(form.get("version") or "") or None
        try:
            forget = tuple(f for f in form.getlist("forget") if f not in spec)
            await save_connection(request, owner_of(request), user, spec, version=version, create=existing is None,
                                  forget=forget)
        except VersionConflict as exc:
            conflict, status = str(exc), exc.status
        except ConflictError as exc:  # a connection of this name exists already
            errors["name"], status = str(exc), exc.status
        except ConfigError as exc:
            for problem in getattr(exc, "problems", None) or [str(exc)]:
                field = cf.problem_field(problem, kind)
                if field and field not in errors:
                    errors[field] = problem
                else:
                    problems.append(problem)
        except TesseraError as exc:
            problems, status = [str(exc)], exc.status
        else:
            return RedirectResponse(f"/connections?saved={spec['name']}", status_code=303)
    return _form_page(request, kind=kind, values=shown, status_code=status, existing=existing, errors=errors,
                      problems=problems, conflict=conflict)


@router.post("/connections/new")
async def create_connection(request: Request, user: Admin):
    kind = str((await request.form()).get("type") or "")
    if kind not in cf.TYPES:
        return _form_page(request, kind="local", values={"name": "", **cf.values_of("local", {})}, status_code=400,
                          problems=[f"unknown connection type '{kind}': choose one of {', '.join(cf.TYPES)}"])
    return await _save(request, user, kind, existing=None)


def _used_by(ws, name: str) -> list[str]:
    return ([s.name for s in ws.config.sources if s.connection == name]
            + [s.name for s in ws.config.syncs if s.connection == name])


async def _existing(request: Request, name: str) -> dict:
    obj = await read(request, lambda ws: ws.config_object("connection", name))
    used_by = await read(request, lambda ws: _used_by(ws, name))
    return {**public_connection(obj).model_dump(), "used_by": used_by}


@router.get("/connections/{name}/edit")
async def edit_connection(request: Request, user: Admin, name: str):
    existing = await _existing(request, name)
    values = {"name": name, **cf.values_of(existing["type"], existing["spec"])}
    return _form_page(request, kind=existing["type"], values=values, existing=existing)


@router.post("/connections/{name}/edit")
async def change_connection(request: Request, user: Admin, name: str):
    existing = await _existing(request, name)
    return await _save(request, user, existing["type"], existing=existing)


@router.post("/connections/{name}/delete")
async def delete_connection(request: Request, user: Admin, name: str):
    """Delete a connection (refused while a source or sync uses it); its stored secrets go with it."""
    version = str((await request.form()).get("version") or "") or None
    used_by = await read(request, lambda ws: _used_by(ws, name))
    if used_by:  # said plainly here; the configuration's checks would refuse it too
        return await _list_page(request, status_code=409, error={"name": name, "used_by": used_by, "problems": []})
    try:
        await change(request, owner_of(request), user, "connection", name, None, version=version)
    except NotFoundError:
        raise  # the error page (404)
    except TesseraError as exc:
        problems = getattr(exc, "problems", None) or [str(exc)]
        return await _list_page(request, status_code=exc.status, error={"name": name, "problems": problems})
    return RedirectResponse(f"/connections?deleted={name}", status_code=303)
