"""Compliance checks: how long the packs take on a large app, sequential vs gathered threads.

    PYTHONPATH=src python bench/compliance.py [entities] [fields]

Baseline: all seven packs one after the other in the event loop's thread. Compared: the
publish step's way (each pack in a worker thread, gathered), and computing the remediation.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time

from plinth.governance.compliance import engine
from plinth.governance.compliance import packs as registry
from plinth.governance.compliance.models import CheckContext
from plinth.metadata import kinds
from plinth.tenancy.profile import ComplianceProfile

CLASSES = ["none", "pii", "pii.sensitive", "financial", "pci.pan", "none", "pii", "none"]


def big_app(entities: int, fields: int) -> dict:
    return {
        "entities": {
            f"e{i}": {
                "fields": {
                    f"f{j}": {"type": "string", "classification": CLASSES[(i + j) % len(CLASSES)]}
                    for j in range(fields)
                }
            }
            for i in range(entities)
        },
        "policies": {
            f"p{i}": {
                "cedar": f"forbid (principal, action, resource) when "
                f'{{ resource.entity == "e{i}" }};'
            }
            for i in range(0, entities, 2)
        },
    }


def timed(fn, runs: int = 7) -> float:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main() -> None:
    n_entities = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    n_fields = int(sys.argv[2]) if len(sys.argv) > 2 else 30
    if kinds.by_section("policies") is None:  # so the policy rules run too
        kinds.register(kinds.Kind("policy", "policies", {"type": "object"}, "pol"))
    packs = list(registry.all_packs().values())
    profile = ComplianceProfile(
        countries=("DE", "GB", "US", "BR", "CN", "SG"), regions=("default",)
    )
    ctx = CheckContext(
        big_app(n_entities, n_fields), profile, {"default": "eu-central"}, ("default",)
    )
    outcome = engine.evaluate(packs, ctx)
    sequential = timed(lambda: engine.evaluate(packs, ctx))
    loop = asyncio.new_event_loop()
    gathered = timed(lambda: loop.run_until_complete(engine.evaluate_parallel(packs, ctx)))
    patch = timed(outcome.remediation)
    rules = sum(len(p.rules) for p in packs)
    print(
        f"app: {n_entities} entities x {n_fields} fields; {len(packs)} packs, {rules} rules; "
        f"{len(outcome.violations)} violations"
    )
    print(f"sequential (baseline)   {sequential * 1000:8.1f} ms   1.00x")
    print(f"threads, gathered       {gathered * 1000:8.1f} ms   {gathered / sequential:.2f}x")
    print(f"remediation patch       {patch * 1000:8.1f} ms   {patch / sequential:.2f}x")


if __name__ == "__main__":
    main()
