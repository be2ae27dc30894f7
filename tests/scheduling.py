"""The order the suite's modules start in: the longest first.

scripts/test runs the suite in three processes, a whole module per process at a time (xdist
`--dist loadfile --no-loadscope-reorder`), handing the next module in collection order to
whichever process is free. A long module handed out last keeps one process busy while the
others have nothing left to do; handed out first, the short ones fill in around it.

SECONDS are rough times of the longest modules on 2 busy cores, from a `--durations` run or,
for few-test modules that start servers, browsers, plugins or child processes, estimated (only
relative sizes matter). A module not listed counts half a second a test, which puts it after
them. A module that grows slow belongs here: otherwise it may be handed out last.
"""

from __future__ import annotations

from collections import Counter

import pytest

SECONDS: dict[str, float] = {
    "tests/extensions/test_security.py": 44,
    "tests/extensions/test_wasmtime_bounds.py": 40,  # two cold compiles, one per wasmtime
    "tests/designer/test_sync.py": 39,
    "tests/runtime/test_properties.py": 36,
    "tests/workflows/test_durability.py": 33,
    "tests/governance/compliance/test_publish.py": 33,
    "tests/integration/test_http_connector.py": 30,
    "tests/e2e/test_demo_day.py": 30,
    "tests/extensions/test_registry.py": 27,
    "tests/extensions/test_calls.py": 26,
    "tests/integration/test_gateway.py": 25,
    "tests/e2e/test_studio.py": 25,
    "tests/server/test_fuzz.py": 25,
    "tests/integration/test_webhooks.py": 24,
    "tests/governance/compliance/test_enforcement.py": 24,
    "tests/governance/test_administration.py": 22,
    "tests/server/test_openapi.py": 21,
    "tests/workflows/test_nodes.py": 21,
    "tests/workflows/test_services.py": 21,
    "tests/designer/test_limits.py": 20,
    "tests/runtime/test_outbox_kill.py": 20,
    "tests/designer/test_kill.py": 20,
    "tests/tenancy/test_many_tenants.py": 20,
    "tests/pages/test_webcomponents.py": 18,
    "tests/runtime/test_hostile_input.py": 17,
    "tests/governance/test_ledger_tamper.py": 16,
    "tests/server/test_endpoint_attacks.py": 16,
    "tests/runtime/test_migrations.py": 16,
    "tests/e2e/test_designer_editors.py": 15,
    "tests/e2e/test_designer.py": 15,
    "tests/e2e/test_react.py": 15,
    "tests/e2e/test_portal.py": 15,
    "tests/server/test_embedded_coherence.py": 15,
    "tests/metadata/test_files.py": 48,
    "tests/workflows/test_claims_rename.py": 55,
    "tests/extensions/test_package_attacks.py": 39,
    "tests/workflows/test_claims_demo.py": 50,
    "tests/workflows/test_claims_erasure.py": 25,
    "tests/extensions/test_isolation.py": 20,
    "tests/extensions/test_cli.py": 15,
    "tests/extensions/test_demo.py": 15,
    "tests/extensions/test_ui.py": 15,
    "tests/integration/test_demo_connectors.py": 15,
    "tests/server/test_demo_command.py": 15,
    "tests/extensions/test_http.py": 12,
    "tests/extensions/test_warm.py": 12,
    "tests/integration/test_plugin_egress.py": 12,
    "tests/integration/test_fairness.py": 12,
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
