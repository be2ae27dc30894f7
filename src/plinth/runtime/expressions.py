"""CEL computed fields and rules: type-checked at publish, compiled once, evaluated per write.

We use `cel-expr-python` (Google's cel-cpp): its checker knows each field's declared type and
reports errors with line:column, so a typo is a publish fault with its path, not a runtime 500.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from cel_expr_python import cel

from plinth.errors import Fault
from plinth.runtime import types

_POSITION = re.compile(r"<input>:(\d+):(\d+): (.*?)(?:\n|$)")


@dataclass(frozen=True)
class Program:
    """One compiled expression and where it came from."""

    path: str
    source: str
    expression: Any

    def evaluate(self, data: dict[str, Any]) -> Any:
        """The value, or None when a field it reads is empty (CEL has no nulls for scalars)."""
        try:
            value = self.expression.eval(data=data)
        except RuntimeError:
            return None
        if value.type() == cel.Type.ERROR:  # e.g. a field it reads is empty
            return None
        return value.value()


def environment(fields: dict[str, Any]) -> Any:
    """A CEL environment declaring every field of an entity with its type, plus `id`."""
    variables = {name: getattr(cel.Type, types.cel_type(spec)) for name, spec in fields.items()}
    variables["id"] = cel.Type.STRING
    return cel.NewEnv(variables=variables)


def _message(exc: Exception) -> str:
    text = str(exc)
    found = _POSITION.search(text)
    if found:
        return f"line {found.group(1)}, column {found.group(2)}: {found.group(3)}"
    return text.splitlines()[0] if text else "invalid expression"


def compile_entity(name: str, doc: dict[str, Any]) -> tuple[list[Fault], dict[str, Program],
                                                              list[tuple[Program, str, str]]]:
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
            expr = env.compile(spec["computed"])
        except RuntimeError as exc:
            faults.append(Fault(path, _message(exc), "cel_error"))
            continue
        want = getattr(cel.Type, types.cel_type(spec))
        got = expr.return_type()
        if want != cel.Type.DYN and got != cel.Type.DYN and not (
            want == got or (want == cel.Type.DOUBLE and got == cel.Type.INT)
        ):
            faults.append(Fault(path, f"the expression gives {got.name().lower()}, the field "
                                f"is {spec['type']}", "cel_type"))
            continue
        computed[fname] = Program(path, spec["computed"], expr)
    for i, rule in enumerate(doc.get("rules", [])):
        path = f"entities.{name}.rules[{i}].expr"
        try:
            expr = env.compile(rule["expr"])
        except RuntimeError as exc:
            faults.append(Fault(path, _message(exc), "cel_error"))
            continue
        if expr.return_type() not in (cel.Type.BOOL, cel.Type.DYN):
            faults.append(Fault(path, "a rule must be true or false, this gives "
                                f"{expr.return_type().name().lower()}", "cel_type"))
            continue
        rules.append((Program(path, rule["expr"], expr), rule["message"],
                      rule.get("path", "")))
    return faults, computed, rules


def check_entity(name: str, doc: dict[str, Any], _definition: dict[str, Any]) -> list[Fault]:
    """A metadata check: every CEL expression of the entity type-checks."""
    return compile_entity(name, doc)[0]
