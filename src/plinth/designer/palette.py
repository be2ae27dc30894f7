"""The designer's palette: what can be put in an app, read from the registries.

The web IDE fetches it (`GET /api/palette`) instead of keeping its own lists, so a node type,
connector kind, compliance pack, compile target or document kind registered in one file shows
up in the IDE with nothing else edited.
"""

from __future__ import annotations

import inspect
from typing import Any

from fastapi import APIRouter

from plinth.compiler.targets import TARGETS
from plinth.governance.compliance import packs
from plinth.governance.http import PrincipalDep
from plinth.integration import connectors
from plinth.metadata import kinds
from plinth.pages import components
from plinth.workflows import steps

router = APIRouter(prefix="/api", tags=["designer"])


def _summary(item: object) -> str:
    """The first line of an item's own docstring (its module's, for a one-class module),
    without the "`name`: " it starts with. Never a base class's: `inspect.getdoc` would
    inherit one, and every node type would read like the base."""
    own = type(item).__dict__.get("__doc__")
    doc = inspect.cleandoc(own) if own else inspect.getdoc(inspect.getmodule(type(item))) or ""
    line = doc.split("\n", 1)[0]
    head, sep, rest = line.partition(": ")
    text = rest if sep and head.startswith("`") and head.endswith("`") else line
    return text[:1].upper() + text[1:]


def palette() -> dict[str, Any]:
    """Every registry's items, with the schema each declares."""
    return {
        "node_types": [
            {"type": name, "description": _summary(steps.get(name))} for name in steps.types()
        ],
        "connector_kinds": [
            {"kind": k.name, "description": k.description, "schema": k.schema}
            for k in connectors.all_kinds()
        ],
        "compliance_packs": [
            {"id": p.id, "name": p.name, "countries": sorted(p.countries), "rules": len(p.rules)}
            for p in packs.all_packs().values()
        ],
        "compile_targets": [
            {"name": t.name, "description": t.description, "media_type": t.media_type}
            for t in TARGETS.all()
        ],
        "document_kinds": [
            {"kind": k.name, "section": k.section, "schema": k.schema} for k in kinds.all_kinds()
        ],
        "components": components.catalogue(),
    }


@router.get("/palette")
async def get_palette(principal: PrincipalDep) -> dict[str, Any]:
    """What the designer can place: node types, connector kinds, packs, targets, kinds."""
    return palette()
