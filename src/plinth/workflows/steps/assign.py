"""`assign`: set instance variables from CEL expressions."""

from __future__ import annotations

from typing import Any

from plinth.errors import Fault
from plinth.workflows.steps import Base, Outcome, StepContext, check, evaluate, follow, register


class Assign(Base):
    type = "assign"

    def check(self, spec: dict[str, Any], path: str, definition: dict[str, Any]) -> list[Fault]:
        found = [] if spec.get("set") else [Fault(f"{path}.set", "assign needs `set`", "required")]
        for key, expr in (spec.get("set") or {}).items():
            found += check(expr, f"{path}.set.{key}")
        return found

    async def run(self, ctx: StepContext) -> Outcome:
        values = {k: evaluate(e, ctx.vars, ctx.record) for k, e in ctx.spec["set"].items()}
        return Outcome(next=follow(ctx.spec), vars=values, output=values)


register(Assign())
