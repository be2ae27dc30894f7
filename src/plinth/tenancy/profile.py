"""A tenant's compliance profile: where it operates and where its data may live.

Stored under the `compliance` key of the tenant's settings:

    {"countries": ["DE", "BR", "CN"],          # ISO 3166 alpha-2, where its data subjects are
     "jurisdictions": ["gdpr", "pci_dss"],     # packs to apply; default: derived from countries
     "regions": ["eu", "cn"],                  # regions it may store data in; default: its own
     "residency": {"DE": ["eu-central"]},      # extra, self-imposed location requirements
     "default_country": "DE"}                  # subject country when an entity names none
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from plinth.errors import FaultList

COUNTRY = re.compile(r"^[A-Z]{2}$")
LOCATION = re.compile(r"^[a-z][a-z0-9-]{0,39}$")

# Countries whose law requires personal data of their residents to be stored inside them
# (PIPL art. 40 for critical-information operators and large processors; Russia's 242-FZ).
LEGAL_RESIDENCY: dict[str, tuple[str, ...]] = {"CN": ("cn",), "RU": ("ru",)}

EU = frozenset(
    {
        "AT",
        "BE",
        "BG",
        "HR",
        "CY",
        "CZ",
        "DK",
        "EE",
        "FI",
        "FR",
        "DE",
        "GR",
        "HU",
        "IE",
        "IT",
        "LV",
        "LT",
        "LU",
        "MT",
        "NL",
        "PL",
        "PT",
        "RO",
        "SK",
        "SI",
        "ES",
        "SE",
    }
)
EEA = EU | {"IS", "LI", "NO"}


@dataclass(frozen=True)
class ComplianceProfile:
    countries: tuple[str, ...] = ()
    jurisdictions: tuple[str, ...] = ()
    regions: tuple[str, ...] = ()
    residency: dict[str, tuple[str, ...]] = field(default_factory=dict)
    default_country: str | None = None

    def allowed_locations(self, country: str | None) -> tuple[str, ...] | None:
        """Locations where a subject of `country` may be stored; None means anywhere."""
        if not country:
            return None
        legal = LEGAL_RESIDENCY.get(country)
        own = self.residency.get(country)
        if legal is None and own is None:
            return None
        if legal is None or own is None:
            return legal or own
        both = tuple(loc for loc in own if loc in legal)
        return both  # an empty tuple: no location satisfies both, so nothing is allowed

    def as_dict(self) -> dict[str, Any]:
        return {
            "countries": list(self.countries),
            "jurisdictions": list(self.jurisdictions),
            "regions": list(self.regions),
            "residency": {k: list(v) for k, v in self.residency.items()},
            "default_country": self.default_country,
        }


def parse_profile(raw: Any, path: str = "compliance") -> ComplianceProfile:
    """A profile from its stored/submitted form; ValidationFailed names every bad entry."""
    faults = FaultList()
    if raw is None:
        return ComplianceProfile()
    if not isinstance(raw, dict):
        faults.add(path, "a compliance profile is an object")
        faults.raise_if_any("compliance profile")
    known = {"countries", "jurisdictions", "regions", "residency", "default_country"}
    for key in raw:
        if key not in known:
            faults.add(f"{path}.{key}", f"unknown key; known: {', '.join(sorted(known))}")

    def strings(key: str, pattern: re.Pattern[str], what: str) -> tuple[str, ...]:
        value = raw.get(key, [])
        if not isinstance(value, list):
            faults.add(f"{path}.{key}", f"{key} is a list of {what}")
            return ()
        for i, item in enumerate(value):
            if not isinstance(item, str) or not pattern.match(item):
                faults.add(f"{path}.{key}[{i}]", f"{item!r} is not {what}")
        return tuple(v for v in value if isinstance(v, str))

    countries = strings("countries", COUNTRY, "an ISO 3166 alpha-2 country code (DE)")
    jurisdictions = strings("jurisdictions", re.compile(r"^[a-z][a-z0-9_]{0,39}$"), "a pack id")
    regions = strings("regions", re.compile(r"^[a-z][a-z0-9_-]{0,39}$"), "a region name")
    residency: dict[str, tuple[str, ...]] = {}
    raw_res = raw.get("residency", {})
    if not isinstance(raw_res, dict):
        faults.add(f"{path}.residency", "residency maps a country to a list of locations")
    else:
        for country, locs in raw_res.items():
            at = f"{path}.residency.{country}"
            if not COUNTRY.match(str(country)):
                faults.add(at, f"{country!r} is not an ISO 3166 alpha-2 country code")
            if not isinstance(locs, list) or not all(
                isinstance(x, str) and LOCATION.match(x) for x in locs
            ):
                faults.add(at, "a list of locations such as 'eu-central'")
                continue
            residency[str(country)] = tuple(locs)
    default = raw.get("default_country")
    if default is not None and (not isinstance(default, str) or not COUNTRY.match(default)):
        faults.add(f"{path}.default_country", f"{default!r} is not a country code")
    faults.raise_if_any("compliance profile")
    return ComplianceProfile(countries, jurisdictions, regions, residency, default)
