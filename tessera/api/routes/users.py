"""Sign-in, users and API tokens: ``/api/session``, ``/api/me``, ``/api/users``, ``/api/tokens``."""

from __future__ import annotations

import asyncio
import math
from typing import Literal

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from tessera.api.auth import (
    SESSION_COOKIE,
    SESSION_MAX_AGE,
    Admin,
    Principal,
    Viewer,
    client_of,
    public,
)
from tessera.api.params import RowId
from tessera.errors import NotFoundError

router = APIRouter(prefix="/api", tags=["users"])

Role = Literal["viewer", "editor", "admin"]


class SessionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    email: str = Field(max_length=320)
    password: str = Field(max_length=1024)


class SessionPublic(BaseModel):
    email: str
    role: str
    csrf_token: str
    expires_in: int


class MePublic(BaseModel):
    identity: str
    role: str
    via: str


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    email: str = Field(max_length=320)
    role: Role
    password: str = Field(max_length=1024)


class UserPublic(BaseModel):
    id: int
    email: str
    role: str
    created_at: str | None = None
    created_by: str | None = None


class TokenCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user: str = Field(max_length=320)
    role: Role
    expires: str | None = Field(default="90d", max_length=40,
                                description="90d, 12h, 30m, 2w, an ISO date, or 'never'")
    note: str | None = Field(default=None, max_length=500)


class TokenPublic(BaseModel):
    id: int
    user: str | None
    role: str
    prefix: str
    note: str | None = None
    created_at: str | None = None
    expires_at: str | None = None
    revoked_at: str | None = None
    last_used_at: str | None = None
    state: str | None = None


class TokenCreated(TokenPublic):
    token: str = Field(description="the token, shown this once: only its hash is kept")


def _audit(request: Request, action: str, *, actor: str | None, target: str | None, details: dict | None = None):
    request.app.state.owner.workspace.store.audit(action, actor=actor, target=target, details=details,
                                                  client=client_of(request))


@router.post("/session", dependencies=[Depends(public())])
async def sign_in(request: Request, response: Response, body: SessionCreate) -> SessionPublic:
    """Sign in with email and password: sets the session cookie (HttpOnly, SameSite=Lax) and answers
    the CSRF token to send as ``X-CSRF-Token`` with every change. After 5 failures of an account or
    an address, each attempt waits longer (429 with ``Retry-After``)."""
    app = request.app
    email = body.email.strip().lower()
    client = client_of(request) or "unknown"
    keys = (f"account:{email}", f"client:{client}")
    wait = app.state.throttle.retry_after(*keys)
    if wait > 0:
        await asyncio.to_thread(_audit, request, "login.throttled", actor=email, target=email)
        raise HTTPException(429, detail=f"too many failed sign-ins: try again in {math.ceil(wait)} s",
                            headers={"Retry-After": str(math.ceil(wait))})
    user = await asyncio.to_thread(app.state.users.authenticate, email, body.password)
    if user is None:
        app.state.throttle.failed(*keys)
        await asyncio.to_thread(_audit, request, "login.failed", actor=email, target=email)
        raise HTTPException(401, detail="wrong email or password")
    app.state.throttle.succeeded(keys[0])
    cookie, payload = app.state.sessions.new(user["email"])
    response.set_cookie(SESSION_COOKIE, cookie, max_age=SESSION_MAX_AGE, httponly=True, samesite="lax",
                        secure=request.url.scheme == "https", path="/")
    await asyncio.to_thread(_audit, request, "login.succeeded", actor=user["email"], target=user["email"])
    return SessionPublic(email=user["email"], role=user["role"], csrf_token=payload["c"], expires_in=SESSION_MAX_AGE)


@router.delete("/session", status_code=204)
async def sign_out(request: Request, response: Response, caller: Viewer) -> None:
    """Sign out: the session ends (its cookie is refused from now on) and the cookie is cleared."""
    if caller.session:
        request.app.state.sessions.end(caller.session)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="lax")
    await asyncio.to_thread(_audit, request, "logout", actor=caller.identity, target=caller.identity)


@router.get("/me")
async def me(caller: Viewer) -> MePublic:
    """Who the server takes the caller for, with which role and credential (local, token, session)."""
    return MePublic(identity=caller.identity, role=caller.role, via=caller.via)


@router.get("/users")
async def list_users(request: Request, _caller: Admin) -> list[UserPublic]:
    """The users and their roles."""
    rows = await asyncio.to_thread(request.app.state.users.list)
    return [UserPublic(**r) for r in rows]


@router.post("/users", status_code=201)
async def add_user(request: Request, caller: Admin, body: UserCreate) -> UserPublic:
    """Add a user with a role and a password (at least 10 characters)."""
    row = await asyncio.to_thread(request.app.state.users.create, body.email, body.role, body.password,
                                  by=caller.identity)
    return UserPublic(**row)


@router.delete("/users/{email}", status_code=204)
async def remove_user(request: Request, caller: Admin, email: str) -> None:
    """Remove a user and its API tokens (never the last admin)."""
    await asyncio.to_thread(request.app.state.users.remove, email, by=caller.identity)


def _own(caller: Principal) -> str | None:
    """The user whose tokens the caller may see: everybody's for an admin, else its own."""
    return None if caller.allows("admin") else caller.identity


@router.get("/tokens")
async def list_tokens(request: Request, caller: Viewer) -> list[TokenPublic]:
    """API tokens (never the tokens themselves): an admin sees all, another user its own."""
    users = request.app.state.users
    mine = _own(caller)

    def rows():
        if mine is not None and users.store.get_user(mine) is None:
            return []
        return users.tokens(mine)

    return [TokenPublic(**r) for r in await asyncio.to_thread(rows)]


@router.post("/tokens", status_code=201)
async def create_token(request: Request, caller: Admin, body: TokenCreate) -> TokenCreated:
    """Create an API token for a user, scoped to a role (at most the user's); the token is answered once."""
    token, row = await asyncio.to_thread(request.app.state.users.create_token, body.user, body.role,
                                         expires=body.expires, note=body.note, by=caller.identity)
    return TokenCreated(token=token, state="active", **row)


@router.delete("/tokens/{token_id}")
async def revoke_token(request: Request, caller: Viewer, token_id: RowId) -> TokenPublic:
    """Revoke an API token: an admin any, another user its own."""
    users = request.app.state.users

    def revoke():
        row = users.store.get_token(token_id)
        mine = _own(caller)
        if row is None or (mine is not None and row["user"] != mine):
            raise NotFoundError(f"no token {token_id} of yours: list them with GET /api/tokens")
        return users.revoke_token(token_id, by=caller.identity)

    row = await asyncio.to_thread(revoke)
    return TokenPublic(state="revoked", **row)
