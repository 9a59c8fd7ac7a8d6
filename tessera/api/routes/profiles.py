"""The 360° profile of a unified customer."""

from __future__ import annotations

import orjson
from fastapi import APIRouter, Request, Response

from tessera.api.auth import Viewer

router = APIRouter(prefix="/api", tags=["profiles"])


@router.get("/profiles/{tessera_id}", response_model=dict)
async def profile(request: Request, _caller: Viewer, tessera_id: str, dataset: str | None = None,
                  events: int = 50) -> Response:
    """A unified record's attributes, source records and latest events (including those collected since the last run)."""
    limit = min(max(events, 1), 500)
    out = await request.app.state.owner.read_soon(lambda ws: ws.profile(tessera_id, dataset, events=limit))
    return Response(orjson.dumps(out, default=str, option=orjson.OPT_NON_STR_KEYS), media_type="application/json")
