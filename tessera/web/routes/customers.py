"""Customer search (as you type) and the customer 360 page."""

from __future__ import annotations

import asyncio
import math
import tempfile
from datetime import date
from pathlib import Path

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import Response

from tessera import profiles
from tessera.browse import search_customers
from tessera.errors import UsageError
from tessera.syncs.sent import sends_of
from tessera.web.auth import Admin, Viewer
from tessera.web.reading import owner_of, read
from tessera.web import i18n
from tessera.web.render import language, render

router = APIRouter(include_in_schema=False)


@router.get("/customers")
async def customers(request: Request, user: Viewer, q: str = Query("", max_length=200)):
    found = await read(request, lambda ws: search_customers(ws, q)) if q.strip() else None
    return render(request, "customers.html", nav="customers", q=q, found=found)


@router.get("/customers/search")
async def search(request: Request, user: Viewer, q: str = Query("", max_length=200)):
    found = await read(request, lambda ws: search_customers(ws, q))
    return render(request, "customer_results.html", q=q, found=found)


def _day(value: str | None, name: str) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise UsageError(f"{name}={value!r} is not a date: use YYYY-MM-DD") from None


@router.get("/customers/{tessera_id}")
async def customer(request: Request, user: Viewer, tessera_id: str, since: str | None = Query(None, max_length=10),
                   until: str | None = Query(None, max_length=10)):
    start, end = _day(since, "since"), _day(until, "until")
    def build(ws):
        view = profiles.customer_view(ws, tessera_id, since=start, until=end, charts=False)
        sends = [s for s in sends_of(ws, view["dataset"], view["attributes"]) if profiles.in_range(s["at"], start, end)]
        view["timeline"] = sorted(view["timeline"] + [{"at": s["at"], "kind": "sync", "dataset": None, "item": s}
                                                      for s in sends], key=lambda x: str(x["at"] or ""), reverse=True)
        return view

    view = await read(request, build)
    return render(request, "customer.html", nav="customers", v=view, since=since or "", until=until or "",
                  graph=graph_layout(view["graph"]))


@router.get("/customers/{tessera_id}/charts")
async def customer_charts(request: Request, user: Viewer, tessera_id: str):
    """The 360 page's charts, asked by the page once it is shown (the page itself answers sooner)."""
    def charts(ws):
        return profiles.customer_charts(ws, profiles.customer_dataset(ws), tessera_id)

    return render(request, "customer_charts.html", charts=chart_specs(await read(request, charts)))


@router.post("/customers/{tessera_id}/export")
async def export_customer(request: Request, user: Admin, tessera_id: str):
    """Everything held on the customer, as a zip of CSV files (audited)."""
    def work(ws) -> bytes:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "customer.zip"
            ws.export_customer(tessera_id, path, "zip", actor=user.identity)
            return path.read_bytes()

    data = await read(request, work)
    return Response(data, media_type="application/zip",
                    headers={"Content-Disposition": f'attachment; filename="customer-{tessera_id}.zip"'})


@router.post("/customers/{tessera_id}/erase")
async def erase_customer(request: Request, user: Admin, tessera_id: str, confirm: str = Form("", max_length=200)):
    """Erase the customer everywhere (a job of the writer queue), once their id is typed again."""
    if confirm.strip() != tessera_id:
        translate = i18n.Translator(language(request))
        raise UsageError(translate("privacy.mismatch", id=tessera_id))
    receipt = await asyncio.to_thread(owner_of(request).erase, tessera_id, requested_by=user.identity)
    return render(request, "customer_erased.html", nav="customers", r=receipt)


def graph_layout(graph: dict, width: int = 640) -> dict:
    """Positions of the identity graph's records on a circle (a few records: no layout engine needed)."""
    nodes = graph["nodes"]
    n = len(nodes)
    radius = 0 if n == 1 else min(150, 60 + 25 * n)
    height = 2 * radius + 90
    cx, cy = width / 2, height / 2
    pos = {}
    for i, node in enumerate(nodes):
        angle = -math.pi / 2 + 2 * math.pi * i / max(n, 1)
        pos[node["id"]] = (round(cx + radius * math.cos(angle), 1), round(cy + radius * math.sin(angle), 1))
    placed = [{**node, "x": pos[node["id"]][0], "y": pos[node["id"]][1],
               "anchor": "middle" if abs(pos[node["id"]][0] - cx) < 40 else ("start" if pos[node["id"]][0] > cx else "end"),
               "dx": 0 if abs(pos[node["id"]][0] - cx) < 40 else (14 if pos[node["id"]][0] > cx else -14),
               "dy": (-16 if pos[node["id"]][1] < cy else 24) if abs(pos[node["id"]][0] - cx) < 40 else 4}
              for node in nodes]
    edges = []
    for e in graph["edges"]:
        if e["from"] in pos and e["to"] in pos:
            (x1, y1), (x2, y2) = pos[e["from"]], pos[e["to"]]
            edges.append({**e, "x1": x1, "y1": y1, "x2": x2, "y2": y2, "mx": round((x1 + x2) / 2, 1),
                          "my": round((y1 + y2) / 2 - 6, 1)})
    return {"width": width, "height": height, "nodes": placed, "edges": edges}


def chart_specs(charts: dict) -> dict:
    """Vega-Lite specifications of the 360 page's charts (data inline)."""
    base = {"$schema": "https://vega.github.io/schema/vega-lite/v6.json", "width": "container", "height": 160,
            "config": {"font": "system-ui, sans-serif", "view": {"stroke": None}}}
    out = {}
    if charts["spend"]:
        out["spend"] = {**base, "data": {"values": charts["spend"]}, "mark": {"type": "bar", "color": "#2f5d8a"},
                        "encoding": {"x": {"field": "month", "type": "temporal", "timeUnit": "yearmonth", "title": None},
                                     "y": {"field": "amount", "type": "quantitative", "title": None},
                                     "tooltip": [{"field": "month", "type": "temporal", "timeUnit": "yearmonth"},
                                                 {"field": "amount", "type": "quantitative", "format": ",.2f"},
                                                 {"field": "orders", "type": "quantitative"}]}}
    for key, field, count in (("channels", "channel", "orders"), ("categories", "category", "lines")):
        if charts[key]:
            values = [{**r, field: r[field] if r[field] is not None else "—"} for r in charts[key]]
            out[key] = {**base, "height": {"step": 22}, "data": {"values": values},
                        "mark": {"type": "bar", "color": "#5b8cc0"},
                        "encoding": {"y": {"field": field, "type": "nominal", "sort": "-x", "title": None},
                                     "x": {"field": count, "type": "quantitative", "title": None,
                                           "axis": {"format": "d", "tickMinStep": 1}},
                                     "tooltip": [{"field": field}, {"field": count}]}}
    return out
