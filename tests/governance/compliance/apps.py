"""Sample apps and profiles for the compliance tests: bad ones break rules, good ones pass."""

from __future__ import annotations

import copy
from typing import Any

from plinth.tenancy.profile import ComplianceProfile

RETENTION = {"days": 3650, "action": "anonymise", "field": "created_at"}


def bad_app() -> dict[str, Any]:
    """Personal, sensitive, card and credential data with none of the safeguards."""
    return {
        "entities": {
            "customer": {
                "fields": {
                    "full_name": {"type": "string", "classification": "pii"},
                    "country": {"type": "string"},
                    "health": {"type": "text", "classification": "pii.sensitive"},
                    "password": {"type": "string", "classification": "credential"},
                }
            },
            "payment": {
                "fields": {
                    "card_number": {"type": "string", "classification": "pci.pan"},
                    "cvv": {"type": "string", "classification": "pci.sad"},
                    "iban": {"type": "string", "classification": "financial"},
                    "country_code": {"type": "string"},
                }
            },
        }
    }


def good_app() -> dict[str, Any]:
    """The same data, with every safeguard the packs ask for."""
    app = bad_app()
    customer = app["entities"]["customer"]
    customer.update(
        subject={"country_field": "country"},
        retention=RETENTION,
        lawful_basis="explicit_consent",
        audit_reads=True,
    )
    customer["fields"]["health"].update(encrypted=True, masked=True)
    customer["fields"]["password"].update(encrypted=True)
    payment = app["entities"]["payment"]
    del payment["fields"]["cvv"]
    payment["fields"]["card_number"].update(encrypted=True, masked=True)
    payment["fields"]["iban"].update(encrypted=True)
    payment.update(
        retention={"days": 365, "action": "delete"}, audit_reads=True, subject={"country": "DE"}
    )
    app["policies"] = {
        "customer_read": {
            "cedar": (
                'forbid (principal, action == Action::"data.read", resource is customer)\n'
                'unless { principal in Role::"owner" };'
            )
        }
    }
    return copy.deepcopy(app)


def profile(
    *countries: str, regions: tuple[str, ...] = ("default",), **kw: Any
) -> ComplianceProfile:
    return ComplianceProfile(countries=countries, regions=regions, **kw)
