"""The home page: what the workspace holds, the last runs, what needs attention."""

from __future__ import annotations

from fastapi import APIRouter, Request

from tessera import overview
from tessera.web.auth import Viewer
from tessera.web.reading import owner_of, read
from tessera.web.render import render

router = APIRouter(include_in_schema=False)


def _home(ws) -> dict:
    return {"holdings": overview.holdings(ws), "runs": overview.recent_runs(ws, 8), "attention": overview.attention(ws),
            "segments": ws.segments()}


@router.get("/")
async def home(request: Request, user: Viewer):
    data = await read(request, _home)
    jobs = [j for j in owner_of(request).jobs.list(10) if j["state"] in ("queued", "running")]
    return render(request, "home.html", nav="home", jobs=jobs, **data)
