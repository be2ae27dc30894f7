"""Jurisdiction packs, one file each; `applicable(profile)` picks those a tenant needs.

A pack is a `Pack` (id, name, countries, rules) registered here by its module. Adding a law is
adding one file and one line in `_MODULES`.
"""

from __future__ import annotations

import importlib

from plinth.governance.compliance.models import Pack
from plinth.tenancy.profile import ComplianceProfile

_MODULES = ["gdpr", "uk_gdpr", "ccpa", "lgpd", "pipl", "pdpa", "pci_dss"]
_packs: dict[str, Pack] = {}
_builtins_loaded = False


def register(pack: Pack) -> Pack:
    """Add (or replace) a pack by id."""
    _packs[pack.id] = pack
    return pack


def unregister(pack_id: str) -> None:
    _packs.pop(pack_id, None)


def all_packs() -> dict[str, Pack]:
    global _builtins_loaded
    if not _builtins_loaded:  # the built-ins load on first use (each module registers itself)
        _builtins_loaded = True
        for module in _MODULES:
            importlib.import_module(f"{__name__}.{module}")
    return dict(_packs)


def get(pack_id: str) -> Pack | None:
    return all_packs().get(pack_id)


def applicable(profile: ComplianceProfile, country: str | None = None) -> list[Pack]:
    """The packs of a profile: those it names, else those of its countries, plus the
    country-less packs (PCI DSS) that apply wherever their data classes appear.
    With `country`, only packs applying to that country (and the country-less ones)."""
    packs = all_packs()
    if profile.jurisdictions:
        chosen = [packs[j] for j in profile.jurisdictions if j in packs]
    else:
        countries = set(profile.countries)
        chosen = [p for p in packs.values() if not p.countries or p.countries & countries]
    if country is not None:
        chosen = [p for p in chosen if not p.countries or country in p.countries]
    return chosen


def unknown(profile: ComplianceProfile) -> list[str]:
    """Pack ids a profile names that do not exist."""
    return [j for j in profile.jurisdictions if j not in all_packs()]
