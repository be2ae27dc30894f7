"""Tenancy: tenants, their compliance profile, and regions (where their data may live)."""

from plinth.tenancy.models import Tenant
from plinth.tenancy.profile import ComplianceProfile, parse_profile
from plinth.tenancy.regions import Region, Regions, ResidencyRefused, route
from plinth.tenancy.service import TenantService

__all__ = [
    "ComplianceProfile",
    "Region",
    "Regions",
    "ResidencyRefused",
    "Tenant",
    "TenantService",
    "parse_profile",
    "route",
]
