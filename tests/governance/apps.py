"""The sample claims app with policies, shared by governance tests."""

from __future__ import annotations

from typing import Any

COUNTRY_POLICY = """
@id("analysts_own_country")
forbid(principal in Role::"analyst", action == Action::"data.read", resource is claim)
  unless { principal has country && resource.country == principal.country };
"""
HEALTH_POLICY = """
@id("health_claims_team_only")
forbid(principal, action in [Action::"field.read", Action::"field.write"],
       resource == Field::"claim.health_notes")
  unless { principal in Group::"claims" };
"""

CLAIMS_APP: dict[str, Any] = {
    "entities": {
        "claim": {
            "fields": {
                "country": {"type": "string", "required": True},
                "amount": {"type": "integer"},
                "status": {"type": "enum", "values": ["open", "closed"]},
                "health_notes": {"type": "text"},
            },
        },
    },
    "policies": {
        "country": {"cedar": COUNTRY_POLICY},
        "health": {"cedar": HEALTH_POLICY},
    },
}
