"""References from documents to the fields of entities, found, checked and rewritten as one.

Workflows name fields in expressions (`vars.record.amount`) and record inputs, pages in
component props and bindings, policies in Cedar (`Field::"claim.health_notes"`), entities in
their own compliance settings. Each kind registers a *finder* that yields every such
reference in one document with the way to rewrite it, so the same index serves:

- `check`: a reference to a field the entity does not have is a fault with its path (the
  publish check, and live validation in the IDE);
- `rename_field`: renaming a field by its stable id rewrites every reference to it in the
  draft, so a rename is a refactoring rather than a break found at run time.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from plinth.errors import Conflict, Fault, NotFound, ValidationFailed
from plinth.metadata.kinds.entity import SYSTEM_FIELDS

FIELD_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


@dataclass(frozen=True)
class FieldRef:
    """One place in the definition that names `entity.field`."""

    path: str
    entity: str
    field: str
    rewrite: Callable[[str, str], None]  # (old name, new name) -> rewrites it in place
    # False when the document's own kind check already reports this reference when broken.
    checked: bool = True


# finder(name, document, whole definition) -> references in that document
Finder = Callable[[str, dict[str, Any], dict[str, Any]], Iterable[FieldRef]]
_finders: dict[str, list[Finder]] = {}


def register_finder(section: str, finder: Finder) -> None:
    """Add a finder for the documents of `section` (once)."""
    found = _finders.setdefault(section, [])
    if finder not in found:
        found.append(finder)


def references(definition: dict[str, Any], section: str | None = None) -> Iterator[FieldRef]:
    """Every field reference in the definition (or in one section)."""
    for name_of_section, finders in _finders.items():
        if section is not None and name_of_section != section:
            continue
        docs = definition.get(name_of_section)
        if not isinstance(docs, dict):
            continue
        for name, doc in docs.items():
            if isinstance(doc, dict):
                for finder in finders:
                    yield from finder(name, doc, definition)


def fields_of(definition: dict[str, Any], entity: str) -> set[str] | None:
    """The fields an entity's records have (declared and system), or None: no such entity."""
    doc = (definition.get("entities") or {}).get(entity)
    if not isinstance(doc, dict):
        return None
    return set(doc.get("fields") or {}) | set(SYSTEM_FIELDS)


def faults(refs: Iterable[FieldRef], definition: dict[str, Any]) -> list[Fault]:
    """A fault for each checked reference to a field its entity does not have."""
    found = []
    for ref in refs:
        if not ref.checked:
            continue
        fields = fields_of(definition, ref.entity)
        if fields is not None and ref.field not in fields:
            found.append(
                Fault(
                    ref.path,
                    f"entity {ref.entity!r} has no field {ref.field!r}" + _hint(ref.field, fields),
                    "unknown_field",
                )
            )
    return found


def _hint(name: str, fields: set[str]) -> str:
    close = sorted(f for f in fields if name in f or f in name)
    return f" (did you mean {close[0]!r}?)" if close else ""


def check_section(section: str) -> Callable[[str, dict[str, Any], dict[str, Any]], list[Fault]]:
    """A kind check reporting the broken field references of one document of `section`."""

    def check(name: str, doc: dict[str, Any], definition: dict[str, Any]) -> list[Fault]:
        refs = (r for f in _finders.get(section, []) for r in f(name, doc, definition))
        return faults(refs, definition)

    check.__name__ = f"check_{section}_references"
    return check


# -- rewriting helpers for finders ---------------------------------------------------------


def key_ref(path: str, entity: str, mapping: dict[str, Any], key: str, **kw: Any) -> FieldRef:
    """A field named as a key of `mapping` (renamed in place, order kept)."""

    def rewrite(old: str, new: str) -> None:
        if old in mapping:
            items = [(new if k == old else k, v) for k, v in mapping.items()]
            mapping.clear()
            mapping.update(items)

    return FieldRef(path, entity, key, rewrite, **kw)


def value_ref(path: str, entity: str, holder: Any, key: Any, **kw: Any) -> FieldRef:
    """A field named by the whole string `holder[key]` (a list item or a map value)."""

    def rewrite(old: str, new: str) -> None:
        if holder[key] == old:
            holder[key] = new

    return FieldRef(path, entity, str(holder[key]), rewrite, **kw)


# A string literal (skipped: its text is data) or a member access on a root.
_LITERAL = r"'''.*?'''|\"\"\".*?\"\"\"|'(?:\\.|[^'\\])*'|\"(?:\\.|[^\"\\])*\""


def _member_pattern(roots: Iterable[str]) -> re.Pattern[str]:
    alternatives = "|".join(re.escape(r) for r in sorted(roots, key=len, reverse=True))
    return re.compile(
        rf"(?P<lit>{_LITERAL})|(?<![\w.])(?P<root>{alternatives})\.(?P<field>[a-z_][a-z0-9_]*)\b",
        re.S,
    )


def expression_refs(
    path: str, holder: Any, key: Any, roots: dict[str, str], **kw: Any
) -> Iterator[FieldRef]:
    """Fields read in the expression (or template) `holder[key]` through `roots`, each root
    (`vars.record`) standing for a record of an entity. String literals are not read."""
    text = holder[key]
    if not isinstance(text, str) or not roots:
        return
    pattern = _member_pattern(roots)
    for match in pattern.finditer(text):
        if match.group("lit") is not None:
            continue
        root, name = match.group("root"), match.group("field")
        entity = roots[root]

        def rewrite(old: str, new: str, root: str = root) -> None:
            def swap(m: re.Match[str]) -> str:
                if m.group("lit") is None and m.group("root") == root and m.group("field") == old:
                    return f"{root}.{new}"
                return m.group(0)

            holder[key] = pattern.sub(swap, holder[key])

        yield FieldRef(path, entity, name, rewrite, **kw)


def strings(value: Any, path: str) -> Iterator[tuple[str, Any, Any]]:
    """Every string inside `value`, as (path, holder, key)."""
    items: Iterable[tuple[Any, Any]]
    if isinstance(value, dict):
        items = value.items()
        fmt = "{}.{}"
    elif isinstance(value, list):
        items = enumerate(value)
        fmt = "{}[{}]"
    else:
        return
    for k, v in items:
        sub = fmt.format(path, k) if path else str(k)
        if isinstance(v, str):
            yield sub, value, k
        else:
            yield from strings(v, sub)


# -- the refactoring -------------------------------------------------------------------------


@dataclass(frozen=True)
class Renamed:
    definition: dict[str, Any]
    entity: str
    old: str
    new: str
    rewritten: list[str]


def field_by_id(definition: dict[str, Any], entity: str, field_id: str) -> str:
    """The current name of the field with stable id `field_id` on `entity`."""
    doc = (definition.get("entities") or {}).get(entity)
    if not isinstance(doc, dict):
        raise NotFound(f"No entity named {entity!r} in this draft", path="entity")
    for name, spec in (doc.get("fields") or {}).items():
        if isinstance(spec, dict) and spec.get("id") == field_id:
            return str(name)
    raise NotFound(f"Entity {entity!r} has no field with id {field_id!r}", path="field_id")


def rename_field(definition: dict[str, Any], entity: str, field_id: str, new: str) -> Renamed:
    """A copy of the definition with the field renamed and every reference to it rewritten."""
    if not FIELD_NAME.match(new):
        raise ValidationFailed.of(
            [
                Fault(
                    "to",
                    "a field name is lower-case letters, digits or '_', starting with a letter",
                )
            ],
            "rename",
        )
    result = copy.deepcopy(definition)
    old = field_by_id(result, entity, field_id)
    fields = result["entities"][entity]["fields"]
    if new == old:
        return Renamed(result, entity, old, new, [])
    if new in fields or new in SYSTEM_FIELDS:
        raise Conflict(f"Entity {entity!r} already has a field named {new!r}", path="to")
    # Find every reference first (the finders read names), then rewrite them all.
    found = [r for r in references(result) if r.entity == entity and r.field == old]
    for ref in found:
        ref.rewrite(old, new)
    key_ref(f"entities.{entity}.fields", entity, fields, old).rewrite(old, new)
    paths = sorted(dict.fromkeys(r.path for r in found))
    return Renamed(result, entity, old, new, paths)


# -- the entity kind's own references (title, compliance settings, indexes) ------------------


def _entity_refs(name: str, doc: dict[str, Any], definition: dict[str, Any]) -> Iterator[FieldRef]:
    base = f"entities.{name}"
    if isinstance(doc.get("title_field"), str):
        yield value_ref(f"{base}.title_field", name, doc, "title_field", checked=False)
    for section, keys in (("subject", ("country_field", "key_field")), ("retention", ("field",))):
        part = doc.get(section)
        if isinstance(part, dict):
            for key in keys:
                if isinstance(part.get(key), str):
                    yield value_ref(f"{base}.{section}.{key}", name, part, key, checked=False)
    for i, index in enumerate(doc.get("indexes") or []):
        if isinstance(index, dict):
            for j, item in enumerate(index.get("fields") or []):
                if isinstance(item, str):
                    path = f"{base}.indexes[{i}].fields[{j}]"
                    yield value_ref(path, name, index["fields"], j, checked=False)


register_finder("entities", _entity_refs)
