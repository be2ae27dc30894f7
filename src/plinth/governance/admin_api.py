"""HTTP routes for administering a tenant: users, groups, roles and API tokens.

Every route is decided by policy (`user.manage`, `token.manage`) and every change is written to
the audit ledger, named for what a person did (`user.disabled`, not `user.updated`), in the
change's own transaction (`audit.Audit`).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Protocol

from fastapi import APIRouter, Depends, Query, Response
from pydantic import BaseModel, Field

from plinth.errors import BadRequest, Conflict
from plinth.governance.access import ROLE_ACTIONS, Authorizer
from plinth.governance.directory import PasswordToken
from plinth.governance.http import PrincipalDep, require
from plinth.governance.policy import OWNER_EXTRA
from plinth.governance.principal import PLATFORM_ADMIN, Principal
from plinth.governance.service import Governance
from plinth.governance.tokens import TokenService
from plinth.http import composed
from plinth.tenancy.http import TenantDep
from plinth.tenancy.models import Tenant


class Services(Protocol):
    """What these routes use of the composition root (server/platform.py provides it)."""

    authorizer: Authorizer
    governance: Governance
    tokens: TokenService


PlatformDep = Annotated[Services, Depends(composed)]

router = APIRouter(prefix="/api/t/{tenant}", tags=["administration"])

ROLE = r"^[a-z][a-z0-9_]{1,39}$"
GROUP = r"^[A-Za-z0-9][A-Za-z0-9 ._-]{0,79}$"
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "No such user in this tenant"}}


class UserPatch(BaseModel):
    roles: list[Any] | None = Field(default=None, min_length=1)
    groups: list[Any] | None = None
    attrs: dict[str, str] | None = Field(default=None, description="replaces the whole map")
    disabled: bool | None = None


def _check_roles(roles: list[Any], path: str = "roles") -> list[str]:
    out = []
    for i, role in enumerate(roles):
        if not isinstance(role, str) or not re.match(ROLE, role):
            raise BadRequest(f"{role!r} is not a role name", path=f"{path}.{i}")
        if role == PLATFORM_ADMIN:
            raise BadRequest(f"Role {role!r} cannot be given to a tenant user", path=f"{path}.{i}")
        out.append(role)
    return sorted(set(out), key=out.index)


def _check_groups(groups: list[Any], path: str = "groups") -> list[str]:
    out = []
    for i, group in enumerate(groups):
        if not isinstance(group, str) or not re.match(GROUP, group):
            raise BadRequest(f"{group!r} is not a group name", path=f"{path}.{i}")
        out.append(group)
    return sorted(set(out), key=out.index)


def _is_self(principal: Principal, user_id: str) -> bool:
    return principal.id == f"user:{user_id}"


def invite_view(tenant: Tenant, token: PasswordToken) -> dict[str, Any]:
    """How a person redeems an invite or reset: the IDE's accept screen carries the token."""
    return {
        "token": token.token,
        "url": f"/#/accept?tenant={tenant.slug}&token={token.token}",
        "expires_at": token.expires_at.isoformat(),
    }


@router.get("/users")
async def list_users(
    tenant: TenantDep,
    platform: PlatformDep,
    principal: PrincipalDep,
    q: str | None = Query(None, max_length=200, description="part of the username"),
    role: str | None = Query(None, max_length=40),
    group: str | None = Query(None, max_length=80),
    disabled: bool | None = None,
    cursor: str | None = Query(None, max_length=200, description="`next_cursor` of a page"),
    limit: int = Query(50, ge=1, le=500),
) -> dict[str, Any]:
    """Users of this tenant ordered by username, filtered, a page at a time."""
    require(platform, principal, "user.manage", tenant, "tenant")
    found = await platform.governance.directory.list(
        tenant.id, q=q, role=role, group=group, disabled=disabled, after=cursor, limit=limit
    )
    next_cursor = found[-1].username if len(found) == limit else None
    return {"items": [u.public() for u in found], "next_cursor": next_cursor}


@router.get("/users/{user_id}", responses=NOT_FOUND)
async def get_user(
    user_id: str, tenant: TenantDep, platform: PlatformDep, principal: PrincipalDep
) -> dict[str, Any]:
    """One user of this tenant."""
    require(platform, principal, "user.manage", tenant, "tenant")
    return (await platform.governance.directory.get(tenant.id, user_id)).public()


def _changes(body: UserPatch, principal: Principal, user_id: str) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    if body.roles is not None:
        changes["roles"] = _check_roles(body.roles)
    if body.groups is not None:
        changes["groups"] = _check_groups(body.groups)
    if body.attrs is not None:
        changes["attrs"] = dict(body.attrs)
    if body.disabled is not None:
        if body.disabled and _is_self(principal, user_id):
            raise Conflict("You cannot disable yourself", path="disabled")
        changes["disabled"] = body.disabled
    return changes


@router.patch("/users/{user_id}", responses=NOT_FOUND)
async def update_user(
    user_id: str,
    body: UserPatch,
    tenant: TenantDep,
    platform: PlatformDep,
    principal: PrincipalDep,
) -> dict[str, Any]:
    """Edit roles, groups, attributes (such as country) or disable/enable a user.

    Disabling ends the user's sessions: refresh tokens and access tokens already issued."""
    require(platform, principal, "user.manage", tenant, "tenant")
    changes = _changes(body, principal, user_id)
    audit = platform.governance.audit.by(tenant.id, principal.audit_name())
    _, after = await platform.governance.directory.update(tenant.id, user_id, changes, audit)
    return after.public()


@router.post("/users/{user_id}/password-reset", status_code=201, responses=NOT_FOUND)
async def reset_password(
    user_id: str, tenant: TenantDep, platform: PlatformDep, principal: PrincipalDep
) -> dict[str, Any]:
    """A one-time link (24 h) with which the user sets a new password; their sessions end."""
    require(platform, principal, "user.manage", tenant, "tenant")
    audit = platform.governance.audit.by(tenant.id, principal.audit_name())
    token = await platform.governance.directory.password_token(tenant.id, user_id, "reset", audit)
    return invite_view(tenant, token)


@router.delete("/users/{user_id}/sessions", responses=NOT_FOUND)
async def revoke_sessions(
    user_id: str, tenant: TenantDep, platform: PlatformDep, principal: PrincipalDep
) -> dict[str, Any]:
    """End every session of the user (their refresh tokens stop working at once)."""
    require(platform, principal, "user.manage", tenant, "tenant")
    audit = platform.governance.audit.by(tenant.id, principal.audit_name())
    revoked = await platform.governance.directory.revoke_sessions(tenant.id, user_id, audit)
    return {"revoked": revoked}


@router.get("/groups")
async def list_groups(
    tenant: TenantDep, platform: PlatformDep, principal: PrincipalDep
) -> dict[str, Any]:
    """Groups named by the tenant's users, with member counts."""
    require(platform, principal, "user.manage", tenant, "tenant")
    groups = await platform.governance.directory.groups(tenant.id)
    return {"items": [{"name": name, "members": n} for name, n in groups.items()]}


async def _membership(
    platform: Services,
    principal: Principal,
    tenant: Tenant,
    group: str,
    user_id: str,
    member: bool,
) -> Response:
    require(platform, principal, "user.manage", tenant, "tenant")
    _check_groups([group], path="group")
    audit = platform.governance.audit.by(tenant.id, principal.audit_name())
    await platform.governance.directory.ensure_member(tenant.id, user_id, group, member, audit)
    return Response(status_code=204)


@router.put("/groups/{group}/members/{user_id}", status_code=204, responses=NOT_FOUND)
async def add_member(
    group: str, user_id: str, tenant: TenantDep, platform: PlatformDep, principal: PrincipalDep
) -> Response:
    """Put a user in a group (a group exists while it has members)."""
    return await _membership(platform, principal, tenant, group, user_id, True)


@router.delete("/groups/{group}/members/{user_id}", status_code=204, responses=NOT_FOUND)
async def remove_member(
    group: str, user_id: str, tenant: TenantDep, platform: PlatformDep, principal: PrincipalDep
) -> Response:
    """Take a user out of a group."""
    return await _membership(platform, principal, tenant, group, user_id, False)


def builtin_actions(role: str) -> list[str]:
    """The actions the built-in policies permit a role."""
    extra = OWNER_EXTRA if role == "owner" else set()
    return sorted(ROLE_ACTIONS[role] | extra)


@router.get("/roles")
async def list_roles(
    tenant: TenantDep, platform: PlatformDep, principal: PrincipalDep
) -> dict[str, Any]:
    """Built-in roles with their actions, then the tenant's own roles (granted by policies)."""
    require(platform, principal, "user.manage", tenant, "tenant")
    items: list[dict[str, Any]] = [
        {"name": role, "builtin": True, "actions": builtin_actions(role)} for role in ROLE_ACTIONS
    ]
    own = await platform.governance.directory.role_names(tenant.id) - set(ROLE_ACTIONS)
    items += [{"name": role, "builtin": False, "actions": []} for role in sorted(own)]
    return {"items": items}


@router.get("/tokens")
async def list_tokens(
    tenant: TenantDep,
    platform: PlatformDep,
    principal: PrincipalDep,
    include_revoked: bool = False,
) -> dict[str, Any]:
    """API tokens of this tenant, newest first (never their secrets)."""
    require(platform, principal, "token.manage", tenant, "tenant")
    return {"items": await platform.tokens.list(tenant.id, include_revoked=include_revoked)}
