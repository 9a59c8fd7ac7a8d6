"""What the routes of configuration objects share (connections, sources, datasets, syncs):
read an object with its version, and create, change or delete it through a job of the writer
queue that applies the whole configuration with every check of ``tessera apply``.

A change names the version it was made from (``?version=`` from the object's ``version``): when
the object changed since, the answer is 409 ``version_conflict`` and nothing is changed.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Query, Request
from pydantic import BaseModel, Field

from tessera.api.auth import Principal
from tessera.api.changes import read, run_change
from tessera.api.owner import WorkspaceOwner
from tessera.errors import UsageError

Version = Annotated[str, Query(min_length=1, max_length=64, description="the object's version this change was "
                                                                          "made from (its `version`); 409 when it "
                                                                          "changed since")]
OptionalVersion = Annotated[str | None, Query(min_length=1, max_length=64,
                                              description="the object's version (409 when it changed since)")]
Name = Annotated[str, Field(max_length=255)]


class ChangePublic(BaseModel):
    """What a change did: the job of the writer queue and the objects added, removed, changed."""

    job: int
    added: list[str]
    removed: list[str]
    changed: list[str]


def spec_of(body: BaseModel, name: str | None = None) -> dict[str, Any]:
    """A request body as the YAML writes the object (defaults left out), named ``name``."""
    spec = body.model_dump(mode="json", exclude_defaults=True, by_alias=True, exclude={"version"})
    if name is not None:
        if spec.get("name") not in (None, name):
            raise UsageError(f"the body names '{spec['name']}', the path '{name}': an object is not renamed; create "
                             "it under the new name and delete the old one")
        spec["name"] = name
    return spec


async def get_object(owner: WorkspaceOwner, kind: str, name: str) -> dict[str, Any]:
    return await read(owner, lambda ws: ws.config_object(kind, name))


async def list_objects(owner: WorkspaceOwner, kind: str) -> list[dict[str, Any]]:
    return await read(owner, lambda ws: [o for o in ws.config_objects() if o["kind"] == kind])


async def change(request: Request, owner: WorkspaceOwner, caller: Principal, kind: str, name: str,
                 spec: dict | None, *, version: str | None = None, create: bool = False) -> ChangePublic:
    """Create, change (``spec``) or delete (``spec`` None) one object through the writer queue."""
    params = {"kind": kind, "name": name, "spec": spec, "expected_version": version, "create": create}
    # Checked on a reader first: 404, 409 and every problem of the configuration at once, with its place.
    await read(owner, lambda ws: ws.change_object(**params, dry_run=True))
    done = await run_change(request, owner, caller, "config_change",
                            params)
    return ChangePublic(job=done["job"], **done["changes"])
