"""The ASGI app factory: builds the platform and mounts each layer's router."""

from __future__ import annotations

import contextlib
import gc
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from starlette.routing import NoMatchFound

import plinth
from plinth.errors import Unavailable
from plinth.integration import Gateway
from plinth.runtime.reads import Reads
from plinth.server import openapi, problems
from plinth.server.input import CleanInput
from plinth.server.middleware import RequestLimits
from plinth.server.openapi import Methods
from plinth.server.platform import Platform
from plinth.settings import Settings


def routers() -> list:  # type: ignore[type-arg]
    """Every layer's router, in mount order (the web IDE's catch-all last)."""
    from plinth.compiler.api import router as compiler_router
    from plinth.designer.api import router as designer_router
    from plinth.designer.api import web_router as web_router
    from plinth.designer.palette import router as palette_router
    from plinth.designer.session import router as ide_session_router
    from plinth.extensions.api import router as extensions_router
    from plinth.governance.admin_api import router as admin_router
    from plinth.governance.api import public as auth_router
    from plinth.governance.api import router as governance_router
    from plinth.governance.compliance.api import router as compliance_router
    from plinth.integration.api import router as integration_router
    from plinth.metadata.api import router as metadata_router
    from plinth.pages.api import router as pages_router
    from plinth.runtime.api import router as runtime_router
    from plinth.server.metrics import router as metrics_router
    from plinth.tenancy.api import router as tenancy_router
    from plinth.workflows.api import router as workflows_router

    return [
        tenancy_router,
        governance_router,
        admin_router,
        auth_router,
        ide_session_router,
        metadata_router,
        runtime_router,
        compiler_router,
        extensions_router,
        integration_router,
        workflows_router,
        compliance_router,
        pages_router,
        metrics_router,
        designer_router,
        palette_router,
        web_router,
    ]


SETTINGS_ENV = "PLINTH_SERVE_SETTINGS"
# Container objects allocated (net) before the collector walks the youngest generation, while
# a server runs (CPython's default: 700).
YOUNG_GC_THRESHOLD = 10_000


def app_from_environment() -> FastAPI:
    """The app of one worker process of `plinth serve --workers N` (a uvicorn factory): the
    parent's settings, CLI flags included, come through the environment as JSON."""
    return create_app(Settings.model_validate_json(os.environ[SETTINGS_ENV]))


def _satisfies_every_port(platform: Platform) -> None:
    """For mypy only: the composition root provides what each router's port asks for."""
    from plinth.compiler import api as compiler_api
    from plinth.designer import api as designer_api
    from plinth.designer import session as ide_session
    from plinth.extensions import api as extensions_api
    from plinth.governance import admin_api
    from plinth.governance import api as governance_api
    from plinth.governance import http as governance_http
    from plinth.governance.compliance import api as compliance_api
    from plinth.integration import api as integration_api
    from plinth.metadata import api as metadata_api
    from plinth.pages import portal, session
    from plinth.runtime import api as runtime_api
    from plinth.runtime import reads as runtime_reads
    from plinth.tenancy import api as tenancy_api
    from plinth.tenancy import http as tenancy_http
    from plinth.workflows import api as workflows_api

    ports: list[object] = []
    _a: governance_http.Authenticating = platform
    _b: governance_http.Guarded = platform
    _c: tenancy_http.Tenants = platform
    _d: compiler_api.Services = platform
    _e: designer_api.Services = platform
    _f: extensions_api.Services = platform
    _g: governance_api.Services = platform
    _h: compliance_api.Services = platform
    _i: integration_api.Services = platform
    _j: metadata_api.Services = platform
    _k: portal.Services = platform
    _l: session.Services = platform
    _m: runtime_api.Services = platform
    _n: tenancy_api.Services = platform
    _o: workflows_api.Services = platform
    _p: ide_session.Services = platform
    _q: admin_api.Services = platform
    _r: runtime_reads.Services = platform
    ports += [_p, _q, _r, _a, _b, _c, _d, _e, _f, _g, _h, _i, _j, _k, _l, _m, _n, _o]


def prepare_routes(app: FastAPI) -> None:
    """Have FastAPI prepare every included router's routes now, before the server accepts
    requests. It prepares them (dependencies, parameter models) on the first request that
    reaches a router, for each router tried on the way: a fresh server's first request to a
    late one (a tenant's secrets after its creation: 9 routers, ~80 routes) took 1-4 s at
    load 15-20 and over 5 s at load 30, long enough for a client to give up."""
    with contextlib.suppress(NoMatchFound):
        app.url_path_for("plinth: no route has this name")  # walks every router, preparing it


class _PathOnly(logging.Filter):
    """uvicorn's access log line without the query string: a query can carry a secret (an
    OpenID Connect callback's authorization code), and secrets stay out of logs."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        # uvicorn logs (client, method, path with query, HTTP version, status).
        if isinstance(args, tuple) and len(args) == 5 and isinstance(args[2], str):
            record.args = (args[0], args[1], args[2].partition("?")[0], *args[3:])
        return True


_PATH_ONLY = _PathOnly()


def create_app(settings: Settings | None = None, platform: Platform | None = None) -> FastAPI:
    """A Plinth server for `settings` (or a prepared `platform`)."""
    platform = platform or Platform(settings or Settings())
    access = logging.getLogger("uvicorn.access")
    if _PATH_ONLY not in access.filters:
        access.addFilter(_PATH_ONLY)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await platform.start(workers=True)  # a server works the queues (embedded_worker)
        prepare_routes(app)
        # What start-up loaded (modules, routes, schemas, compiled statements) lives as long
        # as the process: out of the collector's sight, a full collection walks only what
        # requests left behind. Walked, it took ~0.45 s on a loaded machine, stalling every
        # request in flight (bench/noisy_neighbour.py).
        gc.collect()
        gc.freeze()
        # A young-generation collection ran whenever 700 more container objects were alive
        # than before: with 16 requests in flight that was every ~10 requests, each walking
        # (and promoting to the older generations) the objects of the requests still under
        # way; ~2.5% of a POST's CPU. At 10,000 it runs every few thousand requests.
        thresholds = gc.get_threshold()
        gc.set_threshold(YOUNG_GC_THRESHOLD, *thresholds[1:])
        try:
            yield
        finally:
            gc.set_threshold(*thresholds)
            gc.unfreeze()  # what start-up loaded may go now (tests start many servers)
            await platform.stop()

    app = FastAPI(
        title="Plinth",
        version=plinth.__version__,
        lifespan=lifespan,
        description="The Plinth platform API. Every /api endpoint needs a bearer token.",
    )
    app.state.platform = platform
    problems.install(app)
    openapi.install(app)
    app.add_middleware(Reads, services=platform)  # innermost: the data API's GET routes, lean
    app.add_middleware(Methods, api=app)  # OPTIONS and 405 list every method
    app.add_middleware(CleanInput)  # innermost: the gateway's limits and logs cover it
    # inside RequestLimits: sees request ids
    app.add_middleware(Gateway, quotas=platform.quotas, guards=[platform.plugins.early_refusal])
    app.add_middleware(
        RequestLimits,
        max_body_bytes=platform.settings.max_body_bytes,
        routes={("POST", "/api/plugins"): platform.settings.plugin_max_package_bytes},
    )

    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, str]:
        """The process is up."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"])
    async def readyz() -> JSONResponse:
        """The process can reach its database."""
        try:
            await platform.db.ping()
        except Exception as exc:
            raise Unavailable("The database is not reachable") from exc
        return JSONResponse({"status": "ready", "database": platform.db.dialect})

    if platform.settings.demo:  # before the web IDE's catch-all route
        from plinth.demo.fx import router as fx_stand_in

        app.include_router(fx_stand_in)
    for router in routers():
        app.include_router(router)
    return app
