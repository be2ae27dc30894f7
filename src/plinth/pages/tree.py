"""Publish-time checks of a component tree: structure, kinds, props, bindings, references.

Pure functions over the definition, so the designer can run them live and publish runs them
once. Every fault carries the dotted path of the offending value.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import cel
from cel_expr_python import cel as celtypes

from plinth.errors import Fault
from plinth.jsonschema import compile_schema
from plinth.jsonschema import faults as schema_faults
from plinth.pages import components
from plinth.pages.bindings import PROP_TYPES, STRUCT, Types
from plinth.pages.bindings import check as type_check

BINDING = re.compile(r"\{\{(.*?)\}\}", re.S)
WHOLE = re.compile(r"^\s*\{\{(.*?)\}\}\s*$", re.S)
# Columns every record has besides its declared fields (see the entity kind).
SYSTEM_FIELDS = ("id", "created_at", "updated_at", "created_by", "updated_by", "version")
# Props that name fields of the component's `entity`.
FIELD_LIST_PROPS = ("columns", "fields")
FIELD_PROPS = ("group_by", "value_field")


def bindings(value: Any, path: str) -> Iterator[tuple[str, str]]:
    """Every `{{ expr }}` inside a value (strings, nested lists and maps), with its path."""
    if isinstance(value, str):
        for match in BINDING.finditer(value):
            yield path, match.group(1).strip()
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from bindings(item, f"{path}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from bindings(item, f"{path}[{i}]")


def parse_error(expr: str) -> str | None:
    """Why a CEL expression does not parse, or None when it does."""
    if not expr:
        return "an empty binding; write an expression between {{ and }}"
    try:
        cel.compile(expr)
    except ValueError as exc:
        text = str(exc)
        return text.split("ERROR: ", 1)[-1].split("\n", 1)[0] if "ERROR: " in text else text
    return None


def _entity_fields(definition: dict[str, Any], entity: str) -> set[str] | None:
    doc = definition.get("entities", {}).get(entity)
    if not isinstance(doc, dict):
        return None
    return set(doc.get("fields", {})) | set(SYSTEM_FIELDS)


def _check_entity_refs(props: dict[str, Any], path: str, definition: dict[str, Any]) -> list[Fault]:
    found: list[Fault] = []
    entity = props.get("entity")
    if not isinstance(entity, str):
        return found
    fields = _entity_fields(definition, entity)
    if fields is None:
        return [
            Fault(f"{path}.entity", f"no entity named {entity!r} in this app", "unknown_reference")
        ]
    for key in FIELD_LIST_PROPS:
        for i, name in enumerate(props.get(key) or []):
            if name not in fields:
                found.append(
                    Fault(
                        f"{path}.{key}[{i}]",
                        f"entity {entity!r} has no field {name!r}",
                        "unknown_field",
                    )
                )
    for key in FIELD_PROPS:
        name = props.get(key)
        if isinstance(name, str) and name not in fields:
            found.append(
                Fault(f"{path}.{key}", f"entity {entity!r} has no field {name!r}", "unknown_field")
            )
    for part in str(props.get("sort") or "").split(","):
        name = part.lstrip("-")
        if name and name not in fields:
            found.append(
                Fault(f"{path}.sort", f"entity {entity!r} has no field {name!r}", "unknown_field")
            )
    return found


def _check_action(action: dict[str, Any], path: str, definition: dict[str, Any]) -> list[Fault]:
    found: list[Fault] = []
    entity = action.get("entity")
    if isinstance(entity, str):
        fields = _entity_fields(definition, entity)
        if fields is None:
            found.append(
                Fault(
                    f"{path}.entity", f"no entity named {entity!r} in this app", "unknown_reference"
                )
            )
        else:
            for name in action.get("values") or {}:
                if name not in fields:
                    found.append(
                        Fault(
                            f"{path}.values.{name}",
                            f"entity {entity!r} has no field {name!r}",
                            "unknown_field",
                        )
                    )
    workflow = action.get("workflow")
    workflows = definition.get("workflows")
    # Only checked once the workflow kind exists in this definition's world.
    if isinstance(workflow, str) and isinstance(workflows, dict) and workflow not in workflows:
        found.append(
            Fault(
                f"{path}.workflow",
                f"no workflow named {workflow!r} in this app",
                "unknown_reference",
            )
        )
    return found


# What each built-in event adds to the scope of its actions' bindings.
EVENT_SCOPE: dict[tuple[str, str], dict[str, str]] = {
    ("table", "row_click"): {"row": "entity"},
    ("form", "success"): {"record": "entity"},
    ("form", "error"): {"error": "STRING"},
    ("task_inbox", "complete"): {"task": STRUCT, "outcome": "STRING"},
    ("tabs", "change"): {"tab": "INT"},
}
# Action keys whose lone binding must give a string.
STRING_ACTION_KEYS = ("to", "record", "task", "outcome", "entity", "workflow", "component")


def _lone(value: Any) -> bool:
    """A string that is exactly one binding (the runtime then keeps the value's type)."""
    match = WHOLE.match(value) if isinstance(value, str) else None
    return bool(match) and "{{" not in match.group(1)  # type: ignore[union-attr]


def _check_value(
    types: Types, value: Any, where: str, extra: dict[str, str], want: Any = None
) -> list[Fault]:
    found: list[Fault] = []
    for at, expr in bindings(value, where):
        reason = parse_error(expr)
        if reason:
            found.append(Fault(at, f"binding {{{{ {expr} }}}} does not parse: {reason}", "binding"))
            continue
        reason = type_check(types, expr, extra, want if _lone(value) else None)
        if reason:
            found.append(Fault(at, f"binding {{{{ {expr} }}}}: {reason}", "binding_type"))
    return found


def _check_bindings(node: dict[str, Any], path: str, types: Types) -> list[Fault]:
    """Parse and type-check every binding of one node in its scope."""
    found: list[Fault] = []
    kind, props = node["kind"], node.get("props") or {}
    if "visible" in node:
        found += _check_value(types, node["visible"], f"{path}.visible", {}, celtypes.Type.BOOL)
    builtin = components.get(kind)
    schema_props = builtin.props.get("properties", {}) if builtin is not None else {}
    for key, value in props.items():
        declared = schema_props.get(key, {}).get("type")
        want = PROP_TYPES.get(declared) if isinstance(declared, str) else None
        found += _check_value(types, value, f"{path}.props.{key}", {}, want)
    for event, actions in (node.get("events") or {}).items():
        extra = {
            name: types.entity(props.get("entity")) if t == "entity" else t
            for name, t in EVENT_SCOPE.get((kind, event), {}).items()
        }
        for i, action in enumerate(actions or []):
            at = f"{path}.events.{event}[{i}]"
            for key, value in action.items():
                if key == "type":
                    continue
                want = None
                if key in STRING_ACTION_KEYS:
                    want = celtypes.Type.STRING
                elif key == "value" and action.get("type") == "set_state":
                    state_kind = types.state_kinds.get(str(action.get("key")), "DYN")
                    want = None if state_kind == "DYN" else getattr(celtypes.Type, state_kind)
                found += _check_value(types, value, f"{at}.{key}", extra, want)
            if action.get("type") in ("create_record", "update_record"):
                # later actions of the same event see the record it wrote
                extra = {**extra, "record": types.entity(action.get("entity"))}
    return found


def _kind_props_faults(
    kind: str, props: dict[str, Any], path: str, definition: dict[str, Any]
) -> list[Fault]:
    builtin = components.get(kind)
    if builtin is not None:
        return schema_faults(builtin.validator, props, f"{path}.props")
    if kind.startswith("component:"):
        name = kind.split(":", 1)[1]
        doc = definition.get("components", {}).get(name)
        if not isinstance(doc, dict):
            return [
                Fault(
                    f"{path}.kind", f"no component named {name!r} in this app", "unknown_component"
                )
            ]
        schema = doc.get("props") or {"type": "object"}
        try:
            validator = compile_schema(schema)
        except Exception:  # the component's own check reports its bad schema
            return []
        return schema_faults(validator, props, f"{path}.props")
    if components.is_plugin(kind):
        return []  # the plugin's manifest owns its props schema (checked by extensions)
    return [
        Fault(
            f"{path}.kind",
            f"unknown component kind {kind!r}; built-in kinds: "
            f"{', '.join(components.names())}, or component:<name>, "
            "or plugin:<package>/<element-name>",
            "unknown_component",
        )
    ]


def check_tree(
    tree: dict[str, Any],
    base: str,
    definition: dict[str, Any],
    *,
    state: dict[str, Any] | None = None,
    props: dict[str, Any] | None = None,
) -> list[Fault]:
    """Every fault of a component tree at `base` (e.g. `pages.file_claim.components`).

    A page passes its `state`; a reusable component its `props` schema (and no state, since
    it may sit on any page). Bindings are type-checked against both.
    """
    found: list[Fault] = []
    types = Types(definition, state=state, props=props, tree=tree)
    roots = [cid for cid, node in tree.items() if node.get("parent") is None]
    if len(roots) != 1:
        found.append(
            Fault(
                base,
                f"a tree has exactly one root (a component without parent); "
                f"found {len(roots)}: {', '.join(roots) or 'none'}",
                "tree",
            )
        )
    for cid, node in tree.items():
        path = f"{base}.{cid}"
        kind = node["kind"]
        parent = node.get("parent")
        if parent is not None:
            if parent not in tree:
                found.append(
                    Fault(
                        f"{path}.parent", f"no component {parent!r} in this tree", "unknown_parent"
                    )
                )
            else:
                pkind = components.get(tree[parent]["kind"])
                if pkind is not None and not pkind.container:
                    found.append(
                        Fault(
                            f"{path}.parent",
                            f"{parent!r} is a {tree[parent]['kind']}, which holds no children",
                            "not_a_container",
                        )
                    )
            seen = {cid}
            step = parent
            while step in tree and step is not None:
                if step in seen:
                    found.append(Fault(f"{path}.parent", "the parents form a cycle", "cycle"))
                    break
                seen.add(step)
                step = tree[step].get("parent")
        props = node.get("props") or {}
        found += _kind_props_faults(kind, props, path, definition)
        found += _check_entity_refs(props, f"{path}.props", definition)
        builtin = components.get(kind)
        for event, actions in (node.get("events") or {}).items():
            if builtin is not None and event not in builtin.events:
                found.append(
                    Fault(
                        f"{path}.events.{event}",
                        f"a {kind} emits no {event!r} "
                        f"event; it emits: {', '.join(builtin.events) or 'none'}",
                        "unknown_event",
                    )
                )
            for i, action in enumerate(actions):
                found += _check_action(action, f"{path}.events.{event}[{i}]", definition)
        found += _check_bindings(node, path, types)
    return found


def field_references(name: str, doc: dict[str, Any], definition: dict[str, Any]) -> Iterator[Any]:
    """Every field a page names (component props, sort, filters, actions, `record.` bindings),
    for the rename refactoring; `check_tree` reports the broken ones itself."""
    from plinth.metadata import references as refs

    for cname, comp in (doc.get("components") or {}).items():
        if not isinstance(comp, dict):
            continue
        path = f"pages.{name}.components.{cname}"
        props = comp.get("props") or {}
        entity = props.get("entity") if isinstance(props, dict) else None
        if isinstance(entity, str):
            for key in FIELD_LIST_PROPS:
                items = props.get(key)
                for i, item in enumerate(items if isinstance(items, list) else []):
                    if isinstance(item, str):
                        yield refs.value_ref(
                            f"{path}.props.{key}[{i}]", entity, items, i, checked=False
                        )
            for key in FIELD_PROPS:
                if isinstance(props.get(key), str):
                    yield refs.value_ref(f"{path}.props.{key}", entity, props, key, checked=False)
            if isinstance(props.get("sort"), str):
                yield from _sort_refs(f"{path}.props.sort", entity, props)
            if isinstance(props.get("filter"), str):
                yield from _filter_refs(f"{path}.props.filter", entity, props)
            roots = {"record": entity, "row": entity}
            for where in ("props", "events"):
                for spath, holder, key in refs.strings(comp.get(where), f"{path}.{where}"):
                    if BINDING.search(holder[key]):  # only bindings are read, not plain text
                        yield from refs.expression_refs(spath, holder, key, roots, checked=False)
        for where, action in _actions(comp.get("events")):
            target = action.get("entity")
            values = action.get("values")
            if isinstance(target, str) and isinstance(values, dict):
                for fname in list(values):
                    vpath = f"{path}.events.{where}.values.{fname}"
                    yield refs.key_ref(vpath, target, values, fname, checked=False)


def _actions(events: Any) -> Iterator[tuple[str, dict[str, Any]]]:
    if not isinstance(events, dict):
        return
    for event, actions in events.items():
        for i, action in enumerate(actions if isinstance(actions, list) else []):
            if isinstance(action, dict):
                yield f"{event}[{i}]", action


def _sort_refs(path: str, entity: str, props: dict[str, Any]) -> Iterator[Any]:
    from plinth.metadata.references import FieldRef

    for part in props["sort"].split(","):
        name = part.lstrip("-")
        if not name:
            continue

        def rewrite(old: str, new: str) -> None:
            parts = props["sort"].split(",")
            props["sort"] = ",".join(
                ("-" if p.startswith("-") else "")
                + (new if p.lstrip("-") == old else p.lstrip("-"))
                for p in parts
            )

        yield FieldRef(path, entity, name, rewrite, checked=False)


# A field compared in the data API's filter language (`status eq 'open'`).
_FILTER_FIELD = re.compile(
    r"(?P<lit>'(?:''|[^'])*')|\b(?P<field>[a-z_][a-z0-9_]*)(?=\s+(?:eq|ne|gt|ge|lt|le|in|contains|startswith)\b)"
)


def _filter_refs(path: str, entity: str, props: dict[str, Any]) -> Iterator[Any]:
    from plinth.metadata.references import FieldRef

    for match in _FILTER_FIELD.finditer(props["filter"]):
        if match.group("lit") is not None:
            continue

        def rewrite(old: str, new: str) -> None:
            def swap(m: re.Match[str]) -> str:
                return new if m.group("lit") is None and m.group("field") == old else m.group(0)

            props["filter"] = _FILTER_FIELD.sub(swap, props["filter"])

        yield FieldRef(path, entity, match.group("field"), rewrite, checked=False)
