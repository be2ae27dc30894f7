"""The `policy` kind: Cedar text in `policies.<name>.cedar`, validated against the app."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from plinth.errors import Fault
from plinth.governance.policy import validate_app_policies
from plinth.metadata.kinds import Kind, register
from plinth.metadata.references import FieldRef, check_section, register_finder

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


# `Field::"claim.health_notes"`: Cedar does not know these ids name fields, so we check them.
FIELD_UID = re.compile(r'Field::"(?P<entity>[a-z][a-z0-9_]*)\.(?P<field>[a-z_][a-z0-9_]*)"')
# A statement about one entity's records reads its fields as `resource.x` / `resource has x`
# (the Cedar validator checks those against the schema; the rename rewrites them).
RESOURCE_IS = re.compile(r"\bresource\s+is\s+(?P<entity>[a-z][a-z0-9_]*)\b")
RESOURCE_ATTR = re.compile(r"\bresource(?P<sep>\.|\s+has\s+)(?P<field>[a-z_][a-z0-9_]*)\b")


def field_references(
    name: str, doc: dict[str, Any], definition: dict[str, Any]
) -> Iterator[FieldRef]:
    """Fields a policy names, in `Field::` ids and in statements about one entity."""
    path = f"policies.{name}.cedar"
    text = doc.get("cedar")
    if not isinstance(text, str):
        return
    for match in FIELD_UID.finditer(text):
        entity = match.group("entity")

        def rewrite(old: str, new: str, entity: str = entity) -> None:
            doc["cedar"] = doc["cedar"].replace(
                f'Field::"{entity}.{old}"', f'Field::"{entity}.{new}"'
            )

        yield FieldRef(path, entity, match.group("field"), rewrite)
    for index, statement in enumerate(text.split(";")):
        about = RESOURCE_IS.search(statement)
        if about is None:
            continue
        for match in RESOURCE_ATTR.finditer(statement):
            yield FieldRef(
                path,
                about.group("entity"),
                match.group("field"),
                _statement_rewrite(doc, index),
                checked=False,
            )


def _statement_rewrite(doc: dict[str, Any], index: int) -> Any:
    """Rewrites `resource.old` in statement `index` only (each is about its own entity)."""

    def rewrite(old: str, new: str) -> None:
        statements = doc["cedar"].split(";")
        statements[index] = RESOURCE_ATTR.sub(
            lambda m: f"resource{m.group('sep')}{new}" if m.group("field") == old else m.group(0),
            statements[index],
        )
        doc["cedar"] = ";".join(statements)

    return rewrite


register_finder("policies", field_references)

POLICY = register(
    Kind(
        name="policy",
        section="policies",
        schema=SCHEMA,
        id_prefix="pol",
        checks=[check_policy, check_section("policies")],
    )
)
