"""HTTP routes for tenants."""

from __future__ import annotations

from typing import Annotated, Any, Protocol

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from plinth.errors import Forbidden
from plinth.governance.http import PrincipalDep
from plinth.http import composed
from plinth.tenancy.http import TenantDep
from plinth.tenancy.regions import Regions
from plinth.tenancy.service import TenantService


class Services(Protocol):
    """What these routes use of the composition root (server/platform.py provides it)."""

    regions: Regions
    tenants: TenantService


PlatformDep = Annotated[Services, Depends(composed)]

router = APIRouter(prefix="/api", tags=["tenants"])


class TenantIn(BaseModel):
    slug: str = Field(description="2-40 lower-case letters, digits or '-'")
    name: str | None = None
    region: str = "default"
    settings: dict[str, Any] = Field(default_factory=dict)


@router.post("/tenants", status_code=201)
async def create_tenant(body: TenantIn, platform: PlatformDep, principal: PrincipalDep) -> dict:
    """Create a tenant (platform admins only)."""
    if not principal.is_platform_admin:
        raise Forbidden("Only platform admins create tenants", extra={"action": "tenant.create"})
    platform.regions.get(body.region)  # an unknown region is refused with its path
    tenant = await platform.tenants.create(
        body.slug, body.name, region=body.region, settings=body.settings
    )
    return tenant.public()


@router.get("/tenants")
async def list_tenants(platform: PlatformDep, principal: PrincipalDep) -> dict:
    """The tenants the caller may see: all for a platform admin, else its own."""
    ids = None if principal.is_platform_admin else {principal.tenant_id or ""}
    return {"items": [t.public() for t in await platform.tenants.list(ids)]}


@router.get("/t/{tenant}")
async def get_tenant(tenant: TenantDep) -> dict:
    """One tenant."""
    return tenant.public()
