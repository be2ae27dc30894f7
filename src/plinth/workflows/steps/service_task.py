"""`service_task`: create/update a record, call a plugin action or a connector operation.

The call is a side effect, so it runs through `ctx.effect`: its result is remembered under an
idempotency key (instance + step) and a re-run after a crash returns the remembered result; the
key is also handed to the callee so a crash between the call and our commit never doubles it.
"""

from __future__ import annotations

from typing import Any

from plinth.errors import Fault, Unavailable
from plinth.metadata import kinds
from plinth.workflows.steps import Base, Outcome, StepContext, check, evaluate, follow, register

NEEDS = {"record.create": ["entity"], "record.update": ["entity", "record_id"],
         "plugin": ["plugin", "operation"], "connector": ["connector", "operation"]}


class ServiceTask(Base):
    type = "service_task"

    def check(self, spec: dict[str, Any], path: str, definition: dict[str, Any]) -> list[Fault]:
        action = spec.get("action")
        if not action:
            return [Fault(f"{path}.action", "a service task names its action", "required")]
        found = [Fault(f"{path}.{key}", f"{action} needs `{key}`", "required")
                 for key in NEEDS[action] if not spec.get(key)]
        entity = spec.get("entity")
        if entity and entity not in definition.get("entities", {}):
            found.append(Fault(f"{path}.entity", f"no entity named {entity!r} in this app",
                               "unknown_reference"))
        for key, section in (("plugin", "plugins"), ("connector", "connectors")):
            # Only checkable once the kind that declares them is registered.
            name = spec.get(key)
            if name and kinds.by_section(section) and name not in definition.get(section, {}):
                found.append(Fault(f"{path}.{key}", f"no {key} named {name!r} in this app",
                                   "unknown_reference"))
        for key, expr in (spec.get("input") or {}).items():
            found += check(expr, f"{path}.input.{key}")
        if spec.get("record_id"):
            found += check(spec["record_id"], f"{path}.record_id")
        return found

    async def run(self, ctx: StepContext) -> Outcome:
        spec = ctx.spec
        data = {k: evaluate(e, ctx.vars, ctx.record)
                for k, e in (spec.get("input") or {}).items()}
        app = ctx.instance["app"]

        async def call(key: str) -> Any:
            action = spec["action"]
            if action.startswith("record."):
                records = _service(ctx.services, "records")
                if action == "record.create":
                    return await records.create(ctx.tenant, app, spec["entity"], data,
                                                ctx.principal)
                rid = evaluate(spec["record_id"], ctx.vars, ctx.record)
                return await records.update(ctx.tenant, app, spec["entity"], rid, data,
                                            ctx.principal)
            if action == "plugin":
                return await _service(ctx.services, "plugins").call_action(
                    ctx.tenant, spec["plugin"], spec["operation"],
                    {**data, "idempotency_key": key}, ctx.principal)
            return await _service(ctx.services, "connectors").call(
                ctx.tenant, app, spec["connector"], spec["operation"],
                {**data, "idempotency_key": key}, ctx.principal)

        result = await ctx.effect(call)
        updates = {spec["output"]: result} if spec.get("output") else {}
        return Outcome(next=follow(spec), vars=updates, output={"input": data, "result": result})


def _service(services: Any, name: str) -> Any:
    found = getattr(services, name, None)
    if found is None:
        raise Unavailable(f"the {name} service is not available in this process")
    return found


register(ServiceTask())
