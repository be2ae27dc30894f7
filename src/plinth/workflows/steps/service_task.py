"""`service_task`: create/update a record, call a plugin action or a connector operation.

The call is a side effect, so it runs through `ctx.effect`: its result is remembered under an
idempotency key (instance + step) and a re-run after a crash returns the remembered result; the
key is also handed to the callee so a crash between the call and our commit never doubles it:
a created record takes an id derived from the key (a second create is a conflict, and the
step finds the record), a plugin action gets `idempotency_key` in its input, a connector
call carries it (`Idempotency-Key` on HTTP).
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

from plinth.errors import Conflict, Fault, NotFound
from plinth.metadata import kinds
from plinth.workflows.steps import Base, Outcome, StepContext, check, evaluate, follow, register

NEEDS = {
    "record.create": ["entity"],
    "record.update": ["entity", "record_id"],
    "plugin": ["plugin", "operation"],
    "connector": ["connector", "operation"],
}


class ServiceTask(Base):
    type = "service_task"

    def check(self, spec: dict[str, Any], path: str, definition: dict[str, Any]) -> list[Fault]:
        action = spec.get("action")
        if not action:
            return [Fault(f"{path}.action", "a service task names its action", "required")]
        found = [
            Fault(f"{path}.{key}", f"{action} needs `{key}`", "required")
            for key in NEEDS[action]
            if not spec.get(key)
        ]
        entity = spec.get("entity")
        if entity and entity not in definition.get("entities", {}):
            found.append(
                Fault(
                    f"{path}.entity", f"no entity named {entity!r} in this app", "unknown_reference"
                )
            )
        # Plugins are installed per tenant, not declared by the app: `check_plugin` runs at
        # publish, where the tenant is known (workflows.publish).
        name = spec.get("connector")
        if name and kinds.by_section("connectors") and name not in definition.get("connectors", {}):
            found.append(
                Fault(
                    f"{path}.connector",
                    f"no connector named {name!r} in this app",
                    "unknown_reference",
                )
            )
        for key, expr in (spec.get("input") or {}).items():
            found += check(expr, f"{path}.input.{key}")
        if spec.get("record_id"):
            found += check(spec["record_id"], f"{path}.record_id")
        return found

    def check_plugin(
        self, spec: dict[str, Any], path: str, installed: dict[str, tuple[str, frozenset[str]]]
    ) -> list[Fault]:
        """A plugin step calls a plugin the tenant installed, and an action its installed
        version provides (`installed`: name -> (version, actions))."""
        name, operation = spec.get("plugin"), spec.get("operation")
        if spec.get("action") != "plugin" or not name:
            return []
        if name not in installed:
            return [
                Fault(
                    f"{path}.plugin",
                    f"the plugin {name!r} is not installed in this "
                    "tenant; install it first (POST /api/t/{tenant}/plugins)",
                    "not_installed",
                )
            ]
        version, actions = installed[name]
        if operation and operation not in actions:
            offered = ", ".join(sorted(actions)) or "none"
            return [
                Fault(
                    f"{path}.operation",
                    f"{name} {version} has no action {operation!r} (it provides: {offered})",
                    "unknown_reference",
                )
            ]
        return []

    async def run(self, ctx: StepContext) -> Outcome:
        spec = ctx.spec
        data = {k: evaluate(e, ctx.vars, ctx.record) for k, e in (spec.get("input") or {}).items()}
        app = ctx.instance["app"]

        async def call(key: str) -> Any:
            action = spec["action"]
            records = ctx.services.records
            # What a record step keeps (its output, the variable, the remembered effect) is a
            # copy: encrypted fields sealed, masked fields masked (the data inventory).
            if action == "record.create":
                made = await _create_once(ctx, app, spec["entity"], data, key)
                return await records.copy_of_entity(ctx.tenant, app, spec["entity"], made)
            if action == "record.update":
                rid = evaluate(spec["record_id"], ctx.vars, ctx.record)
                changed = await records.update(
                    ctx.tenant, app, spec["entity"], rid, data, ctx.principal
                )
                return await records.copy_of_entity(ctx.tenant, app, spec["entity"], changed)
            if action == "plugin":
                return await ctx.services.plugins.call_action(
                    ctx.tenant,
                    spec["plugin"],
                    spec["operation"],
                    {**data, "idempotency_key": key},
                    ctx.principal,
                )
            return await ctx.services.connectors.call(
                ctx.tenant,
                app,
                spec["connector"],
                spec["operation"],
                data,
                ctx.principal,
                idempotency_key=key,
            )

        result = await ctx.effect(call)
        updates = {spec["output"]: result} if spec.get("output") else {}
        if spec["action"] in ("record.create", "record.update"):
            kept = await ctx.services.records.copy_of_entity(
                ctx.tenant, app, spec["entity"], {**data, "id": _record_of(spec, ctx, result)}
            )
            data = {k: v for k, v in (kept or {}).items() if k in data}
        return Outcome(next=follow(spec), vars=updates, output={"input": data, "result": result})


def _record_of(spec: dict[str, Any], ctx: StepContext, result: Any) -> str | None:
    """The id of the record a record step wrote (its input is sealed for that record)."""
    if isinstance(result, dict) and result.get("id"):
        return str(result["id"])
    if spec["action"] == "record.update":
        return str(evaluate(spec["record_id"], ctx.vars, ctx.record))
    return None


def record_id(key: str) -> str:
    """The id a record-creating step gives its record: derived from the step's idempotency
    key, shaped like any record id (22 URL-safe characters)."""
    digest = hashlib.sha256(f"record:{key}".encode()).digest()[:16]
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


async def _create_once(
    ctx: StepContext, app: str, entity: str, data: dict[str, Any], key: str
) -> Any:
    """Create the step's record, or find it when a crashed earlier run already did."""
    records = ctx.services.records
    rid = record_id(key)
    try:
        return await records.create(ctx.tenant, app, entity, data, ctx.principal, record_id=rid)
    except Conflict as conflict:
        try:
            return await records.get(ctx.tenant, app, entity, rid, ctx.principal)
        except NotFound:
            # Another unique value clashed, not our earlier run: that is the step's failure.
            raise conflict from None


register(ServiceTask())
