"""CEL computed fields and rules: type-checked at publish, compiled once, evaluated per write.

The CEL wrapper itself is `plinth.expressions`; here an entity's fields become its variables.
"""

from __future__ import annotations

from typing import Any

from plinth.errors import Fault
from plinth.expressions import Environment, ExpressionError, Program, Type
from plinth.runtime import types

__all__ = ["Program", "check_entity", "compile_entity", "environment"]


def environment(fields: dict[str, Any]) -> Environment:
    """A CEL environment declaring every field of an entity with its type, plus `id`."""
    variables = {name: getattr(Type, types.cel_type(spec)) for name, spec in fields.items()}
    variables["id"] = Type.STRING
    return Environment(variables)


def compile_entity(
    name: str, doc: dict[str, Any]
) -> tuple[list[Fault], dict[str, Program], list[tuple[Program, str, str]]]:
    """Type-check an entity's computed fields and rules: faults, computed programs, rules."""
    fields = doc.get("fields", {})
    env = environment(fields)
    faults: list[Fault] = []
    computed: dict[str, Program] = {}
    rules: list[tuple[Program, str, str]] = []
    for fname, spec in fields.items():
        if "computed" not in spec:
            continue
        path = f"entities.{name}.fields.{fname}.computed"
        try:
            program = env.compile(spec["computed"], path)
        except ExpressionError as exc:
            faults.append(Fault(path, str(exc), "cel_error"))
            continue
        want = getattr(Type, types.cel_type(spec))
        got = program.expression.return_type()
        if (
            want != Type.DYN
            and got != Type.DYN
            and not (want == got or (want == Type.DOUBLE and got == Type.INT))
        ):
            faults.append(
                Fault(
                    path,
                    f"the expression gives {got.name().lower()}, the field is {spec['type']}",
                    "cel_type",
                )
            )
            continue
        computed[fname] = program
    for i, rule in enumerate(doc.get("rules", [])):
        path = f"entities.{name}.rules[{i}].expr"
        try:
            program = env.compile(rule["expr"], path)
        except ExpressionError as exc:
            faults.append(Fault(path, str(exc), "cel_error"))
            continue
        if program.expression.return_type() not in (Type.BOOL, Type.DYN):
            faults.append(
                Fault(
                    path,
                    f"a rule must be true or false, this gives {program.type_name.lower()}",
                    "cel_type",
                )
            )
            continue
        rules.append((program, rule["message"], rule.get("path", "")))
    return faults, computed, rules


def check_entity(name: str, doc: dict[str, Any], _definition: dict[str, Any]) -> list[Fault]:
    """A metadata check: every CEL expression of the entity type-checks."""
    return compile_entity(name, doc)[0]
