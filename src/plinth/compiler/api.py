"""HTTP routes of the compiler: the app's OpenAPI document."""

from __future__ import annotations

from collections import OrderedDict
from typing import Annotated, Any, Protocol

from fastapi import APIRouter, Depends

from plinth.compiler.targets import openapi
from plinth.errors import NotFound
from plinth.governance.access import Authorizer
from plinth.governance.http import PrincipalDep, require
from plinth.http import composed
from plinth.metadata.service import MetadataService
from plinth.tenancy.http import TenantDep


class Services(Protocol):
    """What these routes use of the composition root (server/platform.py provides it)."""

    authorizer: Authorizer
    metadata: MetadataService


PlatformDep = Annotated[Services, Depends(composed)]

router = APIRouter(prefix="/api/t/{tenant}/apps/{app}", tags=["compiler"])

# Compiled once per version hash, served many times.
_cache: OrderedDict[tuple[str, str, str], dict[str, Any]] = OrderedDict()
CACHE_SIZE = 256


@router.get("/openapi.json")
async def openapi_document(
    app: str, tenant: TenantDep, platform: PlatformDep, principal: PrincipalDep
) -> dict[str, Any]:
    """The OpenAPI 3.1 document of the app's active version."""
    require(platform, principal, "app.read", tenant, ident=app)
    found = await platform.metadata.get_app(tenant, app)
    version = await platform.metadata.active_version(tenant, app)
    if version is None:
        raise NotFound(f"App {app!r} has no published version yet", path="app")
    key = (tenant.slug, app, f"{version.number}:{version.hash}")
    doc = _cache.get(key)
    if doc is None:
        doc = openapi.build(tenant.slug, app, version.number, version.definition, found.name)
        _cache[key] = doc
        if len(_cache) > CACHE_SIZE:
            _cache.popitem(last=False)
    return doc
