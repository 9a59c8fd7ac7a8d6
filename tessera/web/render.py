"""Rendering pages: the Jinja2 environment, the page context and the security headers.

Every page gets in its template: ``t`` (the translator), ``lang``, ``user`` (the signed-in
:class:`~tessera.api.auth.Principal` or None), ``csrf_token``, ``can(role)``, ``nav`` (the
current section) and ``request``. Dates and numbers are shown by the filters ``when``,
``number`` and ``money``.
"""

from __future__ import annotations

import json
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from tessera.users import role_allows
from tessera.web import i18n
from tessera.web.auth import session_of

HERE = Path(__file__).resolve().parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"

# default-src 'self' and nothing inline: scripts and styles come from /static only. Vega draws
# with its expression interpreter (no eval); HTMX's own inline style is turned off in base.html.
CSP = ("default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'self'; "
       "form-action 'self'; frame-ancestors 'none'")
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}


def _when(value: Any, with_time: bool = True) -> str:
    if value in (None, ""):
        return ""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return value
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(timezone.utc).replace(tzinfo=None)
        return value.strftime("%Y-%m-%d %H:%M" if with_time else "%Y-%m-%d")
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def _number(value: Any, digits: int = 0) -> str:
    if value is None or value == "":
        return ""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    text = f"{number:,.{digits}f}"
    return text.replace(",", "\u202f")  # a thin space groups thousands in both languages


def _tojson_attr(value: Any) -> str:
    """JSON for a data-* attribute (autoescaped by Jinja as an attribute value)."""
    return json.dumps(value, default=str, separators=(",", ":"))


def make_environment() -> Environment:
    env = Environment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=select_autoescape(["html"]),
                      trim_blocks=True, lstrip_blocks=True, auto_reload=False)
    env.filters["when"] = _when
    env.filters["number"] = _number
    env.filters["money"] = lambda v: _number(v, 2)
    env.filters["json_attr"] = _tojson_attr
    return env


ENV = make_environment()


def language(request: Request) -> str:
    return i18n.choose(request.cookies.get(i18n.COOKIE), request.headers.get("accept-language"))


def context(request: Request, **values) -> dict:
    found = session_of(request)
    user, csrf = (found if found else (None, ""))
    lang = language(request)
    return {"request": request, "t": i18n.Translator(lang), "lang": lang, "languages": i18n.LANGUAGES,
            "user": user, "csrf_token": csrf, "can": lambda role: user is not None and role_allows(user.role, role),
            "htmx": request.headers.get("hx-request") == "true", **values}


def render(request: Request, template: str, status_code: int = 200, headers: dict | None = None,
           **values) -> HTMLResponse:
    """A page (or, for an HTMX request, a fragment: the template decides with ``htmx``)."""
    html = ENV.get_template(template).render(context(request, **values))
    return HTMLResponse(html, status_code=status_code, headers=headers)
