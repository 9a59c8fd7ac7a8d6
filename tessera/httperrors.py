"""The one error body of the whole server, below every package that answers HTTP.

Every error answer is ``{"ok": false, "error": "...", "errors": [...], "status": N, "code": "...",
"message": "..."}``. ``code`` and ``message`` are what the Segment and RudderStack clients read
out of an error (they report ``[code] message (status)``); ``message`` repeats ``error``.
The collection service (:mod:`tessera.collect`) and the REST API (:mod:`tessera.api`, which
re-exports these functions from :mod:`tessera.api.errors`) both answer with it.
"""

from __future__ import annotations

import orjson
from starlette.responses import Response

_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
          409: "conflict", 413: "payload_too_large", 415: "unsupported_media_type", 422: "invalid_request",
          429: "too_many_requests", 500: "internal_error", 503: "unavailable"}
"""Codes of the HTTP errors raised by the framework; Tessera's own errors carry theirs (tessera.errors)."""


def error_body(status: int, error: str, *, errors: list[str] | None = None, code: str | None = None) -> bytes:
    return orjson.dumps({
        "ok": False, "error": error, "errors": errors or [error], "status": status,
        "code": code or _CODES.get(status, "error"), "message": error,
    })


def error_response(status: int, error: str, *, errors: list[str] | None = None, code: str | None = None,
                   headers: dict[str, str] | None = None) -> Response:
    """An error answer in the server's one error shape."""
    return Response(error_body(status, error, errors=errors, code=code), status_code=status,
                    media_type="application/json", headers=headers)
