"""Schedules (``/api/schedules``): the cron schedule of the pipeline's runs, of a source's imports
and of a sync, read with their next run and changed like any configuration object (a version,
the checks of ``tessera apply``, the writer queue)."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from tessera.api.auth import Editor, Owner, Principal, Viewer
from tessera.api.changes import read
from tessera.api.owner import WorkspaceOwner
from tessera.api.resources import ChangePublic, Version, change
from tessera.config.versions import spec_version

router = APIRouter(prefix="/api", tags=["schedules"])

Kind = Literal["pipeline", "source", "sync"]


class ScheduleUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    cron: str | None = Field(default=None, max_length=200,
                             description="a cron expression ('0 6 * * *', '@daily'); null removes the schedule")


class SchedulePublic(BaseModel):
    kind: str
    name: str
    cron: str | None
    version: str = Field(description="the version of the object that holds the schedule")


class SchedulesPublic(BaseModel):
    data: list[SchedulePublic]
    next_runs: list[dict]


def _spec(ws, kind: str, name: str) -> tuple[dict, str]:
    if kind == "pipeline":
        stored = next((s for k, _n, s in ws.store.load_config() if k == "pipeline"), {})
        return dict(stored), spec_version(stored)
    obj = ws.config_object(kind, name)
    return dict(obj["spec"]), obj["version"]


def schedules_of(ws) -> SchedulesPublic:
    """Every schedule (the pipeline's, each source's and sync's, set or not) and the next runs."""
    out = []
    spec, version = _spec(ws, "pipeline", "pipeline")
    out.append(SchedulePublic(kind="pipeline", name="pipeline", cron=spec.get("schedule"), version=version))
    for o in ws.config_objects():
        if o["kind"] in ("source", "sync"):
            out.append(SchedulePublic(kind=o["kind"], name=o["name"], cron=o["spec"].get("schedule"),
                                      version=o["version"]))
    return SchedulesPublic(data=out, next_runs=ws.scheduler().next_runs())


async def set_schedule(request: Request, owner: WorkspaceOwner, caller: Principal, kind: str, name: str,
                       cron: str | None, version: str) -> ChangePublic:
    """Set (``cron``) or remove (None) the schedule of the pipeline, a source or a sync, made from
    the ``version`` of the object that holds it (the REST API and the web app's schedules page)."""
    spec, _ = await read(owner, lambda ws: _spec(ws, kind, name))
    if cron:
        spec["schedule"] = cron
    else:
        spec.pop("schedule", None)
    return await change(request, owner, caller, kind, "pipeline" if kind == "pipeline" else name, spec,
                        version=version)


@router.get("/schedules")
async def list_schedules(owner: Owner, _caller: Viewer) -> SchedulesPublic:
    """Every schedule (pipeline, sources, syncs) with the version to change it, and the next runs."""
    return await read(owner, schedules_of)


@router.put("/schedules/{kind}/{name}")
async def change_schedule(request: Request, owner: Owner, caller: Editor, kind: Kind, name: str, version: Version,
                          body: ScheduleUpdate) -> ChangePublic:
    """Set or remove the schedule of the pipeline (name ``pipeline``), a source or a sync."""
    return await set_schedule(request, owner, caller, kind, name, body.cron, version)
