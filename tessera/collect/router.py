"""The ``/v1`` routes: Segment's HTTP tracking API, which RudderStack's clients speak too."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

router = APIRouter(prefix="/v1", tags=["collect"])

_MESSAGE = {
    "type": "object",
    "description": "A Segment message: userId or anonymousId, traits, event, name, properties, context, "
                   "timestamp, messageId, integrations...",
    "additionalProperties": True,
}
_BATCH = {
    "type": "object",
    "properties": {"batch": {"type": "array", "items": _MESSAGE}, "sentAt": {"type": "string", "format": "date-time"},
                   "writeKey": {"type": "string"}},
    "required": ["batch"],
}
_AUTH = "The write key of an http connection, as the HTTP Basic user name (or writeKey in the body)."


def _body(schema: dict) -> dict:
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}},
            "description": _AUTH}


async def _ingest(request: Request, kind: str) -> Response:
    return await request.app.state.collector.ingest(request, kind)


@router.post("/batch", openapi_extra=_body(_BATCH))
async def batch(request: Request) -> Response:
    """Record a batch of messages of any type."""
    return await _ingest(request, "batch")


@router.post("/import", openapi_extra=_body(_BATCH))
async def import_(request: Request) -> Response:
    """Record a batch of historical messages (the same as /v1/batch)."""
    return await _ingest(request, "batch")


@router.post("/identify", openapi_extra=_body(_MESSAGE))
async def identify(request: Request) -> Response:
    """Record who a user is (traits)."""
    return await _ingest(request, "identify")


@router.post("/track", openapi_extra=_body(_MESSAGE))
async def track(request: Request) -> Response:
    """Record an action of a user (event, properties)."""
    return await _ingest(request, "track")


@router.post("/page", openapi_extra=_body(_MESSAGE))
async def page(request: Request) -> Response:
    """Record a page view."""
    return await _ingest(request, "page")


@router.post("/screen", openapi_extra=_body(_MESSAGE))
async def screen(request: Request) -> Response:
    """Record a screen view of a mobile app."""
    return await _ingest(request, "screen")


@router.post("/group", openapi_extra=_body(_MESSAGE))
async def group(request: Request) -> Response:
    """Record that a user belongs to a group (account, company)."""
    return await _ingest(request, "group")


@router.post("/alias", openapi_extra=_body(_MESSAGE))
async def alias(request: Request) -> Response:
    """Record that two user ids are the same user (previousId, userId)."""
    return await _ingest(request, "alias")
