"""The `policy` kind: Cedar text in `policies.<name>.cedar`, validated against the app."""

from __future__ import annotations

from typing import Any

from plinth.errors import Fault
from plinth.governance.policy import validate_app_policies
from plinth.metadata.kinds import Kind, register

SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["cedar"],
    "additionalProperties": False,
    "properties": {
        "id": {"type": "string"},
        "cedar": {"type": "string", "minLength": 1, "maxLength": 200_000},
        "description": {"type": "string", "maxLength": 2000},
    },
}


def check_policy(name: str, doc: dict[str, Any], definition: dict[str, Any]) -> list[Fault]:
    """Parse and type-check this document's Cedar against the app's generated Cedar schema."""
    only = {**definition, "policies": {name: doc}}
    return validate_app_policies(only)


POLICY = register(
    Kind(name="policy", section="policies", schema=SCHEMA, id_prefix="pol", checks=[check_policy])
)
