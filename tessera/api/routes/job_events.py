"""Progress of a job as Server-Sent Events (``GET /api/jobs/{id}/events``).

Events: ``progress`` (the job: state, step, done/total, the last log lines) each time it changes,
then ``end`` with the final job (succeeded, failed, cancelled, interrupted), and the stream
closes. A comment line every 15 seconds keeps proxies from closing a quiet stream.
"""

from __future__ import annotations

import asyncio
import json
import time

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from tessera.api.auth import Owner, Viewer
from tessera.api.params import RowId

router = APIRouter(prefix="/api", tags=["jobs"])

FINAL = {"succeeded", "failed", "cancelled", "interrupted"}
POLL = 0.25  # seconds between two looks at the job
KEEPALIVE = 15.0


def _event(name: str, data: dict) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data, default=str, separators=(',', ':'))}\n\n".encode()


@router.get("/jobs/{job_id}/events", response_class=StreamingResponse,
            responses={200: {"content": {"text/event-stream": {}}}})
async def job_events(request: Request, owner: Owner, _caller: Viewer, job_id: RowId) -> StreamingResponse:
    """Follow a job: ``progress`` events while it changes, then ``end`` with its result (Server-Sent Events)."""
    first = await asyncio.to_thread(owner.jobs.get, job_id)  # 404 before the stream starts

    async def stream():
        job, last, quiet = first, None, time.monotonic()
        while True:
            seen = json.dumps([job.get("state"), job.get("progress"), len(job.get("log") or [])], default=str)
            if job["state"] in FINAL:
                yield _event("end", job)
                return
            if seen != last:
                last, quiet = seen, time.monotonic()
                yield _event("progress", {k: job.get(k) for k in ("id", "kind", "state", "progress")}
                             | {"log": (job.get("log") or [])[-5:]})
            elif time.monotonic() - quiet > KEEPALIVE:
                quiet = time.monotonic()
                yield b": keep-alive\n\n"
            if await request.is_disconnected():
                return
            await asyncio.sleep(POLL)
            job = await asyncio.to_thread(owner.jobs.get, job_id)

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
