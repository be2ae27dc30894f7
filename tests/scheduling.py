"""The order the suite's modules start in: the longest first.

scripts/test runs the suite in three processes, a whole module per process at a time (xdist
`--dist loadfile --no-loadscope-reorder`), handing the next module in collection order to
whichever process is free. A long module handed out last keeps one process busy while the
others have nothing left to do; handed out first, the short ones fill in around it.

SECONDS are rough times of the longest modules on 2 busy cores (only relative sizes matter):
each module's total (set-up, calls, tear-down) from a whole run's `--junitxml` report, divided
by four (that run shared its 2 cores with benchmarks; a quiet CI run takes about a quarter), or,
for modules whose caches were warm there and are cold in CI, estimated. A module not listed
counts half a second a test, which puts it after them. A module that grows slow belongs here:
otherwise it may be handed out last.
"""

from __future__ import annotations

from collections import Counter

import pytest

SECONDS: dict[str, float] = {
    "tests/e2e/test_designer.py": 76,
    "tests/designer/test_kill.py": 69,
    "tests/runtime/test_outbox_kill.py": 64,
    "tests/server/test_fuzz.py": 61,
    "tests/workflows/test_nodes.py": 52,
    "tests/e2e/test_react.py": 48,
    "tests/workflows/test_claims_erasure.py": 43,
    "tests/extensions/test_wasmtime_bounds.py": 40,  # two cold compiles, one per wasmtime
    "tests/extensions/test_security.py": 38,
    "tests/designer/test_limits.py": 36,
    "tests/server/test_embedded_coherence.py": 34,
    "tests/governance/test_admin_attacks.py": 32,
    "tests/workflows/test_durability.py": 31,
    "tests/extensions/test_isolation.py": 30,
    "tests/workflows/test_claims_rename.py": 30,
    "tests/e2e/test_portal.py": 27,
    "tests/workflows/test_claims_demo.py": 26,
    "tests/runtime/test_hostile_input.py": 24,
    "tests/e2e/test_designer_editors.py": 22,
    "tests/integration/test_webhooks.py": 22,
    "tests/pages/test_webcomponents.py": 22,
    "tests/designer/test_sync.py": 20,
    "tests/extensions/test_registry.py": 20,
    "tests/integration/test_gateway.py": 20,
    "tests/extensions/test_calls.py": 19,
    "tests/governance/compliance/test_enforcement.py": 19,
    "tests/governance/test_administration.py": 19,
    "tests/workflows/test_services.py": 19,
    "tests/e2e/test_demo_day.py": 17,
    "tests/governance/compliance/test_publish.py": 17,
    "tests/governance/compliance/test_cli.py": 16,
    "tests/integration/test_http_connector.py": 16,
    "tests/metadata/test_repository.py": 15,
    "tests/runtime/test_crud.py": 15,
    "tests/runtime/test_migrations.py": 15,
    "tests/governance/test_ledger_tamper.py": 13,
    "tests/tenancy/test_many_tenants.py": 13,
    "tests/e2e/test_portal_titles.py": 12,
    "tests/e2e/test_studio.py": 12,
    "tests/extensions/test_demo.py": 12,
    "tests/extensions/test_warm.py": 12,  # a cold compile
    "tests/governance/test_policy.py": 12,
    "tests/server/test_openapi.py": 12,
    "tests/runtime/test_outbox_startup.py": 11,
    "tests/runtime/test_outbox_sweep.py": 11,
    "tests/server/test_demo_command.py": 11,
    "tests/server/test_endpoint_attacks.py": 11,
    "tests/extensions/test_http.py": 9,
    "tests/extensions/test_package_attacks.py": 9,
    "tests/integration/test_demo_connectors.py": 9,
    "tests/metadata/test_files.py": 9,
    "tests/server/test_security.py": 9,
    "tests/server/test_server.py": 9,
    "tests/governance/test_identity.py": 8,
    "tests/integration/test_sql_connector.py": 8,
    "tests/runtime/test_budget.py": 8,
    "tests/runtime/test_query.py": 8,
    "tests/designer/test_palette.py": 7,
    "tests/designer/test_revocation.py": 7,
    "tests/governance/test_ide_oidc.py": 7,
    "tests/tenancy/test_regions.py": 7,
    "tests/governance/test_audit.py": 6,
    "tests/pages/test_session.py": 6,
    "tests/governance/test_isolation.py": 5,
    "tests/pages/test_react.py": 5,
}


def _module(item: pytest.Item) -> str:
    return item.nodeid.partition("::")[0]


def longest_first(items: list[pytest.Item]) -> None:
    """Reorder `items` (in place) module by module, the longest module first; a module's own
    tests keep their order."""
    tests = Counter(_module(item) for item in items)
    first = {module: i for i, module in enumerate(dict.fromkeys(map(_module, items)))}

    def key(item: pytest.Item) -> tuple[float, int]:
        module = _module(item)
        return -SECONDS.get(module, tests[module] / 2), first[module]

    items.sort(key=key)
