"""Segments: the list, the builder (condition tree as a form, live count, narrowing per condition,
preview of members), a saved segment's size over time and members; save and delete."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from tessera import profiles
from tessera.engine.types import type_name
from tessera.errors import ConfigError, TesseraError
from tessera.web import segment_form as sf
from tessera.web.auth import Editor, Viewer
from tessera.web.reading import read, run_job, submit
from tessera.web.render import render

router = APIRouter(include_in_schema=False)
PREVIEW = 10


def _options(ws, dataset: str) -> dict:
    """What the builder's selects offer on ``dataset``: its columns with their types, the other
    segments, the datasets a behaviour condition may read."""
    columns: list[tuple[str, str]] = []
    if ws.adapter.published_target(dataset) is not None:
        columns = [(c, type_name(t)) for c, t in ws.table(dataset).schema().items()
                   if not c.startswith("_") and c != "tessera_id"]
    return {"columns": columns, "types": dict(columns), "datasets": [d.name for d in ws.config.datasets],
            "related": [d.name for d in ws.config.datasets if d.name != dataset],
            "segments": [s.name for s in ws.config.segments if s.dataset == dataset]}


def _preview_columns(ws, dataset: str, available: dict) -> list[str]:
    fields = profiles._fields(ws, dataset)
    cols = ["tessera_id"] + [fields[f] for f in ("FirstName", "LastName", "Email", "City") if f in fields]
    return [c for c in cols if c == "tessera_id" or c in available]


def _count(ws, draft: dict, options: dict, preview: bool = True) -> dict:
    """The live count of a draft: total records, count, the count after each top-level condition
    (by position in the form), the conditions left out and why, and a preview of members (unless
    ``preview`` is false)."""
    keep, conds, problems = sf.countable(draft)
    out = {"records": None, "count": None, "steps": {}, "problems": problems, "errors": [], "preview": [],
           "preview_columns": [], "match": draft["match"]}
    if not conds:
        return out
    spec = {"dataset": draft["dataset"], "match": draft["match"], "conditions": conds}
    try:
        out["preview_columns"] = _preview_columns(ws, draft["dataset"], options["types"])
        # the count and the preview of one compiled draft
        counted = ws.segment_count(spec, preview=PREVIEW if preview else 0, columns=out["preview_columns"])
        out["preview"] = counted.get("preview", [])
    except ConfigError as exc:
        out["errors"] = list(getattr(exc, "problems", None) or [str(exc)])
        return out
    except TesseraError as exc:
        out["errors"] = [str(exc)]
        return out
    out["records"], out["count"] = counted["records"], counted["count"]
    out["steps"] = {pos: step["count"] for pos, step in zip(keep, counted["steps"])}
    return out


def _builder(ws, draft: dict, preview: bool = True) -> dict:
    options = _options(ws, draft["dataset"])
    draft["types"] = options["types"]
    return {"draft": draft, "options": options, "counted": _count(ws, draft, options, preview)}


async def _form(request: Request) -> dict[str, str]:
    form = await request.form()
    return {k: str(v) for k, v in form.items()}


@router.get("/segments")
async def segments(request: Request, user: Viewer):
    data = await read(request, lambda ws: ws.segments())
    return render(request, "segments.html", nav="segments", segments=data)


@router.get("/segments/new")
async def new_segment(request: Request, user: Viewer):
    def build(ws):
        dataset = profiles.customer_dataset(ws)
        return _builder(ws, {"name": "", "description": "", "dataset": dataset, "match": "all", "original": "",
                             "conditions": [sf.empty_leaf()]})

    return render(request, "segment.html", nav="segments", saved=None, **(await read(request, build)))


@router.get("/segments/{name}")
async def segment(request: Request, user: Viewer, name: str):
    def build(ws):
        seg = ws.segment(name)
        # As saved, the draft's preview is its members (of its last computation): a preview of a
        # million records costs as much as their count, and the members are read here anyway.
        out = _builder(ws, sf.from_definition(seg["definition"]), preview=False)
        history = ws.segment_history(name, limit=50)
        names = profiles.display_names(ws, out["draft"]["dataset"], [c["tessera_id"] for c in history["changes"][:15]])
        members = ws.segment_members(name, limit=20, columns=out["counted"]["preview_columns"][1:] or None)
        if out["counted"]["preview_columns"]:
            out["counted"]["preview"] = members[:PREVIEW]
        return {**out, "saved": seg, "history": history, "members": members, "names": names}

    data = await read(request, build)
    return render(request, "segment.html", nav="segments", size_chart=size_chart(data["history"]["sizes"]), **data)


@router.post("/segments/builder")
async def builder(request: Request, user: Viewer):
    """The builder re-drawn after a change of its structure (a condition added, removed, its kind)."""
    form = await _form(request)
    draft = sf.apply_action(sf.parse(form), form.get("action"))
    data = await read(request, lambda ws: _builder(ws, draft))
    return render(request, "segment_builder.html", **data)


@router.post("/segments/count")
async def count(request: Request, user: Viewer):
    """The count panel of the builder (with the count after each condition, swapped out of band)."""
    form = await _form(request)
    draft = sf.parse(form)
    data = await read(request, lambda ws: _builder(ws, draft))
    return render(request, "segment_count.html", oob=True, **data)


@router.post("/segments/save")
async def save(request: Request, user: Editor):
    form = await _form(request)
    draft = sf.parse(form)
    data = await read(request, lambda ws: {**_builder(ws, draft), "existing": [s["name"] for s in ws.segments()]})
    problems = []
    if not draft["name"]:
        problems.append("name")
    elif draft["name"] in data["existing"] and draft["name"] != draft["original"]:
        problems.append("taken")
    if not data["counted"]["count"] and data["counted"]["count"] != 0:
        problems.append("conditions")
    if not problems:
        try:
            await run_job(request, "segment_save", {"definition": sf.definition(draft)}, user.identity)
            # its members now, rather than at the next run
            await submit(request, "segments_refresh", {"segments": [draft["name"]]}, user.identity)
        except ConfigError as exc:
            data["counted"]["errors"] = list(getattr(exc, "problems", None) or [str(exc)])
            problems.append("invalid")
    if problems:
        return render(request, "segment.html", status_code=400, nav="segments", saved=None, save_problems=problems,
                      **{k: v for k, v in data.items() if k != "existing"})
    target = f"/segments/{draft['name']}"
    if request.headers.get("hx-request") == "true":
        return Response(status_code=204, headers={"HX-Redirect": target})
    return RedirectResponse(target, status_code=303)


@router.post("/segments/{name}/delete")
async def delete(request: Request, user: Editor, name: str):
    await read(request, lambda ws: ws.segment(name))  # 404 for an unknown segment
    await run_job(request, "segment_delete", {"name": name}, user.identity)
    return RedirectResponse("/segments", status_code=303)


def size_chart(sizes: list[dict]) -> dict | None:
    if len(sizes) < 2:
        return None  # one refresh: the page says its size and date in words
    return {"$schema": "https://vega.github.io/schema/vega-lite/v6.json", "width": "container", "height": 160,
            "config": {"font": "system-ui, sans-serif", "view": {"stroke": None}},
            "data": {"values": [{"at": s["refreshed_at"], "size": s["size"]} for s in sizes]},
            "mark": {"type": "line", "point": True, "color": "#2f5d8a"},
            "encoding": {"x": {"field": "at", "type": "temporal", "title": None},
                         "y": {"field": "size", "type": "quantitative", "title": None, "axis": {"format": "d"}},
                         "tooltip": [{"field": "at", "type": "temporal", "format": "%Y-%m-%d %H:%M"},
                                     {"field": "size", "type": "quantitative"}]}}
