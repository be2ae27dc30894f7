"""A small CEL wrapper for workflow expressions (conditions, assignments, assignees).

Every expression sees `vars` (the instance variables), `record` (the triggering record, if any)
and `now` (epoch seconds). Compiled programs are cached by source text.
"""

from __future__ import annotations

import time
from functools import lru_cache
from typing import Any

from cel_expr_python import cel

from plinth.errors import Fault

_ENV = cel.NewEnv(variables={
    "vars": cel.Type.Map(cel.Type.STRING, cel.Type.DYN),
    "record": cel.Type.Map(cel.Type.STRING, cel.Type.DYN),
    "now": cel.Type.DOUBLE,
})


class ExpressionError(Exception):
    """An expression failed to compile or evaluate."""


@lru_cache(maxsize=2048)
def compile_expr(source: str) -> Any:
    """Compile `source`, raising ExpressionError with CEL's message."""
    try:
        return _ENV.compile(source)
    except RuntimeError as exc:
        raise ExpressionError(str(exc).split("\n")[0].removeprefix("INVALID_ARGUMENT: ")) from exc


def check(source: Any, path: str, want: str | None = None) -> list[Fault]:
    """Faults for an expression that does not compile, or whose static type is not `want`."""
    if not isinstance(source, str):
        return [Fault(path, "an expression is a CEL string", "type")]
    try:
        program = compile_expr(source)
    except ExpressionError as exc:
        return [Fault(path, f"not a valid CEL expression: {exc}", "cel")]
    got = program.return_type().name()
    if want and got not in (want, "dyn", "DYN"):
        return [Fault(path, f"expression gives {got.lower()}, a {want.lower()} is needed",
                      "cel_type")]
    return []


def evaluate(source: str, variables: dict[str, Any], record: dict[str, Any] | None = None) -> Any:
    """The plain Python value of `source` over the instance variables."""
    program = compile_expr(source)
    try:
        value = program.eval(data={"vars": variables, "record": record or {},
                                   "now": time.time()})
    except RuntimeError as exc:
        raise ExpressionError(str(exc)) from exc
    if value.type() == cel.Type.ERROR:
        raise ExpressionError(str(value.plain_value()))
    return value.plain_value()
