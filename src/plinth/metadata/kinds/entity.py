"""The `entity` kind: a data model with typed fields, constraints, rules and indexes."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from plinth.errors import Fault
from plinth.metadata.kinds.registry import Kind, load_schema, register

# Columns every entity table has; fields may not take these names.
SYSTEM_FIELDS = frozenset({"id", "created_at", "updated_at", "created_by", "updated_by", "version"})

NUMERIC = {"integer", "decimal"}
STRINGY = {"string", "text", "email", "url"}


def _check_default(ftype: str, spec: dict[str, Any], path: str) -> list[Fault]:
    if "default" not in spec:
        return []
    value = spec["default"]
    ok = {
        "string": lambda v: isinstance(v, str),
        "text": lambda v: isinstance(v, str),
        "email": lambda v: isinstance(v, str),
        "url": lambda v: isinstance(v, str),
        "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "decimal": lambda v: isinstance(v, int | float | str) and not isinstance(v, bool),
        "boolean": lambda v: isinstance(v, bool),
        "enum": lambda v: v in spec.get("values", []),
        "date": lambda v: isinstance(v, str),
        "datetime": lambda v: isinstance(v, str),
    }.get(ftype, lambda v: True)
    if value is not None and not ok(value):
        return [Fault(f"{path}.default", f"default {value!r} does not fit type {ftype}")]
    return []


def check_entity(name: str, doc: dict[str, Any], definition: dict[str, Any]) -> list[Fault]:
    """Checks the schema cannot express: types vs constraints, references, names in use."""
    base = f"entities.{name}"
    found: list[Fault] = []
    fields: dict[str, Any] = doc.get("fields", {})
    entities = definition.get("entities", {})
    seen_ids: dict[str, str] = {}
    for fname, spec in fields.items():
        path = f"{base}.fields.{fname}"
        ftype = spec.get("type")
        if fname in SYSTEM_FIELDS:
            found.append(
                Fault(path, f"{fname!r} is a system field; choose another name", "reserved_name")
            )
        fid = spec.get("id")
        if fid:
            if fid in seen_ids:
                found.append(
                    Fault(
                        f"{path}.id",
                        f"id {fid!r} is also used by field {seen_ids[fid]!r}",
                        "duplicate_id",
                    )
                )
            seen_ids[fid] = fname
        if ftype == "enum" and "values" not in spec:
            found.append(
                Fault(f"{path}.values", "an enum field needs its list of values", "required")
            )
        if ftype != "enum" and "values" in spec:
            found.append(Fault(f"{path}.values", "only enum fields take values"))
        if ftype == "reference":
            target = spec.get("entity")
            if not target:
                found.append(
                    Fault(f"{path}.entity", "a reference names the entity it points to", "required")
                )
            elif target not in entities:
                found.append(
                    Fault(
                        f"{path}.entity",
                        f"no entity named {target!r} in this app",
                        "unknown_reference",
                    )
                )
        elif "entity" in spec or "on_delete" in spec:
            found.append(Fault(f"{path}.entity", "only reference fields point to an entity"))
        if ("min" in spec or "max" in spec) and ftype not in NUMERIC | {"date", "datetime"}:
            found.append(
                Fault(
                    f"{path}.min" if "min" in spec else f"{path}.max",
                    f"min/max do not apply to {ftype} fields",
                )
            )
        if "min" in spec and "max" in spec and spec["min"] > spec["max"]:
            found.append(Fault(f"{path}.min", f"min {spec['min']} is above max {spec['max']}"))
        for key in ("minLength", "maxLength", "pattern"):
            if key in spec and ftype not in STRINGY:
                found.append(Fault(f"{path}.{key}", f"{key} applies to text fields only"))
        if spec.get("minLength", 0) > spec.get("maxLength", 1 << 31):
            found.append(Fault(f"{path}.minLength", "minLength is above maxLength"))
        if "pattern" in spec:
            try:
                re.compile(spec["pattern"])
            except re.error as exc:
                found.append(Fault(f"{path}.pattern", f"not a valid regular expression: {exc}"))
        if ("precision" in spec or "scale" in spec) and ftype != "decimal":
            found.append(Fault(f"{path}.precision", "precision/scale apply to decimal fields"))
        if ftype == "decimal" and spec.get("scale", 2) > spec.get("precision", 18):
            found.append(Fault(f"{path}.scale", "scale cannot exceed precision"))
        if "schema" in spec and ftype != "json":
            found.append(Fault(f"{path}.schema", "only json fields take a schema"))
        if "computed" in spec and ("default" in spec or spec.get("required")):
            found.append(
                Fault(
                    f"{path}.computed",
                    "a computed field takes no default and is never required input",
                )
            )
        found += _check_default(ftype or "", spec, path)
    title = doc.get("title_field")
    if title and title not in fields:
        found.append(Fault(f"{base}.title_field", f"no field named {title!r}", "unknown_field"))
    for i, index in enumerate(doc.get("indexes", [])):
        for j, fname in enumerate(index.get("fields", [])):
            if fname not in fields:
                found.append(
                    Fault(
                        f"{base}.indexes[{i}].fields[{j}]",
                        f"no field named {fname!r}",
                        "unknown_field",
                    )
                )
    return found


ENTITY = register(
    Kind(
        name="entity",
        section="entities",
        schema=load_schema(Path(__file__).with_name("entity.schema.json")),
        id_prefix="ent",
        keyed={"fields": "fld"},
        ordered=frozenset({"fields"}),
        checks=[check_entity],
    )
)
