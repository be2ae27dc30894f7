"""Tenancy: tenants (regions and quotas arrive with later issues)."""

from plinth.tenancy.models import Tenant
from plinth.tenancy.service import TenantService

__all__ = ["Tenant", "TenantService"]
