"""`subworkflow`: start another workflow of the same app and wait for it to end."""

from __future__ import annotations

from typing import Any

from plinth.errors import Fault
from plinth.workflows.steps import Base, Outcome, StepContext, check, evaluate, follow, register


class SubWorkflow(Base):
    type = "subworkflow"

    def check(self, spec: dict[str, Any], path: str, definition: dict[str, Any]) -> list[Fault]:
        name = spec.get("workflow")
        if not name:
            return [Fault(f"{path}.workflow", "name the workflow to start", "required")]
        found = []
        if name not in definition.get("workflows", {}):
            found.append(
                Fault(
                    f"{path}.workflow",
                    f"no workflow named {name!r} in this app",
                    "unknown_reference",
                )
            )
        for key, expr in (spec.get("input") or {}).items():
            found += check(expr, f"{path}.input.{key}")
        return found

    async def run(self, ctx: StepContext) -> Outcome:
        data = {
            k: evaluate(e, ctx.vars, ctx.record) for k, e in (ctx.spec.get("input") or {}).items()
        }
        return Outcome(wait=True, child={"workflow": ctx.spec["workflow"], "input": data})

    async def resume(self, ctx: StepContext, signal: dict[str, Any]) -> Outcome:
        if signal.get("status") != "completed":
            raise RuntimeError(f"sub-workflow {ctx.spec['workflow']} {signal.get('status')}")
        key = ctx.spec.get("output") or ctx.node
        return Outcome(
            next=follow(ctx.spec),
            vars={key: signal.get("vars", {})},
            output={"child": signal.get("instance")},
        )


register(SubWorkflow())
