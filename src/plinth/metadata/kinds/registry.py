"""Document kinds: the `Kind` type and the registry (the package lists the built-ins)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from plinth.errors import Fault
from plinth.jsonschema import Validator, compile_schema

# check(name, document, whole definition) -> faults, with paths relative to the definition root
Check = Callable[[str, dict[str, Any], dict[str, Any]], list[Fault]]


@dataclass
class Kind:
    name: str
    section: str
    schema: dict[str, Any]
    id_prefix: str
    keyed: dict[str, str] = field(default_factory=dict)  # nested map -> id prefix
    # Keyed maps whose member order means something to a person (an entity's fields are
    # shown in that order); every other map's key order is not a change.
    ordered: frozenset[str] = frozenset()
    checks: list[Check] = field(default_factory=list)
    validator: Validator = None

    def __post_init__(self) -> None:
        self.validator = compile_schema(self.schema)


_kinds: dict[str, Kind] = {}


def load_schema(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def register(kind: Kind) -> Kind:
    """Add a document kind (idempotent by name: re-registering replaces it)."""
    _kinds[kind.name] = kind
    return kind


def add_check(kind_name: str, check: Check) -> None:
    """Add a semantic check to a registered kind (once)."""
    kind = _kinds[kind_name]
    if check not in kind.checks:
        kind.checks.append(check)


def all_kinds() -> list[Kind]:
    return list(_kinds.values())


def by_section(section: str) -> Kind | None:
    for kind in _kinds.values():
        if kind.section == section:
            return kind
    return None


def by_name(name: str) -> Kind | None:
    return _kinds.get(name)


def sections() -> list[str]:
    return [k.section for k in _kinds.values()]
