"""HTTP routes for identity (login, refresh, users, API keys) and the audit ledger."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated, Any, Protocol

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import RedirectResponse, StreamingResponse
from pydantic import BaseModel, Field

from plinth.errors import BadRequest, Forbidden, NotFound, Unauthenticated
from plinth.governance.access import Authorizer
from plinth.governance.admin_api import _check_groups, _check_roles, invite_view
from plinth.governance.http import PrincipalDep, require
from plinth.governance.oidc import OIDCConfig, map_claims
from plinth.governance.principal import PLATFORM_ADMIN
from plinth.governance.service import Governance
from plinth.governance.tokens import TokenService
from plinth.http import composed
from plinth.tenancy.http import TenantDep
from plinth.tenancy.models import Tenant
from plinth.tenancy.service import TenantService


class Services(Protocol):
    """What these routes use of the composition root (server/platform.py provides it)."""

    authorizer: Authorizer
    governance: Governance
    tenants: TenantService
    tokens: TokenService


PlatformDep = Annotated[Services, Depends(composed)]

router = APIRouter(prefix="/api/t/{tenant}", tags=["identity"])
public = APIRouter(prefix="/api/auth/{tenant}", tags=["identity"])


class TokenIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    role: str = Field(
        pattern=r"^[a-z][a-z0-9_]{1,39}$",
        description="owner, designer, analyst, viewer or a tenant-defined role",
    )
    expires_at: datetime | None = None


@router.post("/tokens", status_code=201)
async def issue_token(
    body: TokenIn, tenant: TenantDep, platform: PlatformDep, principal: PrincipalDep
) -> dict:
    """Issue an API token bound to this tenant and a role. The secret is shown only here."""
    require(platform, principal, "token.manage", tenant, "tenant")
    if body.role == PLATFORM_ADMIN:  # tenant keys never carry platform powers
        raise BadRequest(f"Role {body.role!r} cannot be given to a tenant key", path="role")
    issued = await platform.tokens.issue(
        body.name,
        body.role,
        tenant_id=tenant.id,
        expires_at=body.expires_at,
        audit=platform.governance.audit.by(tenant.id, principal.audit_name()),
    )
    return {"id": issued.id, "token": issued.token, "name": issued.name, "role": issued.role}


@router.delete("/tokens/{token_id}", status_code=204)
async def revoke_token(
    token_id: str, tenant: TenantDep, platform: PlatformDep, principal: PrincipalDep
) -> Response:
    """Revoke a token of this tenant; it stops working at once."""
    require(platform, principal, "token.manage", tenant, "tenant")
    audit = platform.governance.audit.by(tenant.id, principal.audit_name())
    if not await platform.tokens.revoke(token_id, tenant_id=tenant.id, audit=audit):
        raise NotFound(f"No active token {token_id!r} in this tenant", path="token_id")
    return Response(status_code=204)


class UserIn(BaseModel):
    username: str = Field(min_length=1, max_length=200)
    password: str | None = Field(default=None, min_length=8, max_length=1000)
    roles: list[Any] = Field(min_length=1, description="built-in or tenant-defined roles")
    groups: list[Any] = []
    attrs: dict[str, str] = {}


@router.post("/users", status_code=201)
async def create_user(
    body: UserIn, tenant: TenantDep, platform: PlatformDep, principal: PrincipalDep
) -> dict:
    """Add a user (built-in or tenant-defined roles, groups, attributes such as country).

    Without a password the user is invited: the answer carries a one-time link (24 h) with
    which they set their own."""
    require(platform, principal, "user.manage", tenant, "tenant")
    roles = _check_roles(body.roles)
    groups = _check_groups(body.groups)
    user = await platform.governance.identity.create_user(
        tenant.id,
        body.username,
        body.password,
        roles=roles,
        groups=groups,
        attrs=body.attrs,
        audit=platform.governance.audit.by(tenant.id, principal.audit_name()),
    )
    invite = None
    if body.password is None:
        token = await platform.governance.directory.password_token(tenant.id, user.id, "invite")
        invite = invite_view(tenant, token)
    created = (await platform.governance.directory.get(tenant.id, user.id)).public()
    return created | ({"invite": invite} if invite else {})


class PasswordIn(BaseModel):
    token: str = Field(min_length=1, max_length=200)
    password: str = Field(min_length=8, max_length=1000)


@public.post(
    "/password",
    status_code=204,
    responses={401: {"description": "The link is unknown, used or expired"}},
)
async def set_password(body: PasswordIn, tenant: str, platform: PlatformDep) -> Response:
    """Accept an invite or a password reset: set the password its one-time link allows."""
    found = await platform.tenants.find(tenant)
    if found is None:
        raise Unauthenticated("This link is not valid any more; ask for a new one")
    audit = platform.governance.audit.by(found.id, None)  # the link's holder, once known
    await platform.governance.directory.set_password(found.id, body.token, body.password, audit)
    return Response(status_code=204)


class LoginIn(BaseModel):
    username: str = Field(min_length=1, max_length=200)
    password: str = Field(min_length=1, max_length=1000)


class RefreshIn(BaseModel):
    refresh_token: str = Field(min_length=1, max_length=200)


@public.post("/login")
async def login(body: LoginIn, tenant: str, request: Request, platform: PlatformDep) -> dict:
    """Password login: a short-lived access token (JWT) and a refresh token (throttled:
    429 + Retry-After after too many attempts per username or client address)."""
    from plinth.governance.login import password_login

    client = request.client.host if request.client else None
    _, session = await password_login(platform, tenant, body.username, body.password, client)
    return session.__dict__


async def _auth_tenant(platform: Any, tenant: str) -> Tenant:
    """The tenant an auth endpoint names; unknown is the same 401 as a wrong credential."""
    found = await platform.tenants.find(tenant)
    if found is None:
        raise Unauthenticated("The refresh token is not valid")
    return found  # type: ignore[no-any-return]


@public.post("/refresh")
async def refresh(body: RefreshIn, tenant: str, platform: PlatformDep) -> dict:
    """Trade a refresh token of this tenant for a new pair (the old one stops working)."""
    found = await _auth_tenant(platform, tenant)
    return (await platform.governance.identity.refresh(body.refresh_token, found.id)).__dict__


@public.post("/logout", status_code=204)
async def logout(body: RefreshIn, tenant: str, platform: PlatformDep) -> Response:
    """Revoke a refresh token of this tenant; access tokens issued until then stop working."""
    found = await _auth_tenant(platform, tenant)
    await platform.governance.sign_out(found.id, body.refresh_token)
    return Response(status_code=204)


def _instant(value: datetime | None, path: str) -> datetime | None:
    """A time every database can compare with (PostgreSQL refuses years past 9999 in UTC)."""
    if value is None or value.tzinfo is None:
        return value
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise BadRequest(f"{value.isoformat()} is out of range", path=path) from None


@router.get(
    "/audit",
    responses={
        200: {
            "description": "A page of events, or every event as JSON lines (format=jsonl)",
            "content": {"application/x-ndjson": {"schema": {"type": "string"}}},
        }
    },
)
async def list_audit(
    tenant: TenantDep,
    platform: PlatformDep,
    principal: PrincipalDep,
    actor: str | None = None,
    action: str | None = None,
    resource: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    cursor: int = Query(0, ge=0, le=2**63 - 1),  # an event number (a 64-bit column)
    limit: int = Query(100, ge=1, le=1000),
    format: str = Query("json", pattern="^(json|jsonl)$"),
    order: str = Query("asc", pattern="^(asc|desc)$", description="desc: newest first"),
) -> Any:
    """Audit events of this tenant (filters, cursor pagination; `format=jsonl` exports all)."""
    require(platform, principal, "audit.read", tenant, "tenant")
    ledger = platform.governance.audit
    filters: dict[str, Any] = dict(
        actor=actor,
        action=action,
        resource=resource,
        since=_instant(since, "since"),
        until=_instant(until, "until"),
    )
    if format == "jsonl":

        async def lines() -> AsyncIterator[bytes]:
            after = cursor
            while True:
                page = await ledger.list(tenant.id, after=after, limit=1000, **filters)
                for event in page:
                    yield (json.dumps(event, default=str) + "\n").encode()
                if len(page) < 1000:
                    return
                after = page[-1]["n"]

        return StreamingResponse(lines(), media_type="application/x-ndjson")
    newest_first = order == "desc"
    events = await ledger.list(
        tenant.id, after=cursor, limit=limit, newest_first=newest_first, **filters
    )
    next_cursor = events[-1]["n"] if len(events) == limit else None
    return {"items": events, "next_cursor": next_cursor}


@router.get("/audit/verify")
async def verify_audit(tenant: TenantDep, platform: PlatformDep, principal: PrincipalDep) -> Any:
    """Check this tenant's chain: links, MACs, signed checkpoints and the anchor (if set)."""
    require(platform, principal, "audit.read", tenant, "tenant")
    return (await platform.governance.audit.verify(tenant.id)).public()


@public.get("/oidc/login")
async def oidc_login(tenant: str, request: Request, platform: PlatformDep) -> Response:
    """Start OpenID Connect login: redirect to the tenant's provider."""
    found = await platform.tenants.get(tenant)
    config = OIDCConfig.of(found.settings)
    callback = str(request.url_for("oidc_callback", tenant=tenant))
    url = await platform.governance.oidc.authorization_url(found.id, config, callback)
    return RedirectResponse(url, status_code=302)


@public.get("/oidc/callback", name="oidc_callback")
async def oidc_callback(tenant: str, code: str, state: str, platform: PlatformDep) -> dict:
    """Finish OpenID Connect login: verify, map claims to roles, issue our session."""
    found = await platform.tenants.get(tenant)
    config = OIDCConfig.of(found.settings)
    gov = platform.governance
    try:
        claims = await gov.oidc.complete(found.id, config, code, state)
    except Unauthenticated:
        await gov.record(found.id, None, "auth.oidc_login", outcome="failed")
        raise
    roles, attrs = map_claims(config, claims)
    username = str(claims.get("email") or claims["sub"])
    if not roles:
        await gov.record(found.id, username, "auth.oidc_login", outcome="no_role")
        raise Forbidden("Your identity provider account maps to no role in this tenant")
    user = await gov.identity.upsert_oidc_user(
        found.id, f"{config.issuer}|{claims['sub']}", username, roles, attrs
    )
    await gov.record(found.id, username, "auth.oidc_login", roles=roles)
    return (await gov.identity.session_for(user)).__dict__
