"""The designer's endpoints: the Yjs sync WebSocket of a draft, its history and diagnostics."""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from typing import Annotated, Any, Protocol

from fastapi import APIRouter, Depends, WebSocket, WebSocketDisconnect
from fastapi.responses import FileResponse
from fastapi.routing import APIRoute
from starlette.routing import Match

from plinth.designer import protocol as p
from plinth.designer.connection import Connection
from plinth.designer.service import DesignerService, RateLimitedError
from plinth.errors import Forbidden, NotFound, PlinthError
from plinth.governance.access import Authorizer, Resource, authorize
from plinth.governance.authentication import Authentication
from plinth.governance.http import PrincipalDep, require
from plinth.http import composed
from plinth.tenancy.http import TenantDep
from plinth.tenancy.service import TenantService


class Services(Protocol):
    """What these routes use of the composition root (server/platform.py provides it)."""

    authentication: Authentication
    authorizer: Authorizer
    designer: DesignerService
    tenants: TenantService


PlatformDep = Annotated[Services, Depends(composed)]

log = logging.getLogger("plinth.designer")
router = APIRouter(tags=["designer"])

# Close codes in the 4000 range, mirroring the HTTP status they stand for.
UNAUTHENTICATED, FORBIDDEN, NOT_FOUND, TOO_LARGE, RATE, MALFORMED = (
    4401,
    4403,
    4404,
    4413,
    4429,
    4400,
)
# How often an open socket's credential and access are checked again (the token cache's trust).
RECHECK_SECONDS = 1.0


def _token(ws: WebSocket) -> tuple[str | None, str | None]:
    """The bearer token from `Sec-WebSocket-Protocol: bearer, <token>` or `?token=`."""
    offered = [
        s.strip() for s in ws.headers.get("sec-websocket-protocol", "").split(",") if s.strip()
    ]
    if "bearer" in offered:
        rest = [s for s in offered if s != "bearer"]
        if rest:
            return rest[0], "bearer"
    return ws.query_params.get("token"), None


@router.websocket("/api/t/{tenant}/apps/{app}/draft/sync")
async def draft_sync(ws: WebSocket, tenant: str, app: str) -> None:
    """Co-edit the draft of `app` with the Yjs sync and awareness protocol."""
    platform = ws.app.state.platform
    token, subprotocol = _token(ws)
    await ws.accept(subprotocol=subprotocol)
    if not token:
        await ws.close(UNAUTHENTICATED, "a bearer token is required")
        return
    try:
        principal = await platform.authentication.authenticate(
            token
        )  # API tokens and login JWTs alike
        found = await platform.tenants.find(tenant)
        if found is None:
            raise Forbidden(f"This credential has no access to tenant {tenant!r}")
        principal.check_tenant(found.id, found.slug)
        resource = Resource("app", app, found.id)
        authorize(platform.authorizer, principal, "draft.read", resource)
        can_edit = platform.authorizer.decide(principal, "draft.edit", resource).allowed
        room = await platform.designer.room(found, app)
    except PlinthError as exc:
        code = {401: UNAUTHENTICATED, 403: FORBIDDEN, 404: NOT_FOUND}.get(exc.status, FORBIDDEN)
        await ws.close(code, exc.detail[:120])
        return

    async def close(code: int, reason: str) -> None:
        await ws.close(code, reason)

    conn = Connection(
        principal, can_edit, ws.send_bytes, close, tokens=platform.designer.limits.burst
    )
    service = platform.designer
    await service.join(room, conn)
    watcher = asyncio.create_task(_recheck(platform, token, resource, conn))
    try:
        while True:
            message = await ws.receive()
            if message["type"] == "websocket.disconnect":
                break
            data = message.get("bytes")
            if data is None:
                continue  # text frames are not part of the protocol
            try:
                await service.receive(room, conn, data)
            except RateLimitedError as exc:  # too many updates, or too costly ones
                await ws.close(RATE, str(exc)[:120])
                break
            except p.ProtocolError as exc:
                code = TOO_LARGE if "at most" in str(exc) or "size limit" in str(exc) else MALFORMED
                await ws.close(code, str(exc)[:120])
                break
            except Exception as exc:  # a malformed update: only this connection goes
                log.info("closing designer connection: %s", exc)
                await ws.close(MALFORMED, "malformed update")
                break
    except WebSocketDisconnect:
        pass
    finally:
        watcher.cancel()
        conn.closed = True
        await room.leave(conn)


async def _recheck(platform: Any, token: str, resource: Resource, conn: Connection) -> None:
    """A socket outlives the checks made when it opened: ask them again every second, so a
    revoked token, a disabled, demoted or signed-out user, or a policy that no longer lets
    them in loses the room as soon as their next HTTP request would be refused."""
    while not conn.closed:
        await asyncio.sleep(RECHECK_SECONDS)
        try:
            principal = await platform.authentication.authenticate(token)
            authorize(platform.authorizer, principal, "draft.read", resource)
        except PlinthError as exc:
            code = UNAUTHENTICATED if exc.status == 401 else FORBIDDEN
            conn.closed = True
            await conn.close(code, exc.detail[:120])
            return
        conn.can_edit = platform.authorizer.decide(principal, "draft.edit", resource).allowed


@router.get("/api/t/{tenant}/apps/{app}/draft/history")
async def draft_history(
    app: str, platform: PlatformDep, principal: PrincipalDep, tenant: TenantDep, limit: int = 100
) -> dict[str, Any]:
    """Who changed what in the draft, newest first (from the designer's update log)."""
    require(platform, principal, "draft.read", tenant, "app", app)
    changes = await platform.designer.history(tenant, app, max(1, min(limit, 1000)))
    return {
        "items": [
            {
                "id": c.id,
                "author": c.author,
                "size": c.size,
                "paths": c.summary,
                "at": c.at.isoformat(),
            }
            for c in changes
        ]
    }


@router.get("/api/t/{tenant}/apps/{app}/draft/diagnostics")
async def draft_diagnostics(
    app: str, platform: PlatformDep, principal: PrincipalDep, tenant: TenantDep
) -> dict[str, Any]:
    """Faults of the merged live draft (the CRDT may hold a draft REST refused)."""
    require(platform, principal, "draft.read", tenant, "app", app)
    room = await platform.designer.room(tenant, app)
    return {"valid": not room.diagnostics, "diagnostics": room.diagnostics}


@router.get("/api/t/{tenant}/apps/{app}/draft/access")
async def draft_access(
    app: str, platform: PlatformDep, principal: PrincipalDep, tenant: TenantDep
) -> dict[str, Any]:
    """Whether the caller may edit the draft (the IDE shows read-only otherwise)."""
    require(platform, principal, "draft.read", tenant, "app", app)
    resource = Resource("app", app, tenant.id)
    return {
        "can_edit": platform.authorizer.decide(principal, "draft.edit", resource).allowed,
        "name": principal.audit_name(),
    }


# The web IDE, built by `npm --prefix web ci && npm --prefix web run build` (not committed).
WEB_DIST = Path(
    os.environ.get("PLINTH_WEB_DIST") or Path(__file__).resolve().parents[3] / "web" / "dist"
)


class _WebRoute(APIRoute):
    """Never claims an /api path, whatever order routers are mounted in."""

    def matches(self, scope: Any) -> tuple[Match, Any]:
        if str(scope.get("path", "")).startswith("/api/"):
            return Match.NONE, {}
        return super().matches(scope)


def web_ide(path: str) -> FileResponse:
    """Serve the built web IDE; unknown paths get index.html (client-side routes)."""
    if not (WEB_DIST / "index.html").exists():
        raise NotFound("Not found (the web IDE is not built)", path="path")
    target = (WEB_DIST / path).resolve()
    if path and target.is_file() and WEB_DIST.resolve() in target.parents:
        return FileResponse(target)
    return FileResponse(WEB_DIST / "index.html")


# Mounted after every other router (see server/app.py): it answers any other GET path.
web_router = APIRouter()
web_router.add_api_route(
    "/{path:path}",
    web_ide,
    methods=["GET"],
    include_in_schema=False,
    route_class_override=_WebRoute,
)
