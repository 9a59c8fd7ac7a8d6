"""Sign-in, sign-out and the language switch."""

from __future__ import annotations

import asyncio
import math

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse

from tessera.api.auth import SESSION_COOKIE, SESSION_MAX_AGE, client_of
from tessera.web import i18n
from tessera.web.auth import Viewer, public, safe_next, session_of
from tessera.web.render import render

router = APIRouter(include_in_schema=False)


def _audit(request: Request, action: str, email: str) -> None:
    request.app.state.owner.workspace.store.audit(action, actor=email, target=email, client=client_of(request))


@router.get("/login", dependencies=[Depends(public())])
async def login_page(request: Request, next: str | None = None):
    if session_of(request) is not None:
        return RedirectResponse(safe_next(next), status_code=303)
    return render(request, "login.html", next=safe_next(next), error=None, email="")


@router.post("/login", dependencies=[Depends(public())])
async def login(request: Request, email: str = Form("", max_length=320), password: str = Form("", max_length=1024),
                next: str = Form("/", max_length=2000)):
    app = request.app
    t = i18n.Translator(i18n.choose(request.cookies.get(i18n.COOKIE), request.headers.get("accept-language")))
    email = email.strip().lower()
    client = client_of(request) or "unknown"
    keys = (f"account:{email}", f"client:{client}")
    wait = app.state.throttle.retry_after(*keys)
    if wait > 0:
        await asyncio.to_thread(_audit, request, "login.throttled", email)
        return render(request, "login.html", status_code=429, next=safe_next(next), email=email,
                      error=t("login.throttled", seconds=math.ceil(wait)))
    user = await asyncio.to_thread(app.state.users.authenticate, email, password)
    if user is None:
        app.state.throttle.failed(*keys)
        await asyncio.to_thread(_audit, request, "login.failed", email)
        return render(request, "login.html", status_code=401, next=safe_next(next), email=email,
                      error=t("login.wrong"))
    app.state.throttle.succeeded(keys[0])
    cookie, _payload = app.state.sessions.new(user["email"])
    await asyncio.to_thread(_audit, request, "login.succeeded", user["email"])
    response = RedirectResponse(safe_next(next), status_code=303)
    response.set_cookie(SESSION_COOKIE, cookie, max_age=SESSION_MAX_AGE, httponly=True, samesite="lax",
                        secure=request.url.scheme == "https", path="/")
    return response


@router.post("/logout")
async def logout(request: Request, user: Viewer):
    request.app.state.sessions.end(user.session)
    await asyncio.to_thread(_audit, request, "logout", user.identity)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.post("/language", dependencies=[Depends(public())])
async def switch_language(request: Request, lang: str = Form(..., max_length=5), next: str = Form("/", max_length=2000)):
    response = RedirectResponse(safe_next(next), status_code=303)
    if lang in i18n.LANGUAGES:
        response.set_cookie(i18n.COOKIE, lang, max_age=365 * 24 * 3600, samesite="lax", path="/", httponly=True)
    return response
