"""Component kinds: the `ComponentKind` type and the registry (the package lists the built-ins)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from plinth.jsonschema import Validator, compile_schema

PLUGIN_KIND = re.compile(r"^plugin:([a-z][a-z0-9_.-]{0,62})/([a-z][a-z0-9]*-[a-z0-9-]+)$")

# A string or a `{{ }}` binding; most props accept either.
BINDABLE_STRING: dict[str, Any] = {"type": "string", "maxLength": 2000}


@dataclass
class ComponentKind:
    name: str
    props: dict[str, Any]  # JSON Schema of `props`
    container: bool = False
    events: tuple[str, ...] = ()
    description: str = ""
    validator: Validator = field(default=None, repr=False)

    def __post_init__(self) -> None:
        schema = {"type": "object", "additionalProperties": False, **self.props}
        self.props = schema
        self.validator = compile_schema(schema)


_components: dict[str, ComponentKind] = {}


def register(kind: ComponentKind) -> ComponentKind:
    """Add a component kind (re-registering a name replaces it)."""
    _components[kind.name] = kind
    return kind


def get(name: str) -> ComponentKind | None:
    return _components.get(name)


def names() -> list[str]:
    return sorted(_components)


def is_plugin(name: str) -> bool:
    return PLUGIN_KIND.match(name) is not None


def catalogue() -> dict[str, Any]:
    """Every kind's props schema, for the designer's palette and the compile targets."""
    return {
        k.name: {
            "props": k.props,
            "container": k.container,
            "events": list(k.events),
            "description": k.description,
        }
        for k in _components.values()
    }
