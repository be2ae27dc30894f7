"""HTTP routes for credentials: tenant-scoped API tokens."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Response
from pydantic import BaseModel, Field

from plinth.errors import BadRequest, NotFound
from plinth.governance.access import ROLE_ACTIONS
from plinth.server.deps import PlatformDep, PrincipalDep, TenantDep, require

router = APIRouter(prefix="/api/t/{tenant}", tags=["identity"])


class TokenIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    role: str = Field(description="owner, designer, analyst or viewer")
    expires_at: datetime | None = None


@router.post("/tokens", status_code=201)
async def issue_token(body: TokenIn, tenant: TenantDep, platform: PlatformDep,
                      principal: PrincipalDep) -> dict:
    """Issue an API token bound to this tenant and a role. The secret is shown only here."""
    require(platform, principal, "token.manage", tenant, "tenant")
    if body.role not in ROLE_ACTIONS:
        raise BadRequest(f"Unknown role {body.role!r}; roles: {', '.join(ROLE_ACTIONS)}",
                         path="role")
    issued = await platform.tokens.issue(body.name, body.role, tenant_id=tenant.id,
                                         expires_at=body.expires_at)
    return {"id": issued.id, "token": issued.token, "name": issued.name, "role": issued.role}


@router.delete("/tokens/{token_id}", status_code=204)
async def revoke_token(token_id: str, tenant: TenantDep, platform: PlatformDep,
                       principal: PrincipalDep) -> Response:
    """Revoke a token of this tenant; it stops working at once."""
    require(platform, principal, "token.manage", tenant, "tenant")
    if not await platform.tokens.revoke(token_id, tenant_id=tenant.id):
        raise NotFound(f"No active token {token_id!r} in this tenant", path="token_id")
    return Response(status_code=204)
