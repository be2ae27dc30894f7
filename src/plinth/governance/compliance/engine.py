"""Running packs: every rule of every applicable pack over one definition, in parallel.

Checks are pure and CPU-bound but small; each pack runs in a worker thread so a slow pack
(a large app, a regex-heavy rule) does not hold the others, and the event loop stays free.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from datetime import datetime

from plinth.governance.compliance.models import (
    CheckContext,
    Finding,
    Outcome,
    Pack,
    Rule,
    Violation,
    Waiver,
)
from plinth.metadata import kinds


def _checkable(rule: Rule, ctx: CheckContext) -> bool:
    """A rule about a document kind (e.g. policies) is checked only where that kind exists."""
    if rule.needs is None:
        return True
    if ctx.sections is not None:
        return rule.needs in ctx.sections
    return kinds.by_section(rule.needs) is not None


def _run_pack(pack: Pack, ctx: CheckContext) -> list[tuple[Rule, Finding]]:
    return [
        (rule, finding)
        for rule in pack.rules
        if _checkable(rule, ctx)
        for finding in rule.check(ctx)
    ]


def _outcome(
    ctx: CheckContext,
    packs: list[Pack],
    results: list[list[tuple[Rule, Finding]]],
    waivers: Iterable[Waiver],
    now: datetime,
) -> Outcome:
    waivers = list(waivers)
    outcome = Outcome(packs=[p.id for p in packs])
    for pack, found in zip(packs, results, strict=True):
        for rule in pack.rules:
            outcome.rules.append(rule)
            outcome.rule_pack[rule.id] = pack.id
            if not _checkable(rule, ctx):
                outcome.unchecked.add(rule.id)
        for rule, finding in found:
            waiver = next((w.id for w in waivers if w.covers(rule.id, finding.path, now)), None)
            outcome.violations.append(
                Violation(
                    rule.id,
                    pack.id,
                    rule.severity,
                    rule.reference,
                    finding.path,
                    finding.message,
                    finding.patch,
                    waiver,
                )
            )
    return outcome


def evaluate(
    packs: list[Pack],
    ctx: CheckContext,
    waivers: Iterable[Waiver] = (),
    now: datetime | None = None,
) -> Outcome:
    """Check synchronously (for tests, the CLI and reports)."""
    from plinth.db import utcnow

    return _outcome(ctx, packs, [_run_pack(p, ctx) for p in packs], waivers, now or utcnow())


async def evaluate_parallel(
    packs: list[Pack],
    ctx: CheckContext,
    waivers: Iterable[Waiver] = (),
    now: datetime | None = None,
) -> Outcome:
    """Check with each pack in its own thread, gathered."""
    from plinth.db import utcnow

    results = await asyncio.gather(*(asyncio.to_thread(_run_pack, p, ctx) for p in packs))
    return _outcome(ctx, packs, list(results), waivers, now or utcnow())
