"""CEL, the platform's one expression language: declared variables, type-checked compilation
with positioned errors, cached programs, and evaluation.

We use `cel-expr-python` (Google's cel-cpp): its checker knows each variable's declared type and
reports errors with line:column, so a typo is a publish fault with its path, not a runtime 500.
Each user declares its variables once in an `Environment` (the runtime an entity's fields, the
workflows the instance's `vars`, `record` and `now`); this is the only module that imports CEL.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from cel_expr_python import cel

from plinth.errors import Fault

Type = cel.Type  # the declared types of variables (Type.INT, Type.Map(Type.STRING, Type.DYN))

_POSITION = re.compile(r"<input>:(\d+):(\d+): (.*?)(?:\n|$)")
_CACHE_SIZE = 4096


class ExpressionError(Exception):
    """An expression failed to compile or evaluate; the message says where and why."""


def message(exc: Exception) -> str:
    """CEL's error as a person reads it: `line 1, column 5: undeclared reference to 'x'`."""
    text = str(exc)
    found = _POSITION.search(text)
    if found:
        return f"line {found.group(1)}, column {found.group(2)}: {found.group(3)}"
    first = text.splitlines()[0] if text else "invalid expression"
    return first.removeprefix("INVALID_ARGUMENT: ")


@dataclass(frozen=True)
class Program:
    """One compiled expression and where it came from."""

    path: str
    source: str
    expression: Any

    @property
    def type_name(self) -> str:
        """The static type CEL's checker gave the expression (`BOOL`, `DOUBLE`, `dyn`, ...)."""
        return str(self.expression.return_type().name())

    def evaluate(self, data: dict[str, Any]) -> Any:
        """The value, or None when a variable it reads is empty (CEL has no nulls for scalars)."""
        try:
            value = self.expression.eval(data=data)
        except RuntimeError:
            return None
        if value.type() == Type.ERROR:  # e.g. a field it reads is empty
            return None
        return value.value()

    def value(self, data: dict[str, Any]) -> Any:
        """The plain Python value; an evaluation error raises ExpressionError."""
        try:
            value = self.expression.eval(data=data)
        except RuntimeError as exc:
            raise ExpressionError(message(exc)) from exc
        if value.type() == Type.ERROR:
            raise ExpressionError(message(Exception(value.plain_value())))
        return value.plain_value()


class Environment:
    """Declared variables and the programs compiled against them (cached by source text)."""

    def __init__(self, variables: dict[str, Any]) -> None:
        self._env = cel.NewEnv(variables=variables)
        self._compiled: dict[str, Any] = {}

    def compile(self, source: str, path: str = "") -> Program:
        """Compile and type-check `source`, raising ExpressionError with the position."""
        expression = self._compiled.get(source)
        if expression is None:
            try:
                expression = self._env.compile(source)
            except RuntimeError as exc:
                raise ExpressionError(message(exc)) from exc
            if len(self._compiled) >= _CACHE_SIZE:
                self._compiled.clear()
            self._compiled[source] = expression
        return Program(path, source, expression)

    def check(self, source: Any, path: str, want: str | None = None) -> list[Fault]:
        """Faults for an expression that does not compile, or whose static type is not `want`."""
        if not isinstance(source, str):
            return [Fault(path, "an expression is a CEL string", "type")]
        try:
            program = self.compile(source, path)
        except ExpressionError as exc:
            return [Fault(path, f"not a valid CEL expression: {exc}", "cel")]
        got = program.type_name
        if want and got not in (want, "dyn", "DYN"):
            return [
                Fault(
                    path, f"expression gives {got.lower()}, a {want.lower()} is needed", "cel_type"
                )
            ]
        return []

    def value(self, source: str, data: dict[str, Any]) -> Any:
        """Compile (cached) and evaluate `source` strictly over `data`."""
        return self.compile(source).value(data)
