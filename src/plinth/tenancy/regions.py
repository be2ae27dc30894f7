"""Regions: a region is a database (an SQLite file or a PostgreSQL URL) at a location.

Configured with the `regions` setting (`PLINTH_REGIONS='{"cn": {"url": "...", "location":
"cn"}}'`); the platform database is always the region `default` (location: the
`default_location` setting). `route` is the pure residency decision the runtime calls, through
`Regions.region_for(tenant, country)`, before it writes a record of a data subject.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from plinth.db import Database
from plinth.errors import Fault, PlinthError, ValidationFailed
from plinth.settings import Settings
from plinth.tenancy.models import Tenant
from plinth.tenancy.profile import LOCATION, ComplianceProfile, parse_profile

DEFAULT = "default"


class ResidencyRefused(PlinthError):
    """No region the tenant may use is allowed to store data of this subject's country."""

    code = "residency_refused"
    status = 409
    title = "Data residency refused"


@dataclass(frozen=True)
class Region:
    name: str
    url: str
    location: str

    def public(self) -> dict[str, str]:
        # The URL can hold a password; only name and location leave the process.
        return {"name": self.name, "location": self.location}


def configured(settings: Settings) -> dict[str, Region]:
    """The regions of `settings`, `default` first; bad entries are refused with their path."""
    found: dict[str, Region] = {
        DEFAULT: Region(DEFAULT, settings.resolved_database_url, settings.default_location)
    }
    faults: list[Fault] = []
    for name, spec in settings.regions.items():
        at = f"regions.{name}"
        url, location = spec.get("url"), spec.get("location")
        if not url:
            faults.append(Fault(f"{at}.url", "a region needs the URL of its database"))
        if not location or not LOCATION.match(location):
            faults.append(Fault(f"{at}.location", "a region needs a location like 'eu-central'"))
        if url and location:
            found[name] = Region(name, url, location)
    if faults:
        raise ValidationFailed.of(faults, "regions setting")
    return found


def route(
    regions: Mapping[str, Region],
    allowed: tuple[str, ...],
    profile: ComplianceProfile,
    country: str | None,
) -> Region:
    """The region that stores a record of a subject from `country` for a tenant.

    `allowed` are the tenant's region names in order of preference. The first whose location
    the subject's country accepts wins; none: ResidencyRefused, with the path `country`.
    """
    country = country or profile.default_country
    locations = profile.allowed_locations(country)
    candidates = [regions[n] for n in allowed if n in regions]
    for region in candidates:
        if locations is None or region.location in locations:
            return region
    where = ", ".join(f"{r.name} ({r.location})" for r in candidates) or "none"
    raise ResidencyRefused(
        f"Personal data of a subject from {country} must be stored in "
        f"{' or '.join(locations or ())}; this tenant's regions are: {where}",
        path="country",
        extra={"country": country, "locations": list(locations or ())},
    )


class Regions:
    """The configured regions, their databases (opened on first use) and tenant routing."""

    def __init__(self, settings: Settings, platform_db: Database) -> None:
        self.regions = configured(settings)
        self._databases: dict[str, Database] = {DEFAULT: platform_db}

    def get(self, name: str) -> Region:
        """The region named `name`, or ValidationFailed naming it."""
        try:
            return self.regions[name]
        except KeyError:
            raise ValidationFailed.of(
                [
                    Fault(
                        "region",
                        f"no region named {name!r}; known: {', '.join(self.regions)}",
                        "unknown_region",
                    )
                ],
                "region",
            ) from None

    def of_tenant(self, tenant: Tenant) -> tuple[str, ...]:
        """The regions a tenant may store data in, preferred first."""
        profile = parse_profile(tenant.settings.get("compliance"))
        return profile.regions or (tenant.region,)

    def home(self, tenant: Tenant) -> Region:
        """The region a tenant's app data lives in: the first its profile allows."""
        return self.get(self.of_tenant(tenant)[0])

    def region_for(self, tenant: Tenant, country: str | None) -> Region:
        """Where a record of a subject from `country` is stored for `tenant` (or refused)."""
        profile = parse_profile(tenant.settings.get("compliance"))
        return route(self.regions, self.of_tenant(tenant), profile, country)

    def locations(self) -> dict[str, str]:
        return {r.name: r.location for r in self.regions.values()}

    def database(self, name: str) -> Database:
        """The database of region `name`, opened once per process."""
        if name not in self._databases:
            self._databases[name] = Database(self.get(name).url)
        return self._databases[name]

    async def migrate(self, name: str) -> None:
        """Bring region `name`'s database to the current platform schema."""
        await self.database(name).migrate()

    async def close(self) -> None:
        for name, db in list(self._databases.items()):
            if name != DEFAULT:
                await db.dispose()
                del self._databases[name]
