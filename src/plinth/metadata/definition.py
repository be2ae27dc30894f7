"""An app definition: the documents of an app, grouped by kind into sections.

    {"entities": {"claim": {...}}, "pages": {...}, ...}

Pure functions only: validation with paths, stable-id assignment and the content hash.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from collections.abc import Callable
from typing import Any

from plinth.errors import Fault, ValidationFailed
from plinth.ids import short_id
from plinth.jsonschema import faults as schema_faults
from plinth.metadata import kinds

Definition = dict[str, Any]
DOC_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
MAX_DOCUMENTS = 2000


# The two checks of one document; `validate` takes others (the designer's live validation
# passes cached ones, so a keystroke re-checks only what it touched).
SchemaCheck = Callable[[kinds.Kind, str, str, Any], list[Fault]]
SemanticCheck = Callable[[kinds.Kind, str, str, Any, Definition], list[Fault]]


def empty() -> Definition:
    return {}


def schema_check(kind: kinds.Kind, section: str, name: str, doc: Any) -> list[Fault]:
    """A document against its kind's JSON Schema."""
    return schema_faults(kind.validator, doc, f"{section}.{name}")


def semantic_check(
    kind: kinds.Kind, section: str, name: str, doc: Any, definition: Definition
) -> list[Fault]:
    """A schema-valid document against the rest of the definition (its kind's checks)."""
    found: list[Fault] = []
    for check in kind.checks:
        found += check(name, doc, definition)
    return found


def validate(
    definition: Any,
    schema: SchemaCheck = schema_check,
    semantic: SemanticCheck = semantic_check,
) -> list[Fault]:
    """Every fault in a definition, each with its path; empty when it is valid."""
    if not isinstance(definition, dict):
        return [
            Fault("", "an app definition is an object of sections (entities, pages, …)", "type")
        ]
    found: list[Fault] = []
    known = kinds.sections()
    count = 0
    for section, docs in definition.items():
        kind = kinds.by_section(section)
        if kind is None:
            found.append(
                Fault(
                    section,
                    f"unknown document kind {section!r}; known kinds: {', '.join(known)}",
                    "unknown_kind",
                )
            )
            continue
        if not isinstance(docs, dict):
            found.append(
                Fault(
                    section,
                    f"{section} is an object of {kind.name} documents keyed by name",
                    "type",
                )
            )
            continue
        for name, doc in docs.items():
            count += 1
            if not DOC_NAME.match(name):
                found.append(
                    Fault(
                        f"{section}.{name}",
                        "a document name is 1-63 lower-case "
                        "letters, digits or '_', starting with a letter",
                        "name",
                    )
                )
                continue
            found += schema(kind, section, name, doc)
    if count > MAX_DOCUMENTS:
        found.append(Fault("", f"an app holds at most {MAX_DOCUMENTS} documents", "too_many"))
    if found:
        return found
    # Semantic checks only on schema-valid documents, so they can trust the shape.
    for section, docs in definition.items():
        kind = kinds.by_section(section)
        assert kind is not None
        for name, doc in docs.items():
            found += semantic(kind, section, name, doc, definition)
    return found


def check(definition: Any, what: str = "app definition") -> Definition:
    """Return the definition, or raise ValidationFailed listing every fault."""
    found = validate(definition)
    if found:
        raise ValidationFailed.of(found, what)
    return definition


def assign_ids(definition: Definition, previous: Definition | None = None) -> Definition:
    """A copy where every document and keyed member has a stable id.

    A member without an id takes the id its namesake had in `previous` (so a client that
    omits ids keeps them), else a new one. Renames keep their id only if the client sends it.
    """
    result = copy.deepcopy(definition)
    previous = previous or {}
    for section, docs in result.items():
        kind = kinds.by_section(section)
        if kind is None or not isinstance(docs, dict):
            continue
        old_docs = previous.get(section, {})
        for name, doc in docs.items():
            if not isinstance(doc, dict):
                continue
            old_doc = old_docs.get(name, {}) if isinstance(old_docs, dict) else {}
            if "id" not in doc:
                doc["id"] = old_doc.get("id") or short_id(kind.id_prefix)
                # keep "id" first so exported files read naturally
                docs[name] = {"id": doc.pop("id"), **doc}
                doc = docs[name]
            for member_key, prefix in kind.keyed.items():
                members = doc.get(member_key)
                if not isinstance(members, dict):
                    continue
                old_members = old_doc.get(member_key, {})
                for mname, member in list(members.items()):
                    if isinstance(member, dict) and "id" not in member:
                        old = old_members.get(mname, {}) if isinstance(old_members, dict) else {}
                        members[mname] = {"id": old.get("id") or short_id(prefix), **member}
    return result


def canonical_json(definition: Definition) -> str:
    """Key order is meaningful (field order), so it is kept, not sorted."""
    return json.dumps(definition, separators=(",", ":"), ensure_ascii=False)


def content_hash(definition: Definition) -> str:
    return hashlib.sha256(canonical_json(definition).encode()).hexdigest()
