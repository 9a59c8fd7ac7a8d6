"""The one error body of the whole server.

Every error answer is ``{"ok": false, "error": "...", "errors": [...], "status": N, "code": "...",
"message": "..."}``. ``code`` and ``message`` are what the Segment and RudderStack clients read
out of an error (they report ``[code] message (status)``); ``message`` repeats ``error``.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from tessera.errors import TesseraError
from tessera.httperrors import error_body, error_response

__all__ = ["error_body", "error_response", "install_error_handlers"]


def install_error_handlers(app: FastAPI) -> None:
    """Answer HTTP and validation errors of every router with the one error shape."""

    async def http_error(_request: Request, exc: StarletteHTTPException) -> Response:
        return error_response(exc.status_code, str(exc.detail), headers=getattr(exc, "headers", None))

    async def validation_error(_request: Request, exc: RequestValidationError) -> Response:
        errors = [f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}" for e in exc.errors()]
        return error_response(422, errors[0] if len(errors) == 1 else f"{len(errors)} invalid fields",
                              errors=errors)

    async def tessera_error(_request: Request, exc: TesseraError) -> Response:
        problems = getattr(exc, "problems", None)
        headers = {"Retry-After": "5"} if exc.status == 503 else None
        return error_response(exc.status, str(exc), errors=problems, code=exc.code, headers=headers)

    async def internal_error(_request: Request, _exc: Exception) -> Response:
        return error_response(500, "the server failed on this request (a bug): see the server log")

    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(TesseraError, tessera_error)
    app.add_exception_handler(Exception, internal_error)
