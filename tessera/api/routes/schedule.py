"""Cron schedules of imports, runs and syncs."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter

from tessera.api.auth import Owner, Viewer

router = APIRouter(prefix="/api", tags=["schedule"])


@router.get("/schedule")
async def schedule(owner: Owner, _caller: Viewer) -> list[dict]:
    """The scheduled jobs with their next run and last status."""
    return await asyncio.to_thread(owner.read, lambda ws: ws.scheduler().next_runs())
