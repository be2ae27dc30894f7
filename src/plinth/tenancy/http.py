"""The tenancy layer's request dependency: the tenant named in the path."""

from __future__ import annotations

from typing import Annotated, Protocol

from fastapi import Depends

from plinth.errors import Forbidden, NotFound
from plinth.governance.http import PrincipalDep
from plinth.governance.principal import Principal
from plinth.http import composed
from plinth.tenancy.models import Tenant
from plinth.tenancy.service import TenantService


class Tenants(Protocol):
    """The part of the composition root that finds tenants."""

    @property
    def tenants(self) -> TenantService: ...


async def get_tenant(
    tenant: str, root: Annotated[Tenants, Depends(composed)], principal: PrincipalDep
) -> Tenant:
    """The tenant named in the path, if the caller belongs to it (else 403; unknown: 404)."""
    return await resolve_tenant(root.tenants, tenant, principal)


async def resolve_tenant(tenants: TenantService, slug: str, principal: Principal) -> Tenant:
    """The tenant `slug` names, if `principal` belongs to it (else 403; unknown: 404). Every
    route that takes a tenant from its path decides through this (the lean read route too)."""
    found = await tenants.find(slug)
    if found is None:
        if principal.is_platform_admin:
            raise NotFound(f"No tenant named {slug!r}", path="tenant")
        # A tenant-bound caller learns nothing about which other tenants exist.
        raise Forbidden(f"This credential has no access to tenant {slug!r}", path="tenant")
    principal.check_tenant(found.id, found.slug)
    return found


TenantDep = Annotated[Tenant, Depends(get_tenant)]
