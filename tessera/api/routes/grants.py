"""What a user may do beyond its role (``/api/users/{email}/grants``): ``export`` lets a viewer
export datasets. Admins read and set them; every change is audited."""

from __future__ import annotations

import asyncio
from typing import Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict

from tessera.api.auth import Admin

router = APIRouter(prefix="/api", tags=["users"])


class GrantsUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    grants: list[Literal["export"]]


class GrantsPublic(BaseModel):
    email: str
    grants: list[str]


@router.get("/users/{email}/grants")
async def get_grants(request: Request, _caller: Admin, email: str) -> GrantsPublic:
    """A user's grants."""
    users = request.app.state.users

    def work():
        user = users.get(email)
        return GrantsPublic(email=user["email"], grants=users.grants(user["email"]))

    return await asyncio.to_thread(work)


@router.put("/users/{email}/grants")
async def set_grants(request: Request, caller: Admin, email: str, body: GrantsUpdate) -> GrantsPublic:
    """Replace a user's grants (``["export"]``, or ``[]``)."""
    users = request.app.state.users

    def work():
        user = users.get(email)
        return GrantsPublic(email=user["email"], grants=users.set_grants(user["email"], body.grants,
                                                                        by=caller.identity))

    return await asyncio.to_thread(work)
