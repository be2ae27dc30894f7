"""The ASGI app factory: builds the platform and mounts each layer's router."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.responses import JSONResponse

import plinth
from plinth.errors import Unavailable
from plinth.server import problems
from plinth.server.middleware import RequestLimits
from plinth.server.platform import Platform
from plinth.settings import Settings


def routers() -> list:  # type: ignore[type-arg]
    """Every layer's router, in mount order."""
    from plinth.designer.api import router as designer_router
    from plinth.designer.api import web_router
    from plinth.governance.api import router as governance_router
    from plinth.metadata.api import router as metadata_router
    from plinth.tenancy.api import router as tenancy_router

    return [tenancy_router, governance_router, metadata_router, designer_router,
            web_router]  # web_router (the IDE's files, any GET path) stays last


def create_app(settings: Settings | None = None, platform: Platform | None = None) -> FastAPI:
    """A Plinth server for `settings` (or a prepared `platform`)."""
    platform = platform or Platform(settings or Settings())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await platform.start()
        try:
            yield
        finally:
            await platform.stop()

    app = FastAPI(
        title="Plinth", version=plinth.__version__, lifespan=lifespan,
        description="The Plinth platform API. Every /api endpoint needs a bearer token.",
    )
    app.state.platform = platform
    problems.install(app)
    app.add_middleware(RequestLimits, max_body_bytes=platform.settings.max_body_bytes)

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

    for router in routers():
        app.include_router(router)
    return app
