"""The 360° profile of a unified customer."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter

from tessera.api.auth import Owner, Viewer

router = APIRouter(prefix="/api", tags=["profiles"])


@router.get("/profiles/{tessera_id}")
async def profile(owner: Owner, _caller: Viewer, tessera_id: str, dataset: str | None = None,
                  events: int = 50) -> dict:
    """A unified record's attributes, source records and latest events (including those collected since the last run)."""
    limit = min(max(events, 1), 500)
    return await asyncio.to_thread(owner.read, lambda ws: ws.profile(tessera_id, dataset, events=limit))
