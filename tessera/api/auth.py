"""Who may call the REST API, and what each role may do.

A caller proves who it is in one of three ways:

- the server's *local credential* (``server.json`` in the workspace, readable only by the user who
  started the server), which the CLI sends as ``Authorization: Bearer tsl_...``: it acts as admin;
- an API token of a user, ``Authorization: Bearer tsk_...``, with the role it is scoped to
  (:mod:`tessera.users`); a revoked or expired token is refused;
- a session cookie of the web app (``POST /api/session`` with email and password): signed
  (itsdangerous), HttpOnly, SameSite=Lax. A request that changes something (POST, PUT, PATCH,
  DELETE) on a cookie session must carry the session's CSRF token in the ``X-CSRF-Token`` header.

Every ``/api`` route has exactly one *rule*, a dependency made by :func:`require` (``viewer``,
``editor``, ``admin``), :func:`local_only` or :func:`public`; ``tests/api/test_auth.py`` walks the
route table and fails on a route without one. Without a credential the answer is 401; with a role
too weak, 403. The event collection API (``/v1``) keeps its write keys.
"""

from __future__ import annotations

import asyncio
import hmac
import secrets
import threading
from dataclasses import dataclass
from typing import Annotated, Callable

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from itsdangerous import BadSignature, URLSafeTimedSerializer

from tessera.api.owner import WorkspaceOwner
from tessera.store.models import ROLES
from tessera.users import TOKEN_PREFIX, Users, role_allows

SESSION_COOKIE = "tessera_session"
CSRF_HEADER = "X-CSRF-Token"
SESSION_MAX_AGE = 12 * 3600  # seconds a session lasts after sign-in
UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})


@dataclass(frozen=True)
class Principal:
    """Who calls: ``identity`` (an email, or ``local`` for the server's local credential), its
    ``role``, how it proved it (``via``: local, token, session) and the client's address."""

    identity: str
    role: str
    via: str
    client: str | None = None
    token_id: int | None = None
    session: str | None = None

    def __str__(self) -> str:
        return self.identity

    def allows(self, needed: str) -> bool:
        return role_allows(self.role, needed)


class Sessions:
    """Signed session cookies: ``{"u": email, "s": session id, "c": csrf token}``.

    The signing key is kept in the metadata store (state ``server/session_key``), so sessions outlive
    a restart of the server; sessions ended by sign-out are remembered in memory until they expire.
    """

    def __init__(self, store):
        key = store.get_state("server", "session_key")
        if not key:
            key = secrets.token_urlsafe(48)
            store.set_state("server", "session_key", key)
        self._signer = URLSafeTimedSerializer(key, salt="tessera-session")
        self._ended: set[str] = set()
        self._lock = threading.Lock()

    def new(self, email: str) -> tuple[str, dict]:
        payload = {"u": email, "s": secrets.token_urlsafe(16), "c": secrets.token_urlsafe(32)}
        return self._signer.dumps(payload), payload

    def read(self, cookie: str) -> dict | None:
        try:
            payload = self._signer.loads(cookie, max_age=SESSION_MAX_AGE)
        except BadSignature:
            return None
        if not isinstance(payload, dict) or not all(isinstance(payload.get(k), str) for k in ("u", "s", "c")):
            return None
        with self._lock:
            if payload["s"] in self._ended:
                return None
        return payload

    def end(self, session_id: str) -> None:
        with self._lock:
            self._ended.add(session_id)


# The dependencies that do no I/O are coroutines: FastAPI runs a plain function dependency in
# its thread pool, and those hand-offs cost a read more than its queries do.
async def owner_of(request: Request) -> WorkspaceOwner:
    return request.app.state.owner


def users_of(request: Request) -> Users:
    return request.app.state.users


def client_of(request: Request) -> str | None:
    return request.client.host if request.client else None


def _unauthorized(message: str) -> HTTPException:
    return HTTPException(401, detail=message, headers={"WWW-Authenticate": "Bearer"})


bearer = HTTPBearer(auto_error=False, scheme_name="token",
                    description="An API token (tsk_..., tessera tokens create) or the server's local credential")
"""Declares the bearer token in the OpenAPI schema (Swagger UI's Authorize button); checked below."""


async def authorized(request: Request,
                     _declared: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)] = None) -> Principal:
    """The caller (401 without a valid credential); the route's rule then checks its role."""
    cached = getattr(request.state, "principal", None)
    if cached is not None:
        return cached
    principal = _local_caller(request)
    if principal is None:  # a token or a session: read from the metadata store, off the event loop
        principal = await asyncio.to_thread(_authenticate, request)
    request.state.principal = principal
    return principal


def _local_caller(request: Request) -> Principal | None:
    """The server's local credential, checked without I/O (the CLI sends it with every command)."""
    scheme, _, token = (request.headers.get("authorization") or "").partition(" ")
    token = token.strip()
    if scheme.lower() == "bearer" and token and \
            hmac.compare_digest(token.encode(), request.app.state.owner.local_token.encode()):
        return Principal("local", "admin", "local", client_of(request))
    return None


def _authenticate(request: Request) -> Principal:
    app = request.app
    owner: WorkspaceOwner = app.state.owner
    client = client_of(request)
    header = request.headers.get("authorization") or ""
    if header:
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise _unauthorized("send 'Authorization: Bearer <token>' (an API token tsk_..., or the server's "
                                "local credential from server.json)")
        if hmac.compare_digest(token.encode(), owner.local_token.encode()):
            return Principal("local", "admin", "local", client)
        if token.startswith(TOKEN_PREFIX):
            row = app.state.users.check_token(token)
            if row is None:
                raise _unauthorized("this API token is unknown, revoked or expired: ask an admin for a new one "
                                    "(tessera tokens create)")
            return Principal(row["user"], row["role"], "token", client, token_id=row["id"])
        raise _unauthorized("this credential is not the server's local credential nor an API token (tsk_...)")
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        payload = app.state.sessions.read(cookie)
        user = app.state.users.store.get_user(payload["u"]) if payload else None
        if user is None:
            raise _unauthorized("the session has ended: sign in again (POST /api/session)")
        if request.method in UNSAFE:
            sent = request.headers.get(CSRF_HEADER) or ""
            if not hmac.compare_digest(sent.encode(), payload["c"].encode()):
                raise HTTPException(403, detail=f"a change through a session needs the {CSRF_HEADER} header with "
                                                "the csrf_token given at sign-in")
        return Principal(user["email"], user["role"], "session", client, session=payload["s"])
    raise _unauthorized("sign in: POST /api/session with email and password, or send 'Authorization: Bearer ...' "
                        "with an API token or the server's local credential (the tessera command does it for you; "
                        "it is in server.json in the workspace)")


def require(role: str) -> Callable[[Request], Principal]:
    """The rule of a route: callers with ``role`` or a stronger one (admin > editor > viewer)."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}: use one of {', '.join(ROLES)}")

    # The caller is checked here, not through a dependency on ``authorized``: each level of
    # dependencies costs the event loop's thread a share of every request.
    async def rule(request: Request,
                   _declared: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)] = None) -> Principal:
        caller = await authorized(request)
        if not caller.allows(role):
            raise HTTPException(403, detail=f"this needs the role {role}; {caller.identity} is {caller.role}")
        return caller

    rule.tessera_rule = role  # type: ignore[attr-defined]
    rule.__name__ = f"require_{role}"
    return rule


async def _local_only(caller: Annotated[Principal, Depends(authorized)]) -> Principal:
    if caller.via != "local":
        raise HTTPException(403, detail="only the server's local credential (the tessera command on this machine) "
                                        "may do this")
    return caller


_local_only.tessera_rule = "local"  # type: ignore[attr-defined]


def local_only() -> Callable:
    """The rule of routes for the CLI on the server's machine: the local credential only."""
    return _local_only


async def _public() -> None:
    return None


_public.tessera_rule = "public"  # type: ignore[attr-defined]


def public() -> Callable:
    """The rule of a route anyone may call (sign-in)."""
    return _public


Caller = Annotated[Principal, Depends(authorized)]
"""Any signed-in caller, with no role checked: a route also needs a rule (Viewer, Editor, Admin...)."""
Viewer = Annotated[Principal, Depends(require("viewer"))]
Editor = Annotated[Principal, Depends(require("editor"))]
Admin = Annotated[Principal, Depends(require("admin"))]
Local = Annotated[Principal, Depends(local_only())]
Owner = Annotated[WorkspaceOwner, Depends(owner_of)]
