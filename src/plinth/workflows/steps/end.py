"""`end`: the instance ends, `completed` (default) or `failed`."""

from __future__ import annotations

from typing import Any

from plinth.workflows.steps import Base, Outcome, StepContext, register


class End(Base):
    type = "end"

    def targets(self, spec: dict[str, Any]) -> list[str]:
        return []

    async def run(self, ctx: StepContext) -> Outcome:
        return Outcome(end=ctx.spec.get("status", "completed"))


register(End())
