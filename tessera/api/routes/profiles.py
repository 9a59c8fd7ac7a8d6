"""The 360° profile of a unified customer."""

from __future__ import annotations

import orjson
from fastapi import APIRouter, Request, Response

from tessera.api.auth import Viewer
from tessera.profiles import profile_waits

router = APIRouter(prefix="/api", tags=["profiles"])


@router.get("/profiles/{tessera_id}", response_model=dict)
async def profile(request: Request, _caller: Viewer, tessera_id: str, dataset: str | None = None,
                  events: int = 50) -> Response:
    """A unified record's attributes, source records and latest events (including those collected since the last run)."""
    limit = min(max(events, 1), 500)
    owner = request.app.state.owner

    def read(ws) -> bytes:
        # The same answer until a run publishes, a job returns or events load (WorkspaceOwner.answers);
        # not kept while the profile waits for the collected events or the segment members to exist
        # (it looks for them once a second: an answer of that second may not show them yet).
        return owner.answers.get(ws, ("profile", tessera_id, dataset, limit), lambda: orjson.dumps(
            ws.profile(tessera_id, dataset, events=limit), default=str, option=orjson.OPT_NON_STR_KEYS),
            keep=lambda: not profile_waits(ws, dataset, events=limit))

    return Response(await owner.read_soon(read), media_type="application/json")
