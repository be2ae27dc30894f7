"""Who is calling: the principal every enforcement point decides about."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from plinth.errors import Forbidden

PLATFORM_ADMIN = "platform_admin"


@dataclass(frozen=True)
class Principal:
    """An authenticated caller. `tenant_id` is None only for platform admins."""

    id: str
    kind: str  # "token" | "user" | "api_key"
    roles: frozenset[str]
    tenant_id: str | None = None
    name: str = ""
    attrs: dict[str, Any] = field(default_factory=dict)

    @property
    def is_platform_admin(self) -> bool:
        return PLATFORM_ADMIN in self.roles

    def check_tenant(self, tenant_id: str, tenant_slug: str) -> None:
        """Refuse a caller bound to another tenant (tenant A never reaches tenant B)."""
        if self.is_platform_admin:
            return
        if self.tenant_id != tenant_id:
            # Same answer as for a tenant that does not exist would leak less, but a 403 that
            # names no data is clearer to a person who used the wrong token.
            raise Forbidden(
                f"This credential has no access to tenant {tenant_slug!r}", path="tenant"
            )

    def audit_name(self) -> str:
        return self.name or self.id
