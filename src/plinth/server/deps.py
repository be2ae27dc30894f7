"""FastAPI dependencies every layer's router uses: the platform, the caller, the tenant."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from plinth.errors import Forbidden, NotFound, Unauthenticated
from plinth.governance.access import Resource, authorize
from plinth.governance.principal import Principal
from plinth.server.platform import Platform
from plinth.tenancy.models import Tenant


async def get_platform(request: Request) -> Platform:
    # async: FastAPI runs a plain function dependency on a worker thread, a hop per request
    platform: Platform = request.app.state.platform
    return platform


PlatformDep = Annotated[Platform, Depends(get_platform)]


async def get_principal(request: Request, platform: PlatformDep) -> Principal:
    """The authenticated caller, from `Authorization: Bearer …`."""
    cached = getattr(request.state, "principal", None)
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated()
    principal = await authenticate(platform, token.strip())
    request.state.principal = principal
    return principal


async def authenticate(platform: Platform, token: str) -> Principal:
    """The caller a bearer token names: a login JWT or an API token (every door uses this)."""
    if token.count(".") == 2:  # a JWT access token from login; API keys have no dots
        return platform.governance.identity.authenticate(token)
    return await platform.tokens.authenticate(token)  # type: ignore[no-any-return]


PrincipalDep = Annotated[Principal, Depends(get_principal)]


async def get_tenant(tenant: str, platform: PlatformDep, principal: PrincipalDep) -> Tenant:
    """The tenant named in the path, if the caller belongs to it (else 403; unknown: 404)."""
    found = await platform.tenants.find(tenant)
    if found is None:
        if principal.is_platform_admin:
            raise NotFound(f"No tenant named {tenant!r}", path="tenant")
        # A tenant-bound caller learns nothing about which other tenants exist.
        raise Forbidden(f"This credential has no access to tenant {tenant!r}", path="tenant")
    principal.check_tenant(found.id, found.slug)
    return found


TenantDep = Annotated[Tenant, Depends(get_tenant)]


def require(
    platform: Platform,
    principal: Principal,
    action: str,
    tenant: Tenant,
    kind: str = "app",
    ident: str = "",
) -> None:
    """Authorize `action` on a resource of `tenant` or raise 403."""
    authorize(
        platform.authorizer,
        principal,
        action,
        Resource(kind, ident or tenant.slug, tenant_id=tenant.id),
    )
