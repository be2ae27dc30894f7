"""The fields of entities a workflow names: in expressions, record inputs and forms.

`vars.record` is the record whose event started the workflow (one entity for every record
start), `record` the same in the business `key` and start conditions; a node's `output` holding
a record or a form of an entity (`vars.review`) reads that entity's fields. Expressions are CEL
over maps, so `vars.record.amount` on an entity without `amount` fails only when it runs
(`Key not found in map`): these references are checked at publish and rewritten by a rename.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from plinth.metadata.references import (
    FieldRef,
    check_section,
    expression_refs,
    key_ref,
    register_finder,
    strings,
    value_ref,
)

RECORD_ACTIONS = ("record.update", "record.create")
NOT_EXPRESSIONS = ("type", "title", "description", "next", "output", "entity", "action")


def _record_entity(doc: dict[str, Any]) -> str | None:
    entities = {s.get("entity") for s in doc.get("start") or [] if s.get("type") == "record"}
    entities.discard(None)
    return str(entities.pop()) if len(entities) == 1 else None


def _output_entity(spec: dict[str, Any]) -> str | None:
    """The entity whose fields the node's output holds, if it holds one's."""
    form = spec.get("form")
    if isinstance(form, dict) and isinstance(form.get("entity"), str):
        return str(form["entity"])
    if spec.get("action") in RECORD_ACTIONS and isinstance(spec.get("entity"), str):
        return str(spec["entity"])
    return None


def field_references(
    name: str, doc: dict[str, Any], definition: dict[str, Any]
) -> Iterator[FieldRef]:
    """Every field reference in one workflow."""
    base = f"workflows.{name}"
    record = _record_entity(doc)
    roots: dict[str, str] = {}
    if record:
        roots["vars.record"] = record
    nodes = doc.get("nodes") or {}
    for spec in nodes.values():
        output, entity = spec.get("output"), _output_entity(spec)
        if isinstance(output, str) and entity and output != "record":
            roots[f"vars.{output}"] = entity
    start_roots = {"record": record, **roots} if record else roots
    if isinstance(doc.get("key"), str):
        yield from expression_refs(f"{base}.key", doc, "key", start_roots)
    for i, start in enumerate(doc.get("start") or []):
        if isinstance(start.get("condition"), str):
            yield from expression_refs(
                f"{base}.start[{i}].condition", start, "condition", start_roots
            )
    for node, spec in nodes.items():
        path = f"{base}.nodes.{node}"
        if spec.get("action") in RECORD_ACTIONS and isinstance(spec.get("entity"), str):
            inputs = spec.get("input")
            for fname in list(inputs if isinstance(inputs, dict) else []):
                yield key_ref(f"{path}.input.{fname}", spec["entity"], inputs, fname)
        form = spec.get("form")
        if isinstance(form, dict) and isinstance(form.get("entity"), str):
            for key in ("show", "fields"):
                items = form.get(key)
                for i, item in enumerate(items if isinstance(items, list) else []):
                    if isinstance(item, str):  # the user task's own check reports these
                        path_i = f"{path}.form.{key}[{i}]"
                        yield value_ref(path_i, form["entity"], items, i, checked=False)
        for key, value in spec.items():
            if key in NOT_EXPRESSIONS:
                continue
            if isinstance(value, str):
                yield from expression_refs(f"{path}.{key}", spec, key, roots)
            else:
                for spath, holder, k in strings(value, f"{path}.{key}"):
                    yield from expression_refs(spath, holder, k, roots)


register_finder("workflows", field_references)
check_references = check_section("workflows")
