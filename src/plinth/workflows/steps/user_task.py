"""`user_task`: a person fills a form; due time (SLA) escalates to another assignee or node."""

from __future__ import annotations

import time
from typing import Any

from plinth.errors import Fault
from plinth.workflows.steps import Base, Outcome, StepContext, check, evaluate, follow, register

BUILT_IN_ROLES = {"owner", "designer", "analyst", "viewer", "manager"}


def check_assignee(assignee: Any, path: str, definition: dict[str, Any]) -> list[Fault]:
    """An assignee names a role, a user or a CEL expression; roles must exist."""
    if not isinstance(assignee, dict) or not ({"role", "user", "expr"} & assignee.keys()):
        return [Fault(path, "an assignee names a role, a user or an expr", "required")]
    found: list[Fault] = []
    role = assignee.get("role")
    roles = set(definition.get("roles", {})) | BUILT_IN_ROLES
    if role and role not in roles:
        found.append(Fault(f"{path}.role", f"no role named {role!r}", "unknown_reference"))
    if "expr" in assignee:
        found += check(assignee["expr"], f"{path}.expr")
    for key, expr in (assignee.get("attrs") or {}).items():
        found += check(expr, f"{path}.attrs.{key}")
    return found


def resolve(assignee: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    """The assignee with expressions evaluated (who may act on the task)."""
    out: dict[str, Any] = {k: assignee[k] for k in ("role", "user") if k in assignee}
    if "expr" in assignee:
        out["user"] = str(evaluate(assignee["expr"], ctx.vars, ctx.record))
    if assignee.get("attrs"):
        out["attrs"] = {k: evaluate(e, ctx.vars, ctx.record) for k, e in assignee["attrs"].items()}
    return out


def check_form(form: dict[str, Any], path: str, definition: dict[str, Any]) -> list[Fault]:
    """A task form's entity exists and has the fields it asks for and shows; `record` (the
    record the task is about, whose `show` fields the inbox displays) is an expression."""
    found: list[Fault] = []
    entity = form.get("entity")
    if not entity:
        if "record" in form or "show" in form:
            found.append(
                Fault(f"{path}.entity", "a form that shows a record names its entity", "required")
            )
        return found
    fields = definition.get("entities", {}).get(entity, {}).get("fields")
    if fields is None:
        return [Fault(f"{path}.entity", f"no entity named {entity!r}", "unknown_reference")]
    for key in ("fields", "show"):
        for i, name in enumerate(form.get(key, [])):
            if name not in fields:
                found.append(
                    Fault(f"{path}.{key}[{i}]", f"{entity} has no field {name!r}", "unknown_field")
                )
    # Form data is kept in the workflow (the task, the variables): a protected field would sit
    # there in clear (the data inventory's `workflows.task_data`). `show` fields are read live.
    # (With no `fields`, the form takes every field, unless it only shows a record.)
    named = form.get("fields") or ([] if "show" in form else list(fields))
    for i, name in enumerate(named):
        spec = fields.get(name, {})
        if spec.get("encrypted") or spec.get("masked"):
            found.append(
                Fault(
                    f"{path}.fields[{i}]" if form.get("fields") else path,
                    f"{entity}.{name} is encrypted or masked; a task form cannot hold it (its "
                    "data is kept in the workflow): list the fields the form needs",
                    "protected_field",
                )
            )
    if "record" in form:
        found += check(form["record"], f"{path}.record")
    elif "show" in form:
        found.append(Fault(f"{path}.record", "name the record whose fields it shows", "required"))
    return found


def task_form(spec: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    """The form a task carries: the node's, with `record` evaluated to the record's id (the
    inbox reads that record as the person who opens the task, so their policies apply)."""
    form = dict(spec.get("form") or {})
    if "record" in form:
        value = evaluate(form["record"], ctx.vars, ctx.record)
        form["record"] = None if value is None else str(value)
    return form


class UserTask(Base):
    type = "user_task"

    def targets(self, spec: dict[str, Any]) -> list[str]:
        return [
            *super().targets(spec),
            *([spec["escalate"]["next"]] if spec.get("escalate", {}).get("next") else []),
        ]

    def check(self, spec: dict[str, Any], path: str, definition: dict[str, Any]) -> list[Fault]:
        found = check_assignee(spec.get("assignee"), f"{path}.assignee", definition)
        found += check_form(spec.get("form") or {}, f"{path}.form", definition)
        if spec.get("escalate") and not spec.get("due"):
            found.append(Fault(f"{path}.due", "escalation needs a due time", "required"))
        if spec.get("escalate", {}).get("to"):
            found += check_assignee(spec["escalate"]["to"], f"{path}.escalate.to", definition)
        return found

    async def run(self, ctx: StepContext) -> Outcome:
        task = {
            "kind": "user_task",
            "assignee": resolve(ctx.spec["assignee"], ctx),
            "form": task_form(ctx.spec, ctx),
            "title": ctx.spec.get("title", ctx.node),
        }
        due = time.time() + ctx.spec["due"] if ctx.spec.get("due") else None
        return Outcome(
            wait=True, tasks=[task], timer=("due", due) if due else None, output={"due_at": due}
        )

    async def resume(self, ctx: StepContext, signal: dict[str, Any]) -> Outcome:
        if signal.get("kind") == "timer":
            escalate = ctx.spec.get("escalate") or {}
            if escalate.get("next"):
                return Outcome(next=[escalate["next"]], output={"escalated": escalate["next"]})
            to = resolve(escalate["to"], ctx) if escalate.get("to") else None
            return Outcome(wait=True, close_tasks=False, reassign=to, output={"escalated_to": to})
        task = signal["task"]
        key = ctx.spec.get("output") or ctx.node
        return Outcome(
            next=follow(ctx.spec),
            vars={key: task["data"]},
            output={"by": task["decided_by"], "data": task["data"]},
        )


register(UserTask())
