"""The marketer's web app, served at ``/`` by ``tessera serve``.

Server-rendered pages (Jinja2) made live with HTMX and Alpine.js (its CSP build), and charts
drawn by Vega-Lite; every file comes from the installed package (``static/``), nothing from
another site, under a Content-Security-Policy of ``default-src 'self'``. Pages read through the
server's owner (:class:`~tessera.api.owner.WorkspaceOwner`: a reader of the last publication)
and change things as jobs of its writer queue, like the REST API. See docs/webapp.md.

    from tessera.web import install_web
    install_web(app)   # in tessera.api.app.create_app
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException

from tessera.errors import TesseraError
from tessera.web.auth import Forbidden, LoginRequired, login_url
from tessera.web.render import SECURITY_HEADERS, STATIC, render
from tessera.web.routes import ROUTERS

__all__ = ["install_web", "is_web_path"]

NOT_WEB = ("/api", "/v1", "/docs", "/redoc", "/openapi.json", "/health")


def is_web_path(path: str) -> bool:
    """Whether a path belongs to the web app (not to the REST API, the collection API or the docs)."""
    return not any(path == p or path.startswith(p + "/") for p in NOT_WEB)


class StaticAssets(StaticFiles):
    """The app's static files, cached by browsers for a day (they change with the package)."""

    async def get_response(self, path: str, scope) -> Response:
        response = await super().get_response(path, scope)
        if response.status_code == 200:
            response.headers["Cache-Control"] = "public, max-age=86400"
        return response


class SecurityHeaders:
    """The Content-Security-Policy and the other security headers on the web app's answers. A plain
    ASGI middleware that lets every other path (the event collection API above all) through untouched."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or not is_web_path(scope["path"]):
            await self.app(scope, receive, send)
            return

        async def with_headers(message):
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    if name not in headers:
                        headers[name] = value
            await send(message)

        await self.app(scope, receive, with_headers)


def install_web(app: FastAPI) -> None:
    """Serve the web app at ``/`` on a server application (pages, static files, headers, errors)."""
    app.mount("/static", StaticAssets(directory=STATIC, check_dir=True), name="web-static")
    for router in ROUTERS:
        app.include_router(router)

    app.add_middleware(SecurityHeaders)
    _install_error_pages(app)


def _install_error_pages(app: FastAPI) -> None:
    """Errors on a page answer an HTML page; on the APIs, the handlers installed before (JSON)."""
    before = dict(app.exception_handlers)

    def delegate(cls):
        async def handler(request: Request, exc: Exception) -> Response:
            if is_web_path(request.url.path):
                return _error_page(request, exc)
            fallback = before.get(cls)
            if fallback is None:
                raise exc
            return await fallback(request, exc)
        return handler

    async def login_required(request: Request, exc: LoginRequired) -> Response:
        target = login_url(exc.next_url)
        if request.headers.get("hx-request") == "true":
            return Response(status_code=204, headers={"HX-Redirect": target})
        return RedirectResponse(target, status_code=303)

    async def forbidden(request: Request, exc: Forbidden) -> Response:
        return render(request, "error.html", status_code=403, status=403, message=exc.message)

    for cls in (StarletteHTTPException, RequestValidationError, TesseraError, Exception):
        app.add_exception_handler(cls, delegate(cls))
    app.add_exception_handler(LoginRequired, login_required)
    app.add_exception_handler(Forbidden, forbidden)


def _error_page(request: Request, exc: Exception) -> Response:
    if isinstance(exc, StarletteHTTPException):
        status, message = exc.status_code, str(exc.detail)
    elif isinstance(exc, RequestValidationError):
        status = 422
        message = "; ".join(f"{'.'.join(str(p) for p in e.get('loc', ())[1:])}: {e.get('msg')}" for e in exc.errors())
    elif isinstance(exc, TesseraError):
        status, message = exc.status, str(exc)
    else:
        import logging

        logging.getLogger("tessera.web").exception("page %s failed", request.url.path)
        status, message = 500, "this page failed (a bug): see the server log"
    return render(request, "error.html", status_code=status, status=status, message=message)
