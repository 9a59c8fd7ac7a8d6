"""Status of the workspace: published datasets and the last runs."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter

from tessera.api.auth import Owner, Viewer

router = APIRouter(prefix="/api", tags=["status"])


@router.get("/status")
async def status(owner: Owner, _caller: Viewer) -> dict:
    """Published datasets (rows, version, time), the last runs and the writer queue."""
    out = await asyncio.to_thread(owner.read, lambda ws: ws.status())
    out["jobs"] = {"running": owner.jobs.busy}
    return out
