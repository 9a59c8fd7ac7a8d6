"""REST routes of the dashboards (``/api/dashboards``) and questions (``/api/questions``): the seven
defaults and the workspace's own, run with the filters a viewer sets; each chart's data, CSV
(streamed, every row), PNG and SVG; custom dashboards created, changed and deleted by editors.
Reads run on a reader of the server's workspace; changes are jobs of the writer queue."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, ValidationError

from tessera.api.auth import Editor, Owner, Viewer
from tessera.api.resources import OptionalVersion, Version
from tessera.config.models import DashboardConfig
from tessera.errors import ConfigError, ConflictError, VersionConflict

router = APIRouter(prefix="/api", tags=["dashboards"])


class QuestionRun(BaseModel):
    """A question as in the YAML (its ``name`` may be left out) and the dashboard filters to apply."""

    model_config = ConfigDict(extra="forbid")

    question: dict[str, Any]
    filters: dict[str, Any] | None = None


class DashboardUpdate(BaseModel):
    """A custom dashboard's new title, description, filters or questions (as in the YAML); the
    ``version`` it was made from goes in the query (``?version=``)."""

    model_config = ConfigDict(extra="forbid")

    title: str | None = None
    description: str | None = None
    filters: list[str] | None = None
    questions: list[dict[str, Any]] | None = None


def _filters(period: str | None, store: str | None, channel: str | None, segment: str | None) -> dict:
    return {"period": period, "store": store, "channel": channel, "segment": segment}


async def _read(owner, fn):
    return await asyncio.to_thread(owner.read, fn)


def _dashboard(data: dict) -> dict:
    try:
        d = DashboardConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError([f"dashboard.{'.'.join(str(p) for p in e['loc'])}: "
                           f"{e['msg'].removeprefix('Value error, ')}" if e["loc"] else
                           f"dashboard: {e['msg'].removeprefix('Value error, ')}" for e in exc.errors()],
                          origin="the dashboard") from None
    return d.model_dump(mode="json", exclude_defaults=True, by_alias=True)


@router.get("/dashboards")
async def list_dashboards(owner: Owner, _caller: Viewer) -> dict:
    """The dashboards: the seven defaults and the workspace's own."""
    data = await _read(owner, lambda ws: ws.dashboards())
    return {"data": data, "count": len(data)}


@router.get("/dashboards/filters")
async def filter_values(owner: Owner, _caller: Viewer) -> dict:
    """The choices of the dashboards' filters: stores, channels, segments, the orders' period."""
    return await _read(owner, lambda ws: ws.dashboard_filter_values())


@router.get("/dashboards/{name}")
async def show_dashboard(owner: Owner, _caller: Viewer, name: str, period: str | None = None,
                         store: str | None = None, channel: str | None = None, segment: str | None = None) -> dict:
    """A dashboard with every chart's data and Vega-Lite spec, under the filters given."""
    return await _read(owner, lambda ws: ws.dashboard(name, _filters(period, store, channel, segment)))


@router.get("/dashboards/{name}/definition")
async def dashboard_definition(owner: Owner, _caller: Viewer, name: str) -> dict:
    """A dashboard's definition as in the YAML (``kind``: default or custom)."""
    return await _read(owner, lambda ws: ws.analytics().definition(name))


@router.get("/dashboards/{name}/{question}.csv")
async def question_csv(owner: Owner, _caller: Viewer, name: str, question: str, period: str | None = None,
                       store: str | None = None, channel: str | None = None,
                       segment: str | None = None) -> StreamingResponse:
    """Every row of a chart's data as CSV, streamed."""
    stream = await _read(owner, lambda ws: ws.question_csv((name, question), _filters(period, store, channel, segment)))
    return StreamingResponse(stream, media_type="text/csv; charset=utf-8",
                             headers={"Content-Disposition": f'attachment; filename="{name}-{question}.csv"'})


async def _picture(owner, name: str, question: str, fmt: str, filters: dict) -> Response:
    data = await _read(owner, lambda ws: ws.question_picture((name, question), fmt, filters))
    return Response(data, media_type="image/png" if fmt == "png" else "image/svg+xml",
                    headers={"Content-Disposition": f'inline; filename="{name}-{question}.{fmt}"'})


@router.get("/dashboards/{name}/{question}.png")
async def question_png(owner: Owner, _caller: Viewer, name: str, question: str, period: str | None = None,
                       store: str | None = None, channel: str | None = None, segment: str | None = None) -> Response:
    """A chart as a PNG picture, drawn on the server."""
    return await _picture(owner, name, question, "png", _filters(period, store, channel, segment))


@router.get("/dashboards/{name}/{question}.svg")
async def question_svg(owner: Owner, _caller: Viewer, name: str, question: str, period: str | None = None,
                       store: str | None = None, channel: str | None = None, segment: str | None = None) -> Response:
    """A chart as an SVG picture, drawn on the server."""
    return await _picture(owner, name, question, "svg", _filters(period, store, channel, segment))


@router.post("/questions/run")
async def run_question(owner: Owner, _caller: Viewer, body: QuestionRun) -> dict:
    """Run a question, saved or not: its data, Vega-Lite spec and the filters it applied."""
    question = {"name": "draft", **body.question}
    return await _read(owner, lambda ws: ws.run_question(question, body.filters))


@router.post("/dashboards", status_code=201)
async def create_dashboard(owner: Owner, caller: Editor, dashboard: dict[str, Any]) -> dict:
    """Create a custom dashboard, shared with every user of the workspace."""
    definition = _dashboard(dashboard)
    names = {d["name"] for d in await _read(owner, lambda ws: ws.dashboards())}
    if definition["name"] in names:
        raise ConflictError(f"dashboard '{definition['name']}' exists already; change it with "
                            f"PUT /api/dashboards/{definition['name']} or choose another name")
    await asyncio.to_thread(owner.run_job, "dashboard_save", {"definition": definition}, requested_by=caller.identity)
    return await _read(owner, lambda ws: ws.analytics().definition(definition["name"]))


def _check_version(name: str, current: dict, version: str | None) -> None:
    if version is not None and current["version"] != version:
        raise VersionConflict(f"dashboard '{name}' changed since version {version} (now {current['version']}): "
                              "read it again (GET /api/dashboards/{name}/definition), redo the change and send it "
                              "with the new version".replace("{name}", name))


@router.put("/dashboards/{name}")
async def change_dashboard(owner: Owner, caller: Editor, name: str, change: DashboardUpdate,
                           version: Version) -> dict:
    """Change a custom dashboard made from ``version`` (409 when it changed since)."""
    current = await _read(owner, lambda ws: ws.analytics().definition(name))
    if current.pop("kind") == "default":
        raise ConflictError(f"'{name}' is a default dashboard; save your version under another name")
    _check_version(name, current, version)
    current.pop("version")
    definition = _dashboard({**current, **change.model_dump(exclude_none=True), "name": name})
    # checked again by the job: another change may be queued before this one
    await asyncio.to_thread(owner.run_job, "dashboard_save", {"definition": definition, "expected_version": version},
                            requested_by=caller.identity)
    return await _read(owner, lambda ws: ws.analytics().definition(name))


@router.delete("/dashboards/{name}")
async def delete_dashboard(owner: Owner, caller: Editor, name: str, version: OptionalVersion = None) -> dict:
    """Delete a custom dashboard (made from ``version`` when given: 409 when it changed since)."""
    current = await _read(owner, lambda ws: ws.analytics().definition(name))  # 404 for an unknown dashboard
    if current["kind"] == "default":
        raise ConflictError(f"'{name}' is a default dashboard; it cannot be deleted")
    _check_version(name, current, version)
    return await asyncio.to_thread(owner.run_job, "dashboard_delete", {"name": name, "expected_version": version},
                                   requested_by=caller.identity)
