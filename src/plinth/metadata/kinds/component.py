"""The `component` kind: a reusable composite of components with declared inputs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema_rs

from plinth.errors import Fault
from plinth.metadata.kinds.registry import Kind, load_schema, register
from plinth.pages.tree import check_tree


def check_component(name: str, doc: dict[str, Any], definition: dict[str, Any]) -> list[Fault]:
    """Its props schema compiles; its tree is valid and does not use itself."""
    base = f"components.{name}"
    found: list[Fault] = []
    if "props" in doc:
        try:
            jsonschema_rs.validator_for(doc["props"])
        except Exception as exc:
            found.append(Fault(f"{base}.props", f"not a valid JSON Schema: {exc}", "schema"))
    found += check_tree(
        doc["components"],
        f"{base}.components",
        definition,
        props=doc.get("props") or {"type": "object"},
    )
    for cid, node in doc["components"].items():
        if node["kind"] == f"component:{name}":
            found.append(
                Fault(f"{base}.components.{cid}.kind", "a component cannot contain itself", "cycle")
            )
    return found


COMPONENT = register(
    Kind(
        name="component",
        section="components",
        schema=load_schema(Path(__file__).with_name("component.schema.json")),
        id_prefix="cmp",
        checks=[check_component],
    )
)
