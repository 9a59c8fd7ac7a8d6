"""The server application: one FastAPI app for the event collection API, the REST API and the UI.

:func:`create_app` builds it for one workspace, which the server then owns
(:class:`~tessera.api.owner.WorkspaceOwner`): the warehouse and the metadata store are opened
once, writes are jobs of one writer queue, reads are served beside it. Each background
capability is a *service* with ``async start()``/``async stop()`` that the app's lifespan starts
in order and stops in reverse order. To add one::

    app.include_router(router)                        # e.g. tessera/api/routes/<noun>.py
    app.state.services.append(SchedulerService(...))  # before the server starts

Routes reach the owner as ``request.app.state.owner`` (or the ``Owner`` dependency of
:mod:`tessera.api.auth`) and the collection service as ``request.app.state.collector``.
"""

from __future__ import annotations

import asyncio
import gc
import os
from contextlib import asynccontextmanager
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from tessera.api.auth import Sessions
from tessera.api.errors import install_error_handlers
from tessera.api.owner import WorkspaceOwner
from tessera.api.routes import ROUTERS
from tessera.collect.router import router as collect_router
from tessera.collect.service import Collector
from tessera.schedule import SchedulerService
from tessera.users import Throttle, Users
from tessera.web import install_web


def create_app(workspace_path: str | Path, *, collect: bool = True, loader: bool = True,
               loader_interval: float = 1.0, api: bool = True, schedules: bool = False,
               url: str | None = None, cli_runner=None, web: bool = True) -> FastAPI:
    """The server application of a workspace; from here on the application owns the workspace.

    Args:
        workspace_path: the workspace folder (it must exist: ``tessera init``).
        collect: serve the event collection API at ``/v1`` (Segment/RudderStack-compatible).
        loader: load collected events into the warehouse in the background (a thread).
        loader_interval: seconds between two loads of collected events.
        api: serve the REST API at ``/api`` (:mod:`tessera.api.routes`).
        schedules: start the due scheduled imports, runs and syncs as jobs (:mod:`tessera.schedule`).
        url: the address the server listens on, written to ``server.json`` for the CLI.
        cli_runner: ``runner(reader_factory, argv, width) -> {stdout, stderr, exit_code}``, which
            answers the read commands of a CLI (``POST /api/cli``).
        web: serve the marketer's web app at ``/`` (:mod:`tessera.web`).

    Raises:
        WorkspaceError: the folder is not a workspace.
        BusyError: another process writes the workspace.
    """
    owner = WorkspaceOwner(workspace_path)
    path = owner.path

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if app.state.lifespans:
            # The application is already running (a test client and a test tool may both enter
            # its lifespan): the first entry owns the start and the stop.
            app.state.lifespans += 1
            try:
                yield
            finally:
                app.state.lifespans -= 1
            return
        app.state.lifespans = 1
        started = []
        try:
            await asyncio.to_thread(owner.start)
            for service in app.state.services:
                await service.start()
                started.append(service)
            if url:
                owner.write_server_file(url)
            # What is alive now (modules, configuration) lives as long as the server: keep it out of
            # the garbage collector's full scans, whose pauses showed in the p99 latency.
            gc.collect()
            gc.freeze()
            yield
        finally:
            for service in reversed(started):
                await service.stop()
            await asyncio.to_thread(owner.stop)
            app.state.lifespans = 0

    app = FastAPI(title="Tessera", version=_version(), lifespan=lifespan, docs_url=None, redoc_url=None,
                  description="Customer Data Platform: event collection (/v1), REST API (/api) and UI.",
                  telemetry=telemetry())
    app.state.workspace_path = path
    app.state.owner = owner
    app.state.lifespans = 0
    app.state.users = Users(owner.workspace.store)
    app.state.sessions = Sessions(owner.workspace.store)
    app.state.throttle = Throttle()
    app.state.cli_runner = cli_runner
    app.state.services = []
    app.state.collector = None
    install_error_handlers(app)

    if collect:
        app.state.collector = Collector(path, workspace=owner.workspace, loader=loader,
                                        loader_interval=loader_interval)
        # Segments with event conditions follow the events as they load, between runs.
        app.state.collector.loaded_callbacks.append(owner.refresh_event_segments_soon)
        # Profiles show the events collected since the last run: their kept answers are of before.
        app.state.collector.loaded_callbacks.append(owner.events_loaded)
        app.state.services.append(app.state.collector)
        app.include_router(collect_router)

    if api:
        for router in ROUTERS:
            app.include_router(router)
    if schedules:
        app.state.services.append(SchedulerService(owner))
    install_docs(app)
    if web:
        install_web(app)

    @app.get("/health", tags=["server"])
    async def health() -> dict:
        """Whether the server is up, and how far the loading of collected events is."""
        out: dict = {"ok": True, "workspace": str(path)}
        if app.state.collector is not None:
            out["collect"] = await asyncio.to_thread(app.state.collector.status)
        return out

    return app


def telemetry() -> dict:
    """FastAPI's OpenTelemetry spans, metrics and logs: on when ``FASTAPI_OTEL_AUTO_CONFIGURE`` or
    ``TESSERA_OTEL`` is ``true`` (an exporter configured from the environment), else off: left on,
    FastAPI asks OpenTelemetry at every request whether a provider was configured since, which
    cost about a twentieth of the event loop's time per status read."""
    wanted = any(os.environ.get(v, "").lower() == "true" for v in ("FASTAPI_OTEL_AUTO_CONFIGURE", "TESSERA_OTEL"))
    return {} if wanted else {"tracing": False, "metrics": False, "logs": False}


def docs_assets() -> Path:
    """The folder of Swagger UI's and ReDoc's files, from the installed ``fastapi-offline`` package."""
    import fastapi_offline

    return Path(fastapi_offline.__file__).resolve().parent / "static"


def install_docs(app: FastAPI) -> None:
    """Swagger UI at ``/docs`` and ReDoc at ``/redoc``, served offline: their files come from an
    installed package (``/docs/assets``), and the pages reference no other site."""
    app.mount("/docs/assets", StaticFiles(directory=docs_assets()), name="docs-assets")
    title = app.title

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url=app.openapi_url, title=f"{title} - API",
                                   oauth2_redirect_url="/docs/oauth2-redirect",
                                   swagger_js_url="/docs/assets/swagger-ui-bundle.js",
                                   swagger_css_url="/docs/assets/swagger-ui.css",
                                   swagger_favicon_url="/docs/assets/favicon.png")

    @app.get("/docs/oauth2-redirect", include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return get_redoc_html(openapi_url=app.openapi_url, title=f"{title} - API",
                              redoc_js_url="/docs/assets/redoc.standalone.js",
                              redoc_favicon_url="/docs/assets/favicon.png", with_google_fonts=False)


def _version() -> str:
    try:
        return version("tessera-cdp")
    except PackageNotFoundError:
        return "0.0.0"
