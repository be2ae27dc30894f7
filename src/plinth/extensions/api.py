"""HTTP routes: the registry (`/api/plugins`) and per-tenant plugins (`/api/t/{tenant}/plugins`)."""

from __future__ import annotations

from typing import Annotated, Any, Protocol

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, Field

from plinth.errors import NotFound
from plinth.extensions.service import PluginService
from plinth.governance.access import Authorizer, Resource, authorize
from plinth.governance.http import PrincipalDep
from plinth.http import composed
from plinth.tenancy.http import TenantDep


class Services(Protocol):
    """What these routes use of the composition root (server/platform.py provides it)."""

    authorizer: Authorizer
    plugins: PluginService


PlatformDep = Annotated[Services, Depends(composed)]

router = APIRouter(tags=["plugins"])


class GrantIn(BaseModel):
    capabilities: list[str] = Field(
        default_factory=list, description="Capabilities the tenant admin approves"
    )
    http_hosts: list[str] = Field(default_factory=list, description="Hosts `http` may reach")


class InstallIn(BaseModel):
    name: str
    version: str | None = Field(None, description="Default: the latest published")
    grant: GrantIn = Field(default_factory=GrantIn)
    pinned: bool = False


class UpgradeIn(BaseModel):
    version: str | None = None
    grant: GrantIn | None = Field(
        None, description="A new approval, needed when the new version asks for more"
    )


class PinIn(BaseModel):
    pinned: bool = True


class LimitsIn(BaseModel):
    point: str = Field(description="action | before-write")
    limits: dict[str, int]


@router.post("/api/plugins", status_code=201)
async def publish(
    request: Request, platform: PlatformDep, principal: PrincipalDep
) -> dict[str, Any]:
    """Publish a plugin package (a zip: plinth-plugin.toml, plugin.wasm, signature.json).

    The body may be up to `plugin_max_package_bytes` (default 64 MB), not the 1 MB of others.
    """
    # Checked before the (large) body is read: only publishers get to upload megabytes.
    authorize(platform.authorizer, principal, "plugin.publish", Resource("plugin", "*"))
    version = await platform.plugins.publish(await request.body(), principal)
    return version.as_dict()


class KeyIn(BaseModel):
    public_key: str = Field(pattern="^[0-9a-f]{64}$", description="hex raw ed25519 public key")
    signature: str = Field(
        pattern="^[0-9a-f]{128}$",
        description="hex signature, by the new key, of 'plinth-plugin-key\\n{name}\\n{public_key}'",
    )
    reason: str = Field(min_length=1, max_length=500, description="why (kept in the audit log)")


@router.get("/api/plugins/{name}/key")
async def signing_key(name: str, platform: PlatformDep, principal: PrincipalDep) -> dict[str, Any]:
    """The key every version of this plugin must be signed with (pinned by its first signed
    version)."""
    found = await platform.plugins.signing_key(name)
    if found is None:
        raise NotFound(f"{name} has no signed version, so no pinned key", path="name")
    return found


@router.put("/api/plugins/{name}/key")
async def rotate_key(
    name: str, body: KeyIn, platform: PlatformDep, principal: PrincipalDep
) -> dict[str, Any]:
    """Rotate the pinned signing key (platform admins; audited). Later versions must be signed
    with the new key."""
    return await platform.plugins.rotate_key(
        name, body.public_key, body.signature, body.reason, principal
    )


@router.get("/api/plugins")
async def registry(
    platform: PlatformDep, principal: PrincipalDep, name: str | None = None
) -> list[dict[str, Any]]:
    """Published plugin versions."""
    return [v.as_dict() for v in await platform.plugins.versions(name)]


@router.get("/api/t/{tenant}/plugins")
async def installed(
    tenant: TenantDep, platform: PlatformDep, principal: PrincipalDep
) -> list[dict[str, Any]]:
    """Plugins installed in this tenant, with their grants."""
    return [i.as_dict() for i in await platform.plugins.installations(tenant)]


@router.post("/api/t/{tenant}/plugins", status_code=201)
async def install(
    body: InstallIn, tenant: TenantDep, platform: PlatformDep, principal: PrincipalDep
) -> dict[str, Any]:
    """Install a plugin version, approving the capabilities it requests."""
    inst = await platform.plugins.install(
        tenant,
        body.name,
        principal,
        version=body.version,
        capabilities=body.grant.capabilities,
        http_hosts=body.grant.http_hosts,
        pinned=body.pinned,
    )
    return inst.as_dict()


@router.post("/api/t/{tenant}/plugins/{name}/upgrade")
async def upgrade(
    name: str, body: UpgradeIn, tenant: TenantDep, platform: PlatformDep, principal: PrincipalDep
) -> dict[str, Any]:
    """Upgrade to another version (412 when it asks for more than the grant)."""
    grant = body.grant
    inst = await platform.plugins.upgrade(
        tenant,
        name,
        principal,
        version=body.version,
        capabilities=grant.capabilities if grant else None,
        http_hosts=grant.http_hosts if grant else None,
    )
    return inst.as_dict()


@router.put("/api/t/{tenant}/plugins/{name}/grant")
async def grant(
    name: str, body: GrantIn, tenant: TenantDep, platform: PlatformDep, principal: PrincipalDep
) -> dict[str, Any]:
    """Change the approved capabilities and hosts (412 if less than the version requests)."""
    inst = await platform.plugins.grant(tenant, name, principal, body.capabilities, body.http_hosts)
    return inst.as_dict()


@router.put("/api/t/{tenant}/plugins/{name}/pin")
async def pin(
    name: str, body: PinIn, tenant: TenantDep, platform: PlatformDep, principal: PrincipalDep
) -> dict[str, Any]:
    """Pin or unpin the installed version."""
    return (await platform.plugins.pin(tenant, name, principal, body.pinned)).as_dict()


@router.put("/api/t/{tenant}/plugins/{name}/limits")
async def limits(
    name: str, body: LimitsIn, tenant: TenantDep, platform: PlatformDep, principal: PrincipalDep
) -> dict[str, Any]:
    """Override an extension point's limits for this tenant, within the platform maxima."""
    inst = await platform.plugins.set_limits(tenant, name, body.point, body.limits, principal)
    return inst.as_dict()


@router.delete("/api/t/{tenant}/plugins/{name}", status_code=204)
async def uninstall(
    name: str, tenant: TenantDep, platform: PlatformDep, principal: PrincipalDep
) -> Response:
    """Uninstall a plugin (its kv data goes with it)."""
    await platform.plugins.uninstall(tenant, name, principal)
    return Response(status_code=204)


@router.post("/api/t/{tenant}/plugins/{name}/actions/{action}")
async def call_action(
    name: str,
    action: str,
    body: dict[str, Any],
    tenant: TenantDep,
    platform: PlatformDep,
    principal: PrincipalDep,
) -> dict[str, Any]:
    """Call a plugin action with a JSON object; returns the action's output."""
    return await platform.plugins.call_action(tenant, name, action, body, principal)


@router.get("/api/t/{tenant}/plugins/metering")
async def metering(
    tenant: TenantDep, platform: PlatformDep, principal: PrincipalDep, limit: int = 100
) -> dict[str, Any]:
    """Recent plugin calls of this tenant and totals per plugin."""
    authorize(
        platform.authorizer,
        principal,
        "tenant.read",
        Resource("tenant", tenant.slug, tenant_id=tenant.id),
    )
    return await platform.plugins.metering(tenant, min(max(limit, 1), 1000))
