"""Retention: expired records deleted or anonymised, run by a workflow on a schedule.

An entity's `retention: {days, action, field}` says how long its records are kept. The job is
a workflow node type, `retention`, so it is scheduled, retried and recorded by the workflow
engine like any other step (a `schedule` start with `every: 86400` runs it daily; the demo
app has one). Each run is audited as one `compliance.retention` event with its counts.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from plinth.errors import Fault
from plinth.governance.compliance.enforcement import anonymised_fields, retention_due
from plinth.governance.compliance.inventory import DataInventory, Erasure, values_of
from plinth.tenancy.models import Tenant
from plinth.workflows.steps import Base, Outcome, StepContext, follow, register


async def expire(
    maintenance: Any,
    tenant: Tenant,
    app: str,
    now: datetime,
    by: str,
    inventory: DataInventory | None = None,
) -> list[dict[str, Any]]:
    """Delete or anonymise the expired records of every entity of `app` with a rule, and
    their values in every copy site of the inventory."""
    done = []
    for name, ent in (await maintenance.entities(tenant, app)).items():
        due = retention_due(ent.doc, now)
        if due is None:
            continue
        column, cutoff, action = due
        fields = anonymised_fields(ent.doc) if action == "anonymise" else ()
        ids = await maintenance.expired(tenant, app, name, column, cutoff, fields)
        if inventory is not None and ids:
            expired = await maintenance.find(tenant, app, name, "id", ids)
            await inventory.erase(
                Erasure(
                    tenant,
                    app,
                    frozenset(ids),
                    frozenset(
                        v for rec in expired for v in values_of(rec, ent.protection.anonymised)
                    ),
                    "retention",
                )
            )
        counts = await maintenance.remove(tenant, app, name, ids, action, fields, by)
        done.append(
            {
                "entity": name,
                "action": action,
                "field": column,
                "cutoff": cutoff.isoformat(),
                **counts,
            }
        )
    return done


class RetentionStep(Base):
    """`retention`: apply the retention rules of the instance's app (optionally `entity`)."""

    type = "retention"

    def check(self, spec: dict[str, Any], path: str, definition: dict[str, Any]) -> list[Fault]:
        if not any(e.get("retention") for e in definition.get("entities", {}).values()):
            return [
                Fault(
                    path,
                    "no entity of this app declares `retention`; the node would do nothing",
                    "no_retention",
                )
            ]
        return []

    async def run(self, ctx: StepContext) -> Outcome:
        compliance = ctx.services.compliance

        async def call(key: str) -> Any:
            return await compliance.run_retention(
                ctx.tenant, ctx.instance["app"], by=ctx.principal.audit_name()
            )

        result = await ctx.effect(call)
        return Outcome(next=follow(ctx.spec), output=result)


register(RetentionStep())
