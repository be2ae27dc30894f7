"""`gateway` (exclusive): the first branch whose CEL condition holds, else `default`."""

from __future__ import annotations

from typing import Any

from plinth.errors import Fault
from plinth.expressions import ExpressionError
from plinth.workflows.steps import Base, Outcome, StepContext, check, evaluate, register


class Gateway(Base):
    type = "gateway"

    def targets(self, spec: dict[str, Any]) -> list[str]:
        found = [b.get("next") for b in spec.get("branches", []) if isinstance(b, dict)]
        return [t for t in [*found, spec.get("default")] if t]

    def check(self, spec: dict[str, Any], path: str, definition: dict[str, Any]) -> list[Fault]:
        found: list[Fault] = []
        for i, branch in enumerate(spec.get("branches") or []):
            bpath = f"{path}.branches[{i}]"
            if not isinstance(branch, dict) or "when" not in branch or "next" not in branch:
                found.append(Fault(bpath, "a branch is {when: <CEL>, next: <node>}", "required"))
                continue
            found += check(branch["when"], f"{bpath}.when", "BOOL")
        if not spec.get("branches") and not spec.get("default"):
            found.append(
                Fault(f"{path}.branches", "a gateway needs branches or a default", "required")
            )
        return found

    async def run(self, ctx: StepContext) -> Outcome:
        for branch in ctx.spec.get("branches", []):
            if evaluate(branch["when"], ctx.vars, ctx.record) is True:
                return Outcome(next=[branch["next"]], output={"taken": branch["next"]})
        if ctx.spec.get("default"):
            return Outcome(next=[ctx.spec["default"]], output={"taken": ctx.spec["default"]})
        raise ExpressionError("no branch condition held and the gateway has no default")


register(Gateway())
