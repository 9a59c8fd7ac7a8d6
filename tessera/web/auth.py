"""Who may open which page of the web app.

The web app signs in with the same users, session cookie (``tessera_session``) and CSRF token as
the REST API (:mod:`tessera.api.auth`). Every page has one *rule*, :func:`page` with a role
(viewer, editor, admin) or :func:`public`; ``tests/web/test_web_auth.py`` walks the route table
and fails on a page without one. Without a session a page redirects to ``/login`` (an HTMX
request gets an ``HX-Redirect`` header instead); with a role too weak it answers 403.

A form that changes something (POST) carries the session's CSRF token, as the ``csrf_token``
field or the ``X-CSRF-Token`` header (HTMX sends it from ``<body hx-headers>``), and must come
from this site (``Origin``, when the browser sends it, names this host).
"""

from __future__ import annotations

import hmac
from typing import Annotated, Callable
from urllib.parse import quote, urlsplit

from fastapi import Depends, Request

from tessera.api.auth import CSRF_HEADER, SESSION_COOKIE, Principal, client_of
from tessera.store.models import ROLES
from tessera.users import role_allows


class LoginRequired(Exception):
    """No valid session: the page redirects to the sign-in page."""

    def __init__(self, next_url: str):
        super().__init__(next_url)
        self.next_url = next_url


class Forbidden(Exception):
    """Signed in, but the role is too weak for the page (403), or a change without its CSRF token."""

    def __init__(self, message: str, principal: Principal | None = None):
        super().__init__(message)
        self.message = message
        self.principal = principal


def session_of(request: Request) -> tuple[Principal, str] | None:
    """The signed-in user of a request and the session's CSRF token, or None."""
    cached = getattr(request.state, "web_session", None)
    if cached is not None:
        return cached
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie:
        return None
    payload = request.app.state.sessions.read(cookie)
    user = request.app.state.users.store.get_user(payload["u"]) if payload else None
    if user is None:
        return None
    found = (Principal(user["email"], user["role"], "session", client_of(request), session=payload["s"]), payload["c"])
    request.state.web_session = found
    return found


def _same_origin(request: Request) -> bool:
    origin = request.headers.get("origin")
    if not origin or origin == "null":
        return origin is None
    return urlsplit(origin).netloc == request.headers.get("host", "")


async def check_csrf(request: Request, token: str) -> None:
    """Refuse a change without the session's CSRF token or from another site."""
    if not _same_origin(request):
        raise Forbidden("this form was sent from another site: open Tessera's page and send it again")
    sent = request.headers.get(CSRF_HEADER) or ""
    if not sent:
        form = await request.form()
        sent = str(form.get("csrf_token") or "")
    if not hmac.compare_digest(sent.encode(), token.encode()):
        raise Forbidden("this form has expired: reload the page and send it again")


def page(role: str) -> Callable:
    """The rule of a page: users with ``role`` or a stronger one (admin > editor > viewer)."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}: use one of {', '.join(ROLES)}")

    async def rule(request: Request) -> Principal:
        found = session_of(request)
        if found is None:
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            raise LoginRequired(target)
        principal, token = found
        if not principal.allows(role):
            raise Forbidden(f"this needs the role {role}; {principal.identity} is {principal.role}", principal)
        if request.method != "GET":
            await check_csrf(request, token)
        return principal

    rule.tessera_rule = role  # type: ignore[attr-defined]
    rule.__name__ = f"page_{role}"
    return rule


async def _public(request: Request) -> None:
    if request.method != "GET" and not _same_origin(request):
        raise Forbidden("this form was sent from another site: open Tessera's page and send it again")
    return None


_public.tessera_rule = "public"  # type: ignore[attr-defined]


def public() -> Callable:
    """The rule of a page anyone may open (sign-in, language switch)."""
    return _public


def login_url(next_url: str) -> str:
    return "/login" + (f"?next={quote(next_url, safe='/')}" if next_url and next_url != "/" else "")


def safe_next(value: str | None) -> str:
    """A local path to go back to after sign-in (never another site)."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    return value


def allows(principal: Principal | None, role: str) -> bool:
    return principal is not None and role_allows(principal.role, role)


Viewer = Annotated[Principal, Depends(page("viewer"))]
Editor = Annotated[Principal, Depends(page("editor"))]
Admin = Annotated[Principal, Depends(page("admin"))]
