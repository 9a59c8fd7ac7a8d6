"""The server application: one FastAPI app for the event collection API, the REST API and the UI.

:func:`create_app` builds it for one workspace. Each capability is a router plus, when it needs
to run in the background, a *service* with ``async start()``/``async stop()`` that the app's
lifespan starts in order and stops in reverse order. To add one::

    app.include_router(runs_router)                   # e.g. tessera/api/routes.py
    app.state.services.append(SchedulerService(...))  # before the server starts

Routes reach the workspace path as ``request.app.state.workspace_path`` and the collection
service as ``request.app.state.collector``.
"""

from __future__ import annotations

import asyncio
import gc
from contextlib import asynccontextmanager
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from fastapi import FastAPI

from tessera.api.errors import install_error_handlers
from tessera.workspace import Workspace


def create_app(workspace_path: str | Path, *, collect: bool = True, loader: bool = True,
               loader_interval: float = 1.0, api: bool = True, schedules: bool = False) -> FastAPI:
    """The server application of a workspace.

    Args:
        workspace_path: the workspace folder (it must exist: ``tessera init``).
        collect: serve the event collection API at ``/v1`` (Segment/RudderStack-compatible).
        loader: load collected events into the warehouse in the background (a child process).
        loader_interval: seconds between two loads of collected events.
        api: serve the REST API at ``/api`` (:mod:`tessera.api.routes`).
        schedules: start the due scheduled imports, runs and syncs (:mod:`tessera.schedule`).

    Raises:
        WorkspaceError: the folder is not a workspace.
    """
    path = Path(workspace_path).resolve()
    Workspace.open(path).close()  # a missing workspace fails here, before the server listens

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        started = []
        try:
            for service in app.state.services:
                await service.start()
                started.append(service)
            # What is alive now (modules, configuration) lives as long as the server: keep it out of
            # the garbage collector's full scans, whose pauses showed in the p99 latency.
            gc.collect()
            gc.freeze()
            yield
        finally:
            for service in reversed(started):
                await service.stop()

    app = FastAPI(title="Tessera", version=_version(), lifespan=lifespan,
                  description="Customer Data Platform: event collection (/v1), REST API (/api) and UI.")
    app.state.workspace_path = path
    app.state.services = []
    app.state.collector = None
    install_error_handlers(app)

    if collect:
        from tessera.collect.router import router as collect_router
        from tessera.collect.service import Collector

        app.state.collector = Collector(path, loader=loader, loader_interval=loader_interval)
        app.state.services.append(app.state.collector)
        app.include_router(collect_router)

    if api:
        from tessera.api.routes import router as api_router

        app.include_router(api_router)
    if schedules:
        from tessera.schedule import SchedulerService

        app.state.services.append(SchedulerService(lambda: Workspace.open(path)))

    @app.get("/health", tags=["server"])
    async def health() -> dict:
        """Whether the server is up, and how far the loading of collected events is."""
        out: dict = {"ok": True, "workspace": str(path)}
        if app.state.collector is not None:
            out["collect"] = await asyncio.to_thread(app.state.collector.status)
        return out

    return app


def _version() -> str:
    try:
        return version("tessera-cdp")
    except PackageNotFoundError:
        return "0.0.0"
