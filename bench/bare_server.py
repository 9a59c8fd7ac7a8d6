"""The floor of a read through HTTP: a bare FastAPI app served like ``tessera serve`` (uvicorn with
uvloop and httptools, one process, the same thread switch interval, FastAPI's telemetry off,
the garbage collector's survivors frozen) whose ``/api/status`` and ``/api/profiles/{id}`` answer
a constant body of the real answers' size, after the same check of a bearer token.

``bench/bench_reads.py --bare`` serves it in a child process and loops the same readers on it:
what is left of a read's latency there is HTTP, FastAPI and Python on this machine's cores.

    python bench/bare_server.py --port 8099 --status-bytes 600 --profile-bytes 1200 --token T
"""

from __future__ import annotations

import argparse
import gc
import sys

import uvicorn
from fastapi import FastAPI, Header, HTTPException, Response

SWITCH_INTERVAL = 0.0005  # tessera.api.server.SWITCH_INTERVAL


def create_app(status_bytes: int, profile_bytes: int, token: str) -> FastAPI:
    app = FastAPI(docs_url=None, redoc_url=None, telemetry={"tracing": False, "metrics": False, "logs": False})
    status_body = b'{"pad":"' + b"x" * max(0, status_bytes - 10) + b'"}'
    profile_body = b'{"pad":"' + b"x" * max(0, profile_bytes - 10) + b'"}'
    expected = f"Bearer {token}"

    def check(authorization: str | None) -> None:
        if authorization != expected:
            raise HTTPException(401)

    @app.get("/api/status")
    async def status(authorization: str | None = Header(None)) -> Response:
        check(authorization)
        return Response(status_body, media_type="application/json")

    @app.get("/api/profiles/{tessera_id}")
    async def profile(tessera_id: str, events: int = 50, authorization: str | None = Header(None)) -> Response:
        check(authorization)
        return Response(profile_body, media_type="application/json")

    @app.get("/health")
    async def health() -> dict:
        return {"ok": True}

    return app


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--status-bytes", type=int, default=600)
    ap.add_argument("--profile-bytes", type=int, default=1200)
    ap.add_argument("--token", required=True)
    args = ap.parse_args()
    sys.setswitchinterval(SWITCH_INTERVAL)
    app = create_app(args.status_bytes, args.profile_bytes, args.token)
    gc.collect()
    gc.freeze()
    uvicorn.run(app, host="127.0.0.1", port=args.port, loop="uvloop", http="httptools", log_level="warning",
                access_log=False, server_header=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
