"""Collected events, newest first, as loaded into the warehouse (a live view of what arrives)."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter

from tessera.api.auth import Owner, Viewer

router = APIRouter(prefix="/api", tags=["events"])


@router.get("/events")
async def events(owner: Owner, _caller: Viewer, limit: int = 100, offset: int = 0, message_id: str | None = None,
                 user_id: str | None = None, rejected: bool = False) -> list[dict]:
    """The latest collected events (or refused messages with ``rejected=true``), filtered by message or user id."""
    limit, offset = min(max(limit, 1), 10_000), max(offset, 0)
    return await asyncio.to_thread(
        owner.read, lambda ws: ws.collected_events(limit=limit, offset=offset, message_id=message_id, user_id=user_id,
                                                   rejected=rejected))
