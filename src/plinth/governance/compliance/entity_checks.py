"""Semantic checks of the compliance keys of an entity (what its JSON Schema cannot say)."""

from __future__ import annotations

from typing import Any

from plinth.errors import Fault
from plinth.governance.compliance.enforcement import check_protection

TIME_COLUMNS = {"created_at", "updated_at"}
TIME_TYPES = {"date", "datetime"}


def check_compliance_keys(
    name: str, doc: dict[str, Any], definition: dict[str, Any]
) -> list[Fault]:
    """subject.country_field and retention.field name fields of the right type."""
    base = f"entities.{name}"
    fields = doc.get("fields", {})
    found: list[Fault] = []
    subject = doc.get("subject", {})
    for key in ("country_field", "owner_field", "key_field"):
        ref = subject.get(key)
        if ref and ref not in fields:
            found.append(Fault(f"{base}.subject.{key}", f"no field named {ref!r}", "unknown_field"))
    if "country_field" in subject and "country" in subject:
        found.append(
            Fault(
                f"{base}.subject.country",
                "give either a fixed country or a country field, not both",
            )
        )
    ref = doc.get("retention", {}).get("field")
    if ref and ref not in TIME_COLUMNS:
        spec = fields.get(ref)
        if spec is None:
            found.append(
                Fault(f"{base}.retention.field", f"no field named {ref!r}", "unknown_field")
            )
        elif spec.get("type") not in TIME_TYPES:
            found.append(
                Fault(
                    f"{base}.retention.field",
                    f"retention counts from a date or datetime field; {ref!r} is "
                    f"{spec.get('type')}",
                )
            )
    found += [Fault(path, message) for path, message in check_protection(name, doc)]
    return found
