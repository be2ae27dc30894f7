"""`approval`: one task per approver and a completion rule (any, all, majority, quorum N, veto)."""

from __future__ import annotations

from typing import Any

from plinth.errors import Fault
from plinth.workflows.steps import Base, Outcome, StepContext, follow, register
from plinth.workflows.steps.user_task import check_assignee, check_form, resolve, task_form


def decide(rule: Any, veto: bool, votes: list[str | None]) -> str | None:
    """ "approved", "rejected" or None (undecided) for the votes cast so far (pure)."""
    n = len(votes)
    yes = votes.count("approved")
    no = votes.count("rejected")
    if veto and no:
        return "rejected"
    if rule == "any":
        need = 1
    elif rule == "all":
        need = n
    elif rule == "majority":
        need = n // 2 + 1
    else:
        need = int(rule["quorum"])
    if yes >= need:
        return "approved"
    if n - no < need:  # approval can no longer be reached
        return "rejected"
    return None


class Approval(Base):
    type = "approval"

    def targets(self, spec: dict[str, Any]) -> list[str]:
        return [*super().targets(spec), *([spec["rejected"]] if spec.get("rejected") else [])]

    def check(self, spec: dict[str, Any], path: str, definition: dict[str, Any]) -> list[Fault]:
        approvers = spec.get("approvers") or []
        found = (
            []
            if approvers
            else [Fault(f"{path}.approvers", "an approval needs approvers", "required")]
        )
        for i, a in enumerate(approvers):
            found += check_assignee(a, f"{path}.approvers[{i}]", definition)
        found += check_form(spec.get("form") or {}, f"{path}.form", definition)
        rule = spec.get("rule", "any")
        if isinstance(rule, dict) and rule["quorum"] > len(approvers):
            found.append(
                Fault(
                    f"{path}.rule.quorum",
                    f"quorum {rule['quorum']} exceeds the {len(approvers)} approvers",
                    "quorum",
                )
            )
        return found

    async def run(self, ctx: StepContext) -> Outcome:
        form = task_form(ctx.spec, ctx)  # what the approvers see of the record they decide on
        tasks = [
            {
                "kind": "approval",
                "assignee": resolve(a, ctx),
                "form": form,
                "title": ctx.spec.get("title", ctx.node),
            }
            for a in ctx.spec["approvers"]
        ]
        return Outcome(wait=True, tasks=tasks, output={"rule": ctx.spec.get("rule", "any")})

    async def resume(self, ctx: StepContext, signal: dict[str, Any]) -> Outcome:
        votes = [t["decision"] for t in ctx.tasks]
        verdict = decide(ctx.spec.get("rule", "any"), bool(ctx.spec.get("veto")), votes)
        if verdict is None:
            return Outcome(wait=True, close_tasks=False)
        record = {
            "decision": verdict,
            "votes": [
                {"by": t["decided_by"], "decision": t["decision"], "comment": t.get("comment")}
                for t in ctx.tasks
                if t["decision"]
            ],
        }
        key = ctx.spec.get("output") or ctx.node
        target = follow(ctx.spec)
        if verdict == "rejected" and ctx.spec.get("rejected"):
            target = [ctx.spec["rejected"]]
        return Outcome(next=target, vars={key: record}, output=record)


register(Approval())
