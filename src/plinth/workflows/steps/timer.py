"""`timer`: wait `seconds`, or `until` a CEL timestamp (epoch seconds); durable across restarts."""

from __future__ import annotations

import time
from typing import Any

from plinth.errors import Fault
from plinth.workflows.steps import Base, Outcome, StepContext, check, evaluate, follow, register


class Timer(Base):
    type = "timer"

    def check(self, spec: dict[str, Any], path: str, definition: dict[str, Any]) -> list[Fault]:
        if ("seconds" in spec) == ("until" in spec):
            return [
                Fault(f"{path}.seconds", "a timer takes either `seconds` or `until`", "required")
            ]
        return check(spec["until"], f"{path}.until") if "until" in spec else []

    async def run(self, ctx: StepContext) -> Outcome:
        if "until" in ctx.spec:
            at = float(evaluate(ctx.spec["until"], ctx.vars, ctx.record))
        else:
            at = time.time() + float(ctx.spec["seconds"])
        return Outcome(wait=True, timer=("fire", at), output={"fires_at": at})

    async def resume(self, ctx: StepContext, signal: dict[str, Any]) -> Outcome:
        return Outcome(next=follow(ctx.spec), output={"fired_at": time.time()})


register(Timer())
