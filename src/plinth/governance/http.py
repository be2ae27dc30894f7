"""The governance layer's request dependencies: who is calling, and may they do this.

Every layer's router uses these. The services they need come from the composition root,
typed by the small ports below (see `plinth.http`).
"""

from __future__ import annotations

from typing import Annotated, Protocol

from fastapi import Depends, Request

from plinth.errors import Unauthenticated
from plinth.governance.access import Authorizer, Resource, authorize
from plinth.governance.authentication import Authentication
from plinth.governance.principal import Principal
from plinth.http import composed
from plinth.tenancy.models import Tenant


class Authenticating(Protocol):
    """The part of the composition root that authenticates callers."""

    @property
    def authentication(self) -> Authentication: ...


class Guarded(Protocol):
    """The part of the composition root that decides about actions."""

    @property
    def authorizer(self) -> Authorizer: ...


async def get_principal(
    request: Request, root: Annotated[Authenticating, Depends(composed)]
) -> Principal:
    """The authenticated caller, from `Authorization: Bearer …`."""
    cached = getattr(request.state, "principal", None)
    if isinstance(cached, Principal):
        return cached
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated()
    principal = await root.authentication.authenticate(token.strip())
    request.state.principal = principal
    return principal


PrincipalDep = Annotated[Principal, Depends(get_principal)]


def require(
    root: Guarded,
    principal: Principal,
    action: str,
    tenant: Tenant,
    kind: str = "app",
    ident: str = "",
) -> None:
    """Authorize `action` on a resource of `tenant` or raise 403."""
    authorize(
        root.authorizer,
        principal,
        action,
        Resource(kind, ident or tenant.slug, tenant_id=tenant.id),
    )
