"""Dashboards: the list, a dashboard with its charts under the period, store, channel and segment
filters, downloads (CSV, PNG, SVG from the API), and "My dashboards": the question builder
(dataset, dimensions, measures, filters, chart) with a live preview, save, edit and remove."""

from __future__ import annotations

import re

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from tessera.errors import ConfigError, NotFoundError, TesseraError, VersionConflict
from tessera.analytics.charts import relabel
from tessera.web.i18n import Translator, catalog
from tessera.web.auth import Editor, Viewer
from tessera.web.reading import read, run_job
from tessera.web.render import language, render

router = APIRouter(include_in_schema=False)

PERIODS = ("", "last_30_days", "last_90_days", "last_12_months", "custom")
BANDS = ("", "day", "week", "month", "quarter", "year", "weekday", "age")
FNS = ("count", "customers", "sum", "avg", "median", "min", "max")
CHARTS = ("bar", "stacked_bar", "line", "pie", "heatmap", "table", "number")
OPS = ("=", "!=", ">", ">=", "<", "<=", "in", "contains", "is_empty", "is_not_empty", "is_true", "is_false",
       "in_last")
MEASURES = 3
CONDITIONS = 3


def _filter_args(request: Request) -> dict:
    """The dashboard filters of the page's query string (a custom period from two dates)."""
    q = request.query_params
    period = q.get("period") or ""
    if period == "custom":
        period = f"{q.get('from') or ''}..{q.get('to') or ''}" if (q.get("from") or q.get("to")) else ""
    return {"period": period or None, "store": q.get("store") or None, "channel": q.get("channel") or None,
            "segment": q.get("segment") or None}


def _query(filters: dict) -> str:
    from urllib.parse import urlencode

    return urlencode({k: v for k, v in filters.items() if v})


@router.get("/dashboards")
async def dashboards(request: Request, user: Viewer):
    data = await read(request, lambda ws: ws.dashboards())
    return render(request, "dashboards.html", nav="dashboards", dashboards=data)


@router.get("/dashboards/new")
async def new_dashboard(request: Request, user: Editor):
    draft = _empty_draft()
    return render(request, "dashboard_question.html", nav="dashboards", **(await read(request, lambda ws: _form(ws, draft))))


@router.get("/dashboards/{name}")
async def dashboard(request: Request, user: Viewer, name: str):
    filters = _filter_args(request)

    lang = language(request)

    def build(ws):
        shown = ws.dashboard(name, filters, later=True)  # the costly analyses come in their own requests
        if shown["kind"] == "default":
            shown["questions"] = [_in_language(q, lang) for q in shown["questions"]]
        for q in shown["questions"]:  # the card's heading is the title (in the page's language)
            if q.get("spec"):
                q["spec"] = {k: v for k, v in q["spec"].items() if k != "title"}
        return {"dashboard": shown, "choices": ws.dashboard_filter_values()}

    data = await read(request, build)
    q = request.query_params
    chosen = {"period": q.get("period") or "", "from": q.get("from") or "", "to": q.get("to") or "",
              "store": q.get("store") or "", "channel": q.get("channel") or "", "segment": q.get("segment") or ""}
    return render(request, "dashboard.html", nav="dashboards", periods=PERIODS, chosen=chosen,
                  query=_query(filters), **data)


def _in_language(result: dict, lang: str) -> dict:
    """A default dashboard's chart with its title, axis and legend titles and band names in ``lang``."""
    if lang == "en":
        return result
    t = Translator(lang)

    def words(key: str, values: dict) -> str | None:
        return t(key, **values) if t.has(key) and key in catalog(lang) else None

    title = t(f"dash.q.{result['name']}") if t.has(f"dash.q.{result['name']}") else None
    return relabel(result, words, title)


@router.get("/dashboards/{name}/{question}/chart")
async def chart(request: Request, user: Viewer, name: str, question: str):
    """One chart of a dashboard (its card's body), asked by the page for a ready-made analysis."""
    filters = _filter_args(request)
    lang = language(request)

    def build(ws):
        kind = ws.analytics().find(name)[2]
        q = ws.run_question((name, question), filters)
        if kind == "default":
            q = _in_language(q, lang)
        if q.get("spec"):
            q["spec"] = {k: v for k, v in q["spec"].items() if k != "title"}
        return {"q": q, "d": {"name": name, "kind": kind}}

    try:
        data = await read(request, build)
    except ConfigError as exc:  # the chart cannot run on this workspace: its card says why
        data = {"q": {"name": question, "unavailable": "; ".join(getattr(exc, "problems", None) or [str(exc)])},
                "d": {"name": name}}
    return render(request, "dashboard_card.html", query=_query(filters), **data)


@router.get("/dashboards/{name}/{question}.{fmt}")
async def picture(request: Request, user: Viewer, name: str, question: str, fmt: str):
    """A chart as PNG or SVG drawn on the server, in the page's language (the API's is English)."""
    if fmt not in ("png", "svg"):
        return render(request, "error.html", status_code=404, status=404, message=f"no .{fmt} download: png or svg")
    filters = _filter_args(request)
    lang = language(request)

    def draw(ws):
        result = ws.run_question((name, question), filters)
        if ws.analytics().find(name)[2] == "default":
            result = _in_language(result, lang)
        return ws.analytics().draw(result["spec"], fmt)

    data = await read(request, draw)
    return Response(data, media_type="image/png" if fmt == "png" else "image/svg+xml",
                    headers={"Content-Disposition": f'inline; filename="{name}-{question}.{fmt}"'})


@router.get("/dashboards/{name}/add")
async def add_question(request: Request, user: Editor, name: str):
    def build(ws):
        definition = ws.analytics().definition(name)
        draft = {**_empty_draft(), "dashboard": name, "dashboard_title": definition.get("title") or name,
                 "existing": True, "version": definition["version"]}
        return _form(ws, draft)

    return render(request, "dashboard_question.html", nav="dashboards", **(await read(request, build)))


@router.get("/dashboards/{name}/{question}/edit")
async def edit_question(request: Request, user: Editor, name: str, question: str):
    def build(ws):
        definition = ws.analytics().definition(name)
        q = next((x for x in definition["questions"] if x["name"] == question), None)
        if q is None:
            ws.analytics().question(name, question)  # the 404 with the questions it has
        draft = {**_from_question(q), "dashboard": name, "dashboard_title": definition.get("title") or name,
                 "existing": True, "original": question, "version": definition["version"]}
        return _form(ws, draft)

    return render(request, "dashboard_question.html", nav="dashboards", **(await read(request, build)))


@router.post("/dashboards/form")
async def question_form(request: Request, user: Viewer):
    """The builder re-drawn after a change of dataset (its columns) or chart, with its preview."""
    draft = _parse(await _fields(request))
    return render(request, "dashboard_question_form.html", **(await read(request, lambda ws: _form(ws, draft))))


@router.post("/dashboards/preview")
async def preview(request: Request, user: Viewer):
    draft = _parse(await _fields(request))
    return render(request, "dashboard_preview.html", **(await read(request, lambda ws: _preview(ws, draft))))


@router.post("/dashboards/save")
async def save_question(request: Request, user: Editor):
    draft = _parse(await _fields(request))
    problems: list[str] = []
    name = draft["dashboard"]
    if not re.match(r"^[a-z][a-z0-9_]{0,62}$", name or ""):
        problems.append("name")

    def build(ws):
        out = _form(ws, draft)
        out["known"] = {d["name"]: d for d in ws.dashboards()}
        out["current"] = ws.analytics().definition(name) if name in out["known"] else None
        return out

    data = await read(request, build)
    known, current = data.pop("known"), data.pop("current")
    if not problems and name in known and (known[name]["kind"] == "default" or not draft["existing"]):
        problems.append("taken")
    if not problems and data["result"] is None:
        problems.append("question")
    if not problems:
        question = _question(draft)
        questions = list(current["questions"]) if current else []
        others = [q for q in questions if q["name"] != (draft["original"] or question["name"])]
        if any(q["name"] == question["name"] for q in others):
            question["name"] = _unique(question["name"], {q["name"] for q in others})
        at = next((i for i, q in enumerate(questions) if q["name"] == draft["original"]), None)
        if at is None:
            others.append(question)
        else:
            others.insert(at, question)
        definition = {**({k: v for k, v in current.items() if k not in ("kind", "version")} if current else {}),
                      "name": name, "title": draft["dashboard_title"] or (current or {}).get("title") or name,
                      "questions": others}
        params = {"definition": definition}
        if draft["existing"]:
            params["expected_version"] = draft["version"] or None
        try:
            await run_job(request, "dashboard_save", params, user.identity)
        except (VersionConflict, NotFoundError):
            # someone changed (or deleted) the dashboard since this form was opened: nothing is saved;
            # the form keeps the chart and now carries the current version, so saving again is a choice
            problems.append("conflict" if current else "gone")
            data["draft"]["version"] = current["version"] if current else ""
        except ConfigError as exc:
            data["errors"] = list(getattr(exc, "problems", None) or [str(exc)])
            problems.append("invalid")
    if problems:
        status = 409 if {"conflict", "gone"} & set(problems) else 400
        return render(request, "dashboard_question.html", status_code=status, nav="dashboards",
                      save_problems=problems, **data)
    target = f"/dashboards/{name}"
    if request.headers.get("hx-request") == "true":
        return Response(status_code=204, headers={"HX-Redirect": target})
    return RedirectResponse(target, status_code=303)


@router.post("/dashboards/{name}/{question}/remove")
async def remove_question(request: Request, user: Editor, name: str, question: str):
    current = await read(request, lambda ws: ws.analytics().definition(name))
    version = (await _fields(request)).get("version") or None
    if version is not None and version != current["version"]:
        return _conflict(request, name)
    questions = [q for q in current["questions"] if q["name"] != question]
    if current["kind"] != "custom" or len(questions) == len(current["questions"]):
        return render(request, "error.html", status_code=404, status=404, message=f"no chart '{question}' to remove")
    try:
        if not questions:  # the last chart: the dashboard goes with it
            await run_job(request, "dashboard_delete", {"name": name, "expected_version": current["version"]},
                          user.identity)
            return RedirectResponse("/dashboards", status_code=303)
        definition = {**{k: v for k, v in current.items() if k not in ("kind", "version")}, "questions": questions}
        await run_job(request, "dashboard_save", {"definition": definition, "expected_version": current["version"]},
                      user.identity)
    except VersionConflict:
        return _conflict(request, name)
    return RedirectResponse(f"/dashboards/{name}", status_code=303)


def _conflict(request: Request, name: str):
    """The page of a change refused because the dashboard changed since the page was drawn."""
    t = Translator(language(request))
    return render(request, "error.html", status_code=409, status=409,
                  message=t("dash.conflict", name=name), link=f"/dashboards/{name}", link_text=t("dash.reopen"))


@router.post("/dashboards/{name}/delete")
async def delete_dashboard(request: Request, user: Editor, name: str):
    current = await read(request, lambda ws: ws.analytics().definition(name))  # 404 for an unknown dashboard
    if current["kind"] != "custom":
        return render(request, "error.html", status_code=409, status=409, message="a default dashboard stays")
    version = (await _fields(request)).get("version") or current["version"]
    try:
        await run_job(request, "dashboard_delete", {"name": name, "expected_version": version}, user.identity)
    except VersionConflict:
        return _conflict(request, name)
    return RedirectResponse("/dashboards", status_code=303)


# --------------------------------------------------------------------------- the builder's form


async def _fields(request: Request) -> dict[str, str]:
    form = await request.form()
    return {k: str(v) for k, v in form.items()}


def _empty_draft() -> dict:
    return {"dashboard": "", "dashboard_title": "", "existing": False, "original": "", "version": "", "title": "",
            "dataset": "",
            "chart": "bar", "dims": [{"column": "", "band": "", "bins": ""} for _ in range(2)],
            "measures": [{"fn": "count", "column": ""}] + [{"fn": "", "column": ""} for _ in range(MEASURES - 1)],
            "conditions": [{"column": "", "op": "", "value": ""} for _ in range(CONDITIONS)], "limit": ""}


def _parse(form: dict[str, str]) -> dict:
    draft = _empty_draft()
    for key in ("dashboard", "dashboard_title", "original", "version", "title", "dataset", "chart", "limit"):
        draft[key] = form.get(key, "").strip()
    draft["existing"] = form.get("existing") == "1"
    for i in range(2):
        draft["dims"][i] = {k: form.get(f"d{i}.{k}", "").strip() for k in ("column", "band", "bins")}
    for i in range(MEASURES):
        draft["measures"][i] = {k: form.get(f"m{i}.{k}", "").strip() for k in ("fn", "column")}
    for i in range(CONDITIONS):
        draft["conditions"][i] = {k: form.get(f"f{i}.{k}", "").strip() for k in ("column", "op", "value")}
    return draft


def _from_question(q: dict) -> dict:
    draft = _empty_draft()
    draft.update({"title": q.get("title") or q["name"], "dataset": q["dataset"], "chart": q.get("chart", "bar"),
                  "limit": str(q.get("limit") or "")})
    for i, d in enumerate(q.get("dimensions", [])[:2]):
        draft["dims"][i] = {"column": d.get("column") or "", "band": d.get("band") or "",
                            "bins": ", ".join(f"{b:g}" for b in d.get("bins") or [])}
    measures = q.get("measures") or [{"fn": "count"}]
    for i, m in enumerate(measures[:MEASURES]):
        draft["measures"][i] = {"fn": m.get("fn", "count"), "column": m.get("column") or ""}
    for i, c in enumerate([c for c in q.get("filters", []) if "column" in c][:CONDITIONS]):
        value = c.get("value")
        draft["conditions"][i] = {"column": c["column"], "op": c.get("op", ""),
                                  "value": ", ".join(map(str, value)) if isinstance(value, list)
                                  else ("" if value is None else str(value))}
    return draft


def _slug(text: str) -> str:
    s = re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")
    s = s if s and s[0].isalpha() else f"q_{s}"
    return s[:60] or "chart"


def _unique(name: str, taken: set[str]) -> str:
    n, out = 2, name
    while out in taken:
        out = f"{name}_{n}"
        n += 1
    return out


def _number(text: str):
    try:
        value = float(text)
    except ValueError:
        return text
    return int(value) if value.is_integer() else value


def _question(draft: dict) -> dict:
    """The question of the form, as in the YAML (only what is filled in)."""
    dims = []
    for d in draft["dims"]:
        if not d["column"]:
            continue
        dim: dict = {"column": d["column"]}
        if d["band"]:
            dim["band"] = d["band"]
        elif d["bins"]:
            dim["bins"] = [_number(x.strip()) for x in d["bins"].split(",") if x.strip()]
        dims.append(dim)
    measures = []
    for m in draft["measures"]:
        if not m["fn"]:
            continue
        measures.append({"fn": m["fn"], **({"column": m["column"]} if m["column"] and m["fn"] not in
                                           ("count", "customers") else {})})
    filters = []
    for c in draft["conditions"]:
        if not (c["column"] and c["op"]):
            continue
        cond: dict = {"column": c["column"], "op": c["op"]}
        if c["op"] == "in":
            cond["value"] = [_number(x.strip()) for x in c["value"].split(",") if x.strip()]
        elif c["op"] == "in_last":
            cond["value"] = int(_number(c["value"])) if str(_number(c["value"])).isdigit() else c["value"]
        elif c["op"] not in ("is_empty", "is_not_empty", "is_true", "is_false"):
            cond["value"] = _number(c["value"])
        filters.append(cond)
    title = draft["title"] or "chart"
    out = {"name": _slug(title), "title": title, "dataset": draft["dataset"], "dimensions": dims,
           "measures": measures or [{"fn": "count"}], "filters": filters, "chart": draft["chart"] or "bar"}
    if draft["limit"].isdigit() and int(draft["limit"]) > 0:
        out["limit"] = int(draft["limit"])
    return out


def _preview(ws, draft: dict) -> dict:
    grouped = any(d["column"] for d in draft["dims"])
    if not draft["dataset"] or (not grouped and draft["chart"] not in ("number", "table")):
        return {"result": None, "errors": []}  # nothing chosen yet: the preview says what to choose
    try:
        return {"result": ws.run_question(_question(draft)), "errors": []}
    except ConfigError as exc:
        return {"result": None, "errors": list(getattr(exc, "problems", None) or [str(exc)])}
    except TesseraError as exc:
        return {"result": None, "errors": [str(exc)]}


def _form(ws, draft: dict) -> dict:
    datasets = [d for d in ws.datasets() if ws.adapter.published_target(d) is not None]
    if not draft["dataset"] and datasets:
        draft["dataset"] = datasets[0]
    columns = ws.analytics().columns(draft["dataset"]) if draft["dataset"] in datasets else []
    return {"draft": draft, "datasets": datasets, "columns": columns, "bands": BANDS, "fns": FNS, "charts": CHARTS,
            "ops": OPS, **_preview(ws, draft)}
