"""The publish step (phase `check`): the tenant's packs, in parallel, over the new version."""

from __future__ import annotations

from typing import Any, Protocol

from plinth.db import utcnow
from plinth.errors import Fault, PublishRefused
from plinth.events import Event, EventBus
from plinth.governance.compliance import classify, engine, store
from plinth.governance.compliance import packs as pack_registry
from plinth.governance.compliance.models import CheckContext, ComplianceProfile
from plinth.metadata import definition as definitions
from plinth.metadata.publish import PublishContext, StepResult
from plinth.tenancy.models import Tenant


class Checker(Protocol):
    """What the step uses of the compliance service."""

    events: EventBus

    def profile(self, tenant: Tenant) -> ComplianceProfile: ...

    def context(self, tenant: Tenant, definition: dict[str, Any]) -> CheckContext: ...


class ComplianceStep:
    """Critical violations refuse the publish unless waived; warnings go in the result."""

    name = "compliance"

    def __init__(self, service: Checker) -> None:
        self.service = service

    async def run(self, ctx: PublishContext, result: StepResult) -> None:
        service = self.service
        # A rollback re-activates a version checked when it was published, but the law or the
        # profile may have changed since: it is checked again, with today's waivers.
        packs = pack_registry.applicable(service.profile(ctx.tenant))
        waivers = await store.waivers_of(ctx.conn, ctx.tenant.id, ctx.app.slug)
        check_ctx = service.context(ctx.tenant, ctx.definition)
        outcome = await engine.evaluate_parallel(packs, check_ctx, waivers)
        blocking = outcome.blocking()
        if blocking:
            raise PublishRefused(
                f"{len(blocking)} critical compliance violation"
                f"{'s' if len(blocking) != 1 else ''}; fix them (plinth compliance fix) or "
                "waive them with a reason",
                path=blocking[0].path,
                faults=[
                    Fault(v.path, f"{v.rule}: {v.message} ({v.reference})", v.rule)
                    for v in blocking
                ],
                extra={
                    "violations": [v.as_dict() for v in blocking],
                    "remediation": outcome.remediation(),
                },
            )
        for v in outcome.violations:
            if v.waiver:
                result.info(
                    f"{v.rule} waived: {v.message}",
                    path=v.path,
                    rule=v.rule,
                    waiver=v.waiver,
                    reference=v.reference,
                )
            else:
                result.warn(v.path, f"{v.rule}: {v.message} ({v.reference})", v.rule)
        for s in classify.suggestions(ctx.definition):
            result.warn(s["path"], s["message"], "classification_suggested")
        for rule_id in sorted(outcome.unchecked):
            result.warn(
                "", f"{rule_id} not checked: its document kind is not installed", "rule_unchecked"
            )
        result.info(
            f"checked {len(outcome.rules)} rules of {', '.join(outcome.packs) or 'no'} packs",
            packs=outcome.packs,
        )
        by = ctx.principal.audit_name() if ctx.principal else None
        digest = definitions.content_hash(ctx.definition)
        if ctx.reason == "publish":
            await store.record_check(
                ctx.conn,
                ctx.tenant.id,
                ctx.app.slug,
                ctx.number,
                digest,
                outcome.packs,
                [v.as_dict() for v in outcome.violations],
                by,
                utcnow(),
            )
        summary = {
            "app": ctx.app.slug,
            "version": ctx.number,
            "hash": digest,
            "reason": ctx.reason,
            "packs": outcome.packs,
            "by": by,
            "waived": sorted({v.rule for v in outcome.violations if v.waiver}),
            "warnings": sorted({v.rule for v in outcome.violations if not v.waiver}),
        }

        async def announce() -> None:
            # For the audit ledger: what the packs said about the version now active.
            await service.events.publish(Event("compliance.checked", ctx.tenant.id, summary))

        ctx.after_commit.append(announce)
