"""The identity REST API (``/api/identity``): the review queue of probabilistic matching, review
decisions and manual overrides (merge, split), through the Workspace facade. Decisions are kept
in the metadata store and applied by the next run."""

from __future__ import annotations

import asyncio
from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from tessera.api.auth import Editor, Owner, Principal, Viewer
from tessera.api.params import RowId

router = APIRouter(prefix="/api", tags=["identity"])


class DecisionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    record_l: str
    record_r: str
    decision: Literal["accept", "reject"]
    dataset: str | None = None
    note: str | None = None


class OverrideCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["merge", "split"]
    records: list[str] = Field(min_length=1)
    dataset: str | None = None
    note: str | None = None


class OverridePublic(BaseModel):
    id: int
    dataset: str
    kind: str
    records: list[str]
    origin: str
    note: str | None
    created_by: str | None
    created_at: str


class OverridesPublic(BaseModel):
    data: list[OverridePublic]
    count: int


def _user(caller: Principal) -> str | None:
    return caller.identity


@router.get("/identity/review")
async def review_queue(owner: Owner, _caller: Viewer, dataset: str | None = None, limit: int = 50) -> dict:
    """The pairs of probabilistic matching waiting for a decision, with their evidence."""
    rows = await asyncio.to_thread(owner.read, lambda ws: ws.identity_review(dataset, limit=min(max(limit, 1), 1000)))
    return {"data": rows, "count": len(rows)}


@router.post("/identity/review", status_code=201)
async def decide(owner: Owner, caller: Editor, body: DecisionCreate) -> OverridePublic:
    """Accept (merge from the next run on) or reject (never link) a pair of the review queue."""
    row = await asyncio.to_thread(owner.read, lambda ws: ws.identity_decide(
        body.record_l, body.record_r, accept=body.decision == "accept", dataset=body.dataset,
        user=_user(caller), note=body.note))
    return OverridePublic(**row)


@router.get("/identity/overrides")
async def list_overrides(owner: Owner, _caller: Viewer, dataset: str | None = None) -> OverridesPublic:
    """Manual overrides and review decisions, oldest first."""
    rows = await asyncio.to_thread(owner.read, lambda ws: ws.identity_overrides(dataset))
    return OverridesPublic(data=[OverridePublic(**r) for r in rows], count=len(rows))


@router.post("/identity/overrides", status_code=201)
async def add_override(owner: Owner, caller: Editor, body: OverrideCreate) -> OverridePublic:
    """Always merge records, or split records off their unified record (kept across runs)."""
    row = await asyncio.to_thread(owner.read, lambda ws: ws.identity_override(
        body.kind, body.records, dataset=body.dataset, user=_user(caller), note=body.note))
    return OverridePublic(**row)


@router.delete("/identity/overrides/{override_id}", status_code=204)
async def remove_override(owner: Owner, caller: Editor, override_id: RowId) -> None:
    """Forget an override or a review decision."""
    await asyncio.to_thread(owner.read, lambda ws: ws.identity_remove_override(override_id, user=_user(caller)))
