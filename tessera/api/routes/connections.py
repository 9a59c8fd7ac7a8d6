"""Connections (``/api/connections``): list, show, create, change, delete and test. Admins change
them (they hold credentials); a secret is never answered, only whether it is set and where it
comes from; a change that leaves a secret out keeps the stored one."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, RootModel

from tessera.api.auth import Admin, Editor, Owner, Principal, Viewer
from tessera.api.changes import read
from tessera.api.owner import WorkspaceOwner
from tessera.api.resources import ChangePublic, OptionalVersion, Version, change, get_object, list_objects
from tessera.config.models import SECRET_FIELDS, ConnectionConfig
from tessera.errors import UsageError

router = APIRouter(prefix="/api", tags=["connections"])


class ConnectionCreate(RootModel[ConnectionConfig]):
    """A connection as in the YAML (``type`` picks its settings); secrets in plain text are stored
    encrypted, or ``{env: VAR}``."""


class ConnectionUpdate(RootModel[ConnectionConfig]):
    """The whole connection as in the YAML; a secret left out keeps the stored one."""


class ConnectionPublic(BaseModel):
    name: str
    type: str
    version: str
    updated_at: str | None = None
    spec: dict[str, Any]
    secrets: dict[str, str] = {}


class ConnectionsPublic(BaseModel):
    data: list[ConnectionPublic]
    count: int


class ConnectionTestPublic(BaseModel):
    ok: bool
    checks: list[str]


def public_connection(obj: dict) -> ConnectionPublic:
    """A stored connection without its secrets: only whether each is set and where it comes from."""
    spec = dict(obj["spec"])
    secrets = {}
    for field in SECRET_FIELDS:
        value = spec.pop(field, None)
        if isinstance(value, dict) and value.get("env"):
            secrets[field] = f"environment variable {value['env']}"
        elif value is not None:
            secrets[field] = "stored encrypted"
    return ConnectionPublic(name=obj["name"], type=str(spec.get("type")), version=obj["version"],
                            updated_at=obj["updated_at"], spec=spec, secrets=secrets)


def connection_spec(body: RootModel, name: str | None = None) -> dict:
    """A connection as the YAML writes it (defaults left out, its ``type`` always), named ``name``."""
    spec = body.root.model_dump(mode="json", exclude_defaults=True, by_alias=True)
    spec["type"] = body.root.type  # the discriminator, even where it is the default
    if name is not None and spec.get("name") != name:
        raise UsageError(f"the body names '{spec.get('name')}', the path '{name}': a connection is not renamed; "
                         "create it under the new name and delete the old one")
    return spec


async def save_connection(request: Request, owner: WorkspaceOwner, caller: Principal, spec: dict, *,
                          version: str | None = None, create: bool = False,
                          forget: tuple[str, ...] = ()) -> ChangePublic:
    """Create (``create``) or change the connection ``spec`` (made from ``version``) through the
    writer queue, with every check of ``tessera apply``, which stores plain secrets encrypted. A
    change that leaves a secret out keeps the stored one, unless it is named in ``forget`` (the
    REST API and the web app's form)."""
    if not create:
        current = (await get_object(owner, "connection", spec["name"]))["spec"]
        if current.get("type") == spec["type"]:
            for field in SECRET_FIELDS:
                if field not in spec and field not in forget and current.get(field) is not None:
                    spec[field] = current[field]  # the stored reference: the value itself is never read here
    return await change(request, owner, caller, "connection", spec["name"], spec, version=version, create=create)


@router.get("/connections")
async def list_connections(owner: Owner, _caller: Viewer) -> ConnectionsPublic:
    """The connections, without their secrets."""
    data = [public_connection(o) for o in await list_objects(owner, "connection")]
    return ConnectionsPublic(data=data, count=len(data))


@router.get("/connections/{name}")
async def show_connection(owner: Owner, _caller: Viewer, name: str) -> ConnectionPublic:
    """One connection with its version (its secrets: only whether they are set)."""
    return public_connection(await get_object(owner, "connection", name))


@router.post("/connections", status_code=201)
async def create_connection(request: Request, owner: Owner, caller: Admin, body: ConnectionCreate) -> ConnectionPublic:
    """Create a connection (checked like tessera apply; a job of the writer queue)."""
    spec = connection_spec(body)
    await save_connection(request, owner, caller, spec, create=True)
    return public_connection(await get_object(owner, "connection", spec["name"]))


@router.put("/connections/{name}")
async def change_connection(request: Request, owner: Owner, caller: Admin, name: str, version: Version,
                            body: ConnectionUpdate) -> ConnectionPublic:
    """Change a connection made from ``version`` (409 when it changed since); omitted secrets are kept."""
    await save_connection(request, owner, caller, connection_spec(body, name), version=version)
    return public_connection(await get_object(owner, "connection", name))


@router.delete("/connections/{name}")
async def delete_connection(request: Request, owner: Owner, caller: Admin, name: str,
                            version: OptionalVersion = None) -> ChangePublic:
    """Delete a connection (refused while a source or sync uses it) and forget its secrets."""
    return await change(request, owner, caller, "connection", name, None, version=version)


@router.post("/connections/{name}/test")
async def test_connection(owner: Owner, _caller: Editor, name: str) -> ConnectionTestPublic:
    """Connect for real and check what its sources read (502 connection_failed with the reason and the fix)."""
    await get_object(owner, "connection", name)
    checks = await read(owner, lambda ws: ws.test_connection(name))
    return ConnectionTestPublic(ok=True, checks=list(checks))
