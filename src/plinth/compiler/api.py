"""HTTP routes of the compiler: the app's OpenAPI document, and any registered target's
artifact of the active version. Both go through the one artifact cache."""

from __future__ import annotations

from typing import Annotated, Protocol

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse

from plinth.compiler.cache import ArtifactCache
from plinth.compiler.targets import TARGETS, AppVersion, Artifact
from plinth.errors import NotFound
from plinth.governance.access import Authorizer
from plinth.governance.http import PrincipalDep, require
from plinth.http import composed
from plinth.metadata.service import MetadataService
from plinth.tenancy.http import TenantDep
from plinth.tenancy.models import Tenant


class Services(Protocol):
    """What these routes use of the composition root (server/platform.py provides it)."""

    authorizer: Authorizer
    metadata: MetadataService
    artifacts: ArtifactCache


PlatformDep = Annotated[Services, Depends(composed)]

router = APIRouter(prefix="/api/t/{tenant}/apps/{app}", tags=["compiler"])


async def _compiled(platform: Services, tenant: Tenant, app: str, target: str) -> Artifact:
    """The active version of `app` compiled by `target` (from the cache after the first time)."""
    found = await platform.metadata.get_app(tenant, app)
    version = await platform.metadata.active_version(tenant, app)
    if version is None:
        raise NotFound(f"App {app!r} has no published version yet", path="app")
    compiler = TARGETS.get(target)
    if compiler is None:
        raise NotFound(f"No compile target {target!r}", path="target")
    return platform.artifacts.get(
        AppVersion(tenant.slug, app, found.name, version.number, version.hash, version.definition),
        compiler,
    )


@router.get("/openapi.json", response_class=JSONResponse)
async def openapi_document(
    app: str, tenant: TenantDep, platform: PlatformDep, principal: PrincipalDep
) -> Response:
    """The OpenAPI 3.1 document of the app's active version."""
    require(platform, principal, "app.read", tenant, ident=app)
    art = await _compiled(platform, tenant, app, "openapi")
    return Response(art.body, media_type=art.media_type)


@router.get("/compiled/{target}", response_class=Response)
async def compiled(
    app: str,
    target: str,
    request: Request,
    tenant: TenantDep,
    platform: PlatformDep,
    principal: PrincipalDep,
) -> Response:
    """The active version compiled by a registered target (`GET /api/palette` lists them):
    the React project as a zip, the Web Components module, the OpenAPI document."""
    require(platform, principal, "app.read", tenant, ident=app)
    art = await _compiled(platform, tenant, app, target)
    headers = {"ETag": art.etag, "Cache-Control": "private, no-cache"}
    if request.headers.get("if-none-match") == art.etag:
        return Response(status_code=304, headers=headers)
    if art.media_type == "application/zip":
        headers["Content-Disposition"] = f'attachment; filename="{app}-{target}.zip"'
    return Response(art.body, media_type=art.media_type, headers=headers)
