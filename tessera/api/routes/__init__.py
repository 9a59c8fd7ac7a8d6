"""The REST API (``/api``): one module per noun, each an ``APIRouter``.

Reads run in a worker thread on a reader of the server's workspace (the last publication; they
never wait for a run); writes are jobs of the writer queue (:mod:`tessera.jobs`). Every route
depends on :func:`tessera.api.auth.authorized`.
"""

from __future__ import annotations

from fastapi import APIRouter

from tessera.api.routes import cli, events, identity, jobs, profiles, schedule, status

ROUTERS: list[APIRouter] = [status.router, profiles.router, schedule.router, jobs.router, events.router, cli.router,
                             identity.router]
