"""Unit tests of the pure parts: types, the planner, the filter parser, CEL checking."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy.dialects import sqlite

from plinth.errors import BadRequest
from plinth.runtime import expressions, filters, plan, types
from plinth.runtime.compiled import compile_app


def test_decimal_is_exact_and_bounded() -> None:
    spec = {"type": "decimal", "precision": 5, "scale": 2}
    assert types.to_db(spec, "12.345") == Decimal("12.34")  # banker's rounding
    assert types.to_json(spec, Decimal("3")) == "3.00"
    with pytest.raises(types.ConversionError):
        types.to_db(spec, "123456")


def test_conversions_name_what_fails() -> None:
    assert types.to_db({"type": "integer"}, "12") == 12
    with pytest.raises(types.ConversionError):
        types.to_db({"type": "integer"}, "x1")
    with pytest.raises(types.ConversionError):
        types.to_db({"type": "boolean"}, "maybe")
    assert types.is_narrowing({"type": "text"}, {"type": "integer"})
    assert not types.is_narrowing({"type": "integer"}, {"type": "decimal"})
    assert types.is_narrowing(
        {"type": "enum", "values": ["a", "b"]}, {"type": "enum", "values": ["a"]}
    )


def _doc(**fields: dict[str, object]) -> dict[str, object]:
    return {"id": "ent_1", "fields": fields}


def test_planner_sees_renames_by_id() -> None:
    old = {"entities": {"a": _doc(x={"id": "f1", "type": "string"})}}
    new = {"entities": {"b": _doc(y={"id": "f1", "type": "string"})}}
    ops = plan.plan(old, new)
    assert [op.kind for op in ops] == ["rename_table", "rename_column"]
    assert not plan.destructive(ops)
    back = plan.plan(new, old)  # the inverse plan
    assert [(op.kind, op.entity, op.field) for op in back] == [
        ("rename_table", "a", ""),
        ("rename_column", "a", "x"),
    ]


def test_planner_flags_drops_and_narrowing() -> None:
    old = {
        "entities": {"a": _doc(x={"id": "f1", "type": "text"}, y={"id": "f2", "type": "integer"})}
    }
    new = {"entities": {"a": _doc(x={"id": "f1", "type": "integer", "unique": True})}}
    ops = plan.plan(old, new)
    kinds = {op.kind: op.destructive for op in ops}
    assert kinds == {"drop_column": True, "alter_column": True, "create_index": False}
    assert [op.kind for op in plan.plan(old, {})] == ["drop_table"]


def test_filter_text_parses_to_the_ast() -> None:
    ast = filters.parse("a eq 'it''s' and not (b gt 1.5 or c in (1, 2)) or d isnull false")
    assert ast == {
        "or": [
            {
                "and": [
                    {"field": "a", "op": "eq", "value": "it's"},
                    {
                        "not": {
                            "or": [
                                {"field": "b", "op": "gt", "value": 1.5},
                                {"field": "c", "op": "in", "value": [1, 2]},
                            ]
                        }
                    },
                ]
            },
            {"field": "d", "op": "isnull", "value": False},
        ]
    }
    for bad in ["a eq", "a like 'x'", "(a eq 1", "a eq 1 2", "a eq b", "a in 1"]:
        with pytest.raises(BadRequest):
            filters.parse(bad)


def test_compiled_filter_binds_every_value() -> None:
    app = compile_app(
        "t",
        "app",
        1,
        {
            "entities": {
                "e": _doc(name={"id": "f1", "type": "string"}, n={"id": "f2", "type": "integer"})
            }
        },
    )
    entity = app.entities["e"]
    cond = filters.compile_filter(entity, filters.parse("name eq 'x'' OR 1=1 --' and n gt 2"))
    sql = str(cond.compile(dialect=sqlite.dialect()))
    assert "OR 1=1" not in sql and sql.count("?") == 2
    with pytest.raises(BadRequest) as err:
        filters.compile_filter(entity, {"field": "name; drop", "op": "eq", "value": 1})
    assert "name; drop" in err.value.detail


def test_cel_checks_types_with_positions() -> None:
    faults, computed, rules = expressions.compile_entity(
        "e",
        {
            "fields": {
                "n": {"type": "integer"},
                "twice": {"type": "integer", "computed": "n * 2"},
                "bad": {"type": "string", "computed": "n + 1"},
            },
            "rules": [
                {"expr": "n >= 0", "message": "non-negative"},
                {"expr": "n > 'a'", "message": "x"},
            ],
        },
    )
    assert [f.path for f in faults] == [
        "entities.e.fields.bad.computed",
        "entities.e.rules[1].expr",
    ]
    assert "column 3" in faults[1].message
    assert computed["twice"].evaluate({"n": 4}) == 8
    assert rules[0][0].evaluate({"n": -1}) is False
    assert computed["twice"].evaluate({}) is None  # an empty field yields no value


def test_type_change_rebuilds_the_indexes_of_the_column() -> None:
    old = {"entities": {"a": _doc(x={"id": "f1", "type": "string", "unique": True})}}
    new = {"entities": {"a": _doc(x={"id": "f1", "type": "integer", "unique": True})}}
    assert [op.kind for op in plan.plan(old, new)] == ["drop_index", "alter_column", "create_index"]


def test_tenants_running_one_app_version_share_its_compiled_entities() -> None:
    from plinth.runtime.compiled import Registry

    notes = {"entities": {"note": {"fields": {"text": {"type": "string"}}}}}
    registry = Registry(bound=2)
    first = registry.compile("t1", "notes", 1, "hash-1", notes)
    second = registry.compile("t2", "notes", 3, "hash-1", notes)
    assert second.entities is first.entities  # nothing compiled for the second tenant
    assert (second.tenant_id, second.version) == ("t2", 3)
    # On PostgreSQL too: the tables name no schema (the connection's search path does).
    assert first.entities["note"].table.schema is None
    changed = registry.compile("t1", "notes", 2, "hash-2", notes)
    assert changed.entities is not first.entities
    third = registry.compile("t3", "notes", 1, "hash-1", notes)
    for app in (first, second, third):
        registry.put(app)
    assert len(registry) == 2 and registry.get("t1", "notes") is None  # least recently used
