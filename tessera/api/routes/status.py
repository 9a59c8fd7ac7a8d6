"""Status of the workspace: published datasets and the last runs."""

from __future__ import annotations

import orjson
from fastapi import APIRouter, Request, Response

from tessera.api.auth import Viewer

router = APIRouter(prefix="/api", tags=["status"])


@router.get("/status", response_model=dict)
async def status(request: Request, _caller: Viewer) -> Response:
    """Published datasets (rows, version, time), the last runs and the writer queue."""
    owner = request.app.state.owner
    out = await owner.read_soon(lambda ws: ws.status())
    out["jobs"] = {"running": owner.jobs.busy}
    return Response(orjson.dumps(out, default=str, option=orjson.OPT_NON_STR_KEYS), media_type="application/json")
