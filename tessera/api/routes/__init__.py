"""The REST API (``/api``): one module per noun, each an ``APIRouter``.

Reads run in a worker thread on a reader of the server's workspace (the last publication; they
never wait for a run); writes are jobs of the writer queue (:mod:`tessera.jobs`). Every route
has one rule of :mod:`tessera.api.auth` (``Viewer``, ``Editor``, ``Admin``, ``Local`` or ``public()``).
"""

from __future__ import annotations

from fastapi import APIRouter

from tessera.api.routes import (
    audit,
    cli,
    config,
    connections,
    customers,
    dashboards,
    datasets,
    events,
    grants,
    identity,
    job_events,
    jobs,
    profiles,
    runs,
    schedule,
    schedules,
    segments,
    sources,
    status,
    syncs,
    users,
)

ROUTERS: list[APIRouter] = [status.router, profiles.router, schedule.router, jobs.router, events.router, cli.router,
                             identity.router, segments.router, users.router, audit.router,
                             config.router, connections.router, sources.router, datasets.router, customers.router,
                             syncs.router, schedules.router, runs.router, job_events.router, grants.router,
                             dashboards.router]
