"""JSON Schema validation with faults that carry dotted paths (shared by every layer)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jsonschema_rs

from plinth.errors import Fault

Validator = Any  # jsonschema_rs validators have no common public base class


def compile_schema(schema: dict[str, Any]) -> Validator:
    """A validator for a JSON Schema (draft 2020-12 unless the schema says otherwise)."""
    return jsonschema_rs.validator_for(schema, validate_formats=True)


def join_path(prefix: str, parts: Sequence[str | int]) -> str:
    path = prefix
    for part in parts:
        piece = f"[{part}]" if isinstance(part, int) else str(part)
        if isinstance(part, int):
            path += piece
        else:
            path = f"{path}.{piece}" if path else piece
    return path


def faults(validator: Validator, instance: Any, prefix: str = "") -> list[Fault]:
    """Every error in `instance`, each with its path; empty when valid (fast path first)."""
    if validator.is_valid(instance):
        return []
    found: list[Fault] = []
    for error in validator.iter_errors(instance):
        parts: list[str | int] = list(error.instance_path)
        kind = error.kind
        code = type(kind).__name__.lower()
        message = error.message
        if isinstance(kind, jsonschema_rs.ValidationErrorKind.AdditionalProperties):
            for name in kind.unexpected:
                found.append(
                    Fault(
                        join_path(prefix, [*parts, name]),
                        f"unknown property {name!r}",
                        "unknown_property",
                    )
                )
            continue
        if isinstance(kind, jsonschema_rs.ValidationErrorKind.Required):
            parts.append(str(kind.property))
            message = "is required"
        found.append(Fault(join_path(prefix, parts), message, code))
    return found
