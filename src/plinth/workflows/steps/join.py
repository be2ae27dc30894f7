"""`join`: continue once every branch of its `split` has arrived (the engine counts)."""

from __future__ import annotations

from typing import Any

from plinth.errors import Fault
from plinth.workflows.steps import Base, Outcome, StepContext, follow, register


class Join(Base):
    type = "join"

    def check(self, spec: dict[str, Any], path: str, definition: dict[str, Any]) -> list[Fault]:
        if not spec.get("split"):
            return [Fault(f"{path}.split", "a join names the parallel split it closes", "required")]
        return []

    async def run(self, ctx: StepContext) -> Outcome:
        return Outcome(next=follow(ctx.spec), join=ctx.spec["split"])


register(Join())
