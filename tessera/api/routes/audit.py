"""The audit log (admins): who did what, when, to what."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request

from tessera.api.auth import Admin
from tessera.api.params import CursorId

router = APIRouter(prefix="/api", tags=["audit"])


@router.get("/audit")
async def audit(request: Request, _caller: Admin, limit: int = 100, action: str | None = None,
                actor: str | None = None, before: CursorId = None) -> dict:
    """Lines of the audit log, newest first; ``action`` filters by prefix (``job``, ``login``, ``token``...),
    ``before`` pages (the smallest id seen)."""
    store = request.app.state.owner.workspace.store
    rows = await asyncio.to_thread(store.list_audit, min(max(limit, 1), 1000), action=action, actor=actor,
                                   before=before)
    return {"data": rows, "count": len(rows)}
