"""HTTP routes of the integration layer: secrets (write-only), connectors, webhooks, gateway
settings, custom domains and the marketplace."""

from __future__ import annotations

from typing import Annotated, Any, Protocol

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, Field

from plinth.errors import BadRequest, Forbidden, NotFound
from plinth.governance.access import Authorizer
from plinth.governance.http import PrincipalDep, require
from plinth.http import composed
from plinth.integration.quotas import Quotas
from plinth.integration.service import ConnectorService
from plinth.integration.vault import Vault, check_name
from plinth.metadata.service import MetadataService
from plinth.tenancy.http import TenantDep
from plinth.tenancy.service import TenantService


class Services(Protocol):
    """What these routes use of the composition root (server/platform.py provides it)."""

    authorizer: Authorizer
    connectors: ConnectorService
    metadata: MetadataService
    quotas: Quotas
    tenants: TenantService
    vault: Vault


PlatformDep = Annotated[Services, Depends(composed)]

router = APIRouter(tags=["integration"])
T = "/api/t/{tenant}"


class CallIn(BaseModel):
    operation: str = Field(min_length=1, max_length=100)
    input: dict[str, Any] = Field(default_factory=dict)


class OpenApiIn(BaseModel):
    document: dict[str, Any] | None = None
    url: str | None = None
    base_url: str | None = None


class DomainIn(BaseModel):
    host: str


# -- secrets ----------------------------------------------------------------------------------


@router.put(T + "/secrets/{name}")
async def put_secret(
    name: str, request: Request, tenant: TenantDep, platform: PlatformDep, principal: PrincipalDep
) -> dict:
    """Store or replace a secret. The value is write-only: no endpoint ever returns it."""
    require(platform, principal, "token.manage", tenant, "secret", check_name(name))
    # Parsed by hand so a malformed body's validation error cannot echo the value.
    try:
        body = await request.json()
    except ValueError:
        body = None
    value = body.get("value") if isinstance(body, dict) else None
    if not isinstance(value, str) or not value:
        raise BadRequest('Send {"value": "…"} with a non-empty string', path="value")
    info = await platform.vault.put(tenant.id, name, value, by=principal.audit_name())
    return info.public()


@router.get(T + "/secrets")
async def list_secrets(tenant: TenantDep, platform: PlatformDep, principal: PrincipalDep) -> dict:
    """The tenant's secrets: names and dates, never values."""
    require(platform, principal, "token.manage", tenant, "secret")
    return {"items": [s.public() for s in await platform.vault.list(tenant.id)]}


@router.delete(T + "/secrets/{name}", status_code=204)
async def delete_secret(
    name: str, tenant: TenantDep, platform: PlatformDep, principal: PrincipalDep
) -> Response:
    """Forget a secret."""
    require(platform, principal, "token.manage", tenant, "secret", name)
    await platform.vault.delete(tenant.id, name, by=principal.audit_name())
    return Response(status_code=204)


@router.post(T + "/vault/rotate")
async def rotate_tenant_key(
    tenant: TenantDep, platform: PlatformDep, principal: PrincipalDep
) -> dict:
    """Give the tenant a new data key and re-encrypt its secrets with it."""
    require(platform, principal, "token.manage", tenant, "secret")
    version = await platform.vault.rotate_tenant_key(tenant.id, by=principal.audit_name())
    return {"key_version": version}


# -- connectors -------------------------------------------------------------------------------


@router.get(T + "/apps/{app}/connectors")
async def list_connectors(
    app: str, tenant: TenantDep, platform: PlatformDep, principal: PrincipalDep
) -> dict:
    """The connectors of the app's active version, with their operations."""
    require(platform, principal, "app.read", tenant, ident=app)
    await platform.metadata.get_app(tenant, app)
    from plinth.integration import connectors

    items = []
    for name, doc in (await platform.connectors.connectors_of(tenant, app)).items():
        kind = connectors.get(doc.get("kind", ""))
        items.append(
            {
                "name": name,
                "kind": doc.get("kind"),
                "operations": kind.operations(doc) if kind else {},
            }
        )
    return {"items": items}


@router.post(T + "/apps/{app}/connectors/{name}/call")
async def call_connector(
    app: str,
    name: str,
    body: CallIn,
    tenant: TenantDep,
    platform: PlatformDep,
    principal: PrincipalDep,
) -> dict:
    """Call an operation of a published connector (policy `connector.call`, audited)."""
    return await platform.connectors.call(tenant, app, name, body.operation, body.input, principal)


@router.post(T + "/apps/{app}/connectors/{name}/openapi")
async def import_openapi(
    app: str,
    name: str,
    body: OpenApiIn,
    tenant: TenantDep,
    platform: PlatformDep,
    principal: PrincipalDep,
) -> dict:
    """Import an OpenAPI document into the draft as http connector `name`."""
    require(platform, principal, "draft.edit", tenant, ident=app)
    return await platform.connectors.import_openapi(
        tenant, app, name, body.document, body.url, body.base_url, principal
    )


@router.get(T + "/apps/{app}/connectors/{name}/deliveries")
async def list_deliveries(
    app: str, name: str, tenant: TenantDep, platform: PlatformDep, principal: PrincipalDep
) -> dict:
    """The delivery log of an outgoing webhook, newest first."""
    require(platform, principal, "app.read", tenant, ident=app)
    deliveries = await platform.connectors.webhooks.log(tenant.id, app, name)
    return {"items": [d.public() for d in deliveries]}


@router.post(T + "/apps/{app}/connectors/{name}/deliveries/{delivery}/redeliver")
async def redeliver(
    app: str,
    name: str,
    delivery: str,
    tenant: TenantDep,
    platform: PlatformDep,
    principal: PrincipalDep,
) -> dict:
    """Send a logged delivery again, freshly signed."""
    from plinth.governance.access import Resource, authorize

    authorize(
        platform.authorizer,
        principal,
        "connector.call",
        Resource("connector", name, tenant.id, {"app": app}),
    )
    found = await platform.connectors.webhooks.redeliver(tenant, app, name, delivery)
    return found.public()


@router.post(T + "/apps/{app}/hooks/{name}", status_code=202)
async def receive_webhook(
    tenant: str, app: str, name: str, request: Request, platform: PlatformDep
) -> dict:
    """An incoming webhook: authenticated by its signature, not by a bearer token."""
    found = await platform.tenants.find(tenant)
    if found is None:
        raise NotFound("No such webhook endpoint", path="tenant")
    body = await request.body()
    headers = {k.lower(): v for k, v in request.headers.items()}
    delivery = await platform.connectors.webhooks.receive(found, app, name, headers, body)
    return {"accepted": True, "delivery": delivery}


# -- gateway settings and domains ---------------------------------------------------------------


@router.get(T + "/gateway")
async def get_gateway(tenant: TenantDep, platform: PlatformDep, principal: PrincipalDep) -> dict:
    """The tenant's limits, quotas and time limit (as set; defaults apply to the rest)."""
    require(platform, principal, "tenant.read", tenant, "tenant")
    gateway = platform.quotas.gateway
    return {"settings": await gateway.get(tenant.id, "tenant"), "defaults": gateway.defaults}


@router.put(T + "/gateway")
async def put_gateway(
    body: dict[str, Any], tenant: TenantDep, platform: PlatformDep, principal: PrincipalDep
) -> dict:
    """Set the tenant's limits and quotas (platform admins only: tenants do not raise their
    own quotas)."""
    if not principal.is_platform_admin:
        raise Forbidden("Only a platform admin sets a tenant's limits", path="tenant")
    return {"settings": await platform.quotas.gateway.put(tenant.id, "tenant", body)}


@router.get(T + "/gateway/apps/{app}")
async def get_app_gateway(
    app: str, tenant: TenantDep, platform: PlatformDep, principal: PrincipalDep
) -> dict:
    """An app's CORS, limits and time limit."""
    require(platform, principal, "app.read", tenant, ident=app)
    return {"settings": await platform.quotas.gateway.get(tenant.id, f"app:{app}")}


@router.put(T + "/gateway/apps/{app}")
async def put_app_gateway(
    app: str,
    body: dict[str, Any],
    tenant: TenantDep,
    platform: PlatformDep,
    principal: PrincipalDep,
) -> dict:
    """Set an app's CORS, limits and time limit."""
    require(platform, principal, "draft.edit", tenant, ident=app)
    await platform.metadata.get_app(tenant, app)
    return {"settings": await platform.quotas.gateway.put(tenant.id, f"app:{app}", body)}


@router.get(T + "/domains")
async def list_domains(tenant: TenantDep, platform: PlatformDep, principal: PrincipalDep) -> dict:
    """The custom host names that serve this tenant."""
    require(platform, principal, "tenant.read", tenant, "tenant")
    return {"items": await platform.quotas.gateway.domains(tenant.id)}


@router.post(T + "/domains", status_code=201)
async def add_domain(
    body: DomainIn, tenant: TenantDep, platform: PlatformDep, principal: PrincipalDep
) -> dict:
    """Serve this tenant at a custom host name (platform admins: it claims a name)."""
    if not principal.is_platform_admin:
        raise Forbidden("Only a platform admin maps host names", path="host")
    return {"host": await platform.quotas.gateway.add_domain(tenant.id, body.host)}


@router.delete(T + "/domains/{host}", status_code=204)
async def remove_domain(
    host: str, tenant: TenantDep, platform: PlatformDep, principal: PrincipalDep
) -> Response:
    """Stop serving this tenant at a host name."""
    if not principal.is_platform_admin:
        raise Forbidden("Only a platform admin maps host names", path="host")
    if not await platform.quotas.gateway.remove_domain(tenant.id, host):
        raise NotFound(f"Host {host!r} does not serve this tenant", path="host")
    return Response(status_code=204)


# -- marketplace ------------------------------------------------------------------------------


@router.get("/api/marketplace")
async def marketplace(
    platform: PlatformDep, principal: PrincipalDep, tenant: str | None = None
) -> dict:
    """Connector kinds and published plugins; with `?tenant=`, that tenant's installed set."""
    body: dict[str, Any] = {
        "connector_kinds": platform.connectors.kinds(),
        "plugins": await _plugins(platform, "published", None),
    }
    if tenant is not None:
        found = await platform.tenants.find(tenant)
        if found is None:
            raise (NotFound if principal.is_platform_admin else Forbidden)(
                f"No access to tenant {tenant!r}", path="tenant"
            )
        principal.check_tenant(found.id, found.slug)
        body["installed"] = {
            "connectors": await platform.connectors.installed(found),
            "plugins": await _plugins(platform, "installed", found),
        }
    return body


async def _plugins(platform: Any, which: str, tenant: Any) -> list[Any]:
    """What the extensions layer exposes, if it is there (it is built in parallel)."""
    plugins = getattr(platform, "plugins", None)
    if plugins is None:
        return []
    names = (
        ("published", "list_published", "catalog", "list")
        if which == "published"
        else ("installed", "list_installed", "installations")
    )
    for name in names:
        method = getattr(plugins, name, None)
        if callable(method):
            result = method(tenant) if tenant is not None else method()
            if hasattr(result, "__await__"):
                result = await result
            return [item.public() if hasattr(item, "public") else item for item in result]
    return []
