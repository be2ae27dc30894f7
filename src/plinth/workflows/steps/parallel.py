"""`parallel` split: enter every branch at once; a `join` naming this split waits for all."""

from __future__ import annotations

from typing import Any

from plinth.errors import Fault
from plinth.workflows.steps import Base, Outcome, StepContext, register


class Parallel(Base):
    type = "parallel"

    def targets(self, spec: dict[str, Any]) -> list[str]:
        return [b for b in spec.get("branches", []) if isinstance(b, str)]

    def check(self, spec: dict[str, Any], path: str, definition: dict[str, Any]) -> list[Fault]:
        branches = spec.get("branches") or []
        if len(branches) < 2 or not all(isinstance(b, str) for b in branches):
            return [
                Fault(f"{path}.branches", "a parallel split names two or more nodes", "required")
            ]
        return []

    async def run(self, ctx: StepContext) -> Outcome:
        return Outcome(next=list(ctx.spec["branches"]), output={"branches": ctx.spec["branches"]})


register(Parallel())
