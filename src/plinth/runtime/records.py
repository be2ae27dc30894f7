"""Turning request bodies into rows and rows into records: defaults, validation, CEL.

Pure apart from the compiled entity it is handed: one place decides what a valid write is.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from plinth.errors import Fault
from plinth.jsonschema import faults as schema_faults
from plinth.jsonschema import join_path
from plinth.runtime import types
from plinth.runtime.compiled import CompiledEntity
from plinth.runtime.tables import SYSTEM_COLUMNS


def with_defaults(entity: CompiledEntity, data: dict[str, Any]) -> dict[str, Any]:
    """A new record's input with each missing field's default."""
    out = dict(data)
    for name, spec in entity.fields.items():
        if name not in out and "default" in spec:
            out[name] = spec["default"]
    return out


def strip_system(data: dict[str, Any]) -> dict[str, Any]:
    """System fields are the platform's to set; a client echoing them back is harmless."""
    return {k: v for k, v in data.items() if k not in SYSTEM_COLUMNS}


def check(
    entity: CompiledEntity,
    data: dict[str, Any],
    prefix: str = "",
    anonymised: frozenset[str] = frozenset(),
) -> tuple[dict[str, Any], list[Fault]]:
    """Validate a whole record's input; the row values (computed included) or every fault.

    `anonymised`: required fields that anonymisation emptied in the stored record and this
    write leaves alone; they stay empty (work on an anonymised record goes on)."""
    found: list[Fault] = []
    for name in data:
        if name in entity.fields and "computed" in entity.fields[name]:
            found.append(
                Fault(
                    join_path(prefix, [name]),
                    "is computed from other fields and cannot be written",
                    "computed",
                )
            )
    if found:
        return {}, found
    found = schema_faults(entity.validator, data, prefix)
    if anonymised:
        emptied = {join_path(prefix, [n]) for n in anonymised}
        found = [f for f in found if not (f.code == "required" and f.path in emptied)]
    if found:
        return {}, found
    row: dict[str, Any] = {}
    for name, spec in entity.fields.items():
        if "computed" in spec:
            continue
        try:
            value = types.to_db(spec, data.get(name))
        except types.ConversionError as exc:
            found.append(Fault(join_path(prefix, [name]), str(exc), "conversion"))
            continue
        if isinstance(value, Decimal):
            if "min" in spec and value < Decimal(str(spec["min"])):
                found.append(Fault(join_path(prefix, [name]), f"is below {spec['min']}", "minimum"))
            if "max" in spec and value > Decimal(str(spec["max"])):
                found.append(Fault(join_path(prefix, [name]), f"is above {spec['max']}", "maximum"))
        row[name] = value
    if found:
        return {}, found
    cel_data = {n: types.to_cel(entity.fields[n], v) for n, v in row.items() if v is not None}
    for name, program in entity.computed.items():
        value = program.evaluate(cel_data)
        spec = entity.fields[name]
        try:
            row[name] = types.to_db(spec, value)
        except types.ConversionError as exc:
            found.append(Fault(join_path(prefix, [name]), f"computed value: {exc}", "computed"))
            continue
        if row[name] is not None:
            cel_data[name] = types.to_cel(spec, row[name])
    for program, message, path in entity.rules:
        if program.evaluate(cel_data) is False:
            found.append(Fault(join_path(prefix, [path]) if path else prefix, message, "rule"))
    return row, found


def to_record(
    entity: CompiledEntity,
    row: Any,
    readable: set[str] | None = None,
    fields: list[str] | None = None,
) -> dict[str, Any]:
    """A row as the API's record: system fields first, then fields as JSON."""
    m = row._mapping if hasattr(row, "_mapping") else row
    stamp = types.datetime_json
    created, updated = m["created_at"], m["updated_at"]
    created_text = None if created is None else stamp(created)
    record: dict[str, Any] = {
        "id": m["id"],
        "version": m["version"],
        "created_at": created_text,
        # A record never updated has one moment twice (a create's, a row read back): one text.
        "updated_at": (
            None if updated is None else created_text if updated == created else stamp(updated)
        ),
        "created_by": m["created_by"],
        "updated_by": m["updated_by"],
    }
    for name, convert in _converters(entity):
        if readable is not None and name not in readable:
            continue
        value = m[name]
        record[name] = value if value is None or convert is None else convert(value)
    if fields:
        keep = set(fields) | {"id"}
        record = {k: v for k, v in record.items() if k in keep}
    return record


def _converters(entity: CompiledEntity) -> list[tuple[str, Any]]:
    if entity.converters is None:
        entity.converters = [
            (name, types.json_converter(spec)) for name, spec in entity.fields.items()
        ]
    return entity.converters
