"""The `page` kind: a route of an app's portal and its tree of components."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from plinth.errors import Fault
from plinth.metadata.kinds.registry import Kind, load_schema, register
from plinth.metadata.references import register_finder
from plinth.pages.tree import check_tree, field_references


def check_page(name: str, doc: dict[str, Any], definition: dict[str, Any]) -> list[Fault]:
    """The tree, its props, bindings and references; paths unique across pages."""
    found = check_tree(
        doc["components"], f"pages.{name}.components", definition, state=doc.get("state") or {}
    )
    for other, odoc in definition.get("pages", {}).items():
        if other < name and isinstance(odoc, dict) and odoc.get("path") == doc["path"]:
            found.append(
                Fault(
                    f"pages.{name}.path",
                    f"page {other!r} already serves {doc['path']!r}",
                    "duplicate_path",
                )
            )
    return found


PAGE = register(
    Kind(
        name="page",
        section="pages",
        schema=load_schema(Path(__file__).with_name("page.schema.json")),
        id_prefix="pag",
        checks=[check_page],
    )
)

register_finder("pages", field_references)
