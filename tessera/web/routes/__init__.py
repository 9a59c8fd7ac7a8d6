"""The pages of the web app: one module per section, each an ``APIRouter`` kept out of the
OpenAPI schema. Every page has one rule of :mod:`tessera.web.auth` (``Viewer``, ``Editor``,
``Admin`` or ``public()``)."""

from __future__ import annotations

from fastapi import APIRouter

from tessera.web.routes import admin, catalog, customers, home, runs, segments, session, syncs
from tessera.web.routes import connections, dashboards, definitions, schedules

ROUTERS: list[APIRouter] = [session.router, home.router, customers.router, segments.router, runs.router,
                            syncs.router, catalog.router, connections.router, schedules.router, definitions.router,
                            admin.router, dashboards.router]
