"""Calling plugins: actions and before-write hooks, metering, audit events, fuel budget."""

from __future__ import annotations

import asyncio
import base64
import os
from pathlib import Path

import httpx
import pytest

from plinth.errors import RateLimited, ValidationFailed
from plinth.events import Event
from plinth.extensions.executor import SPARE
from plinth.server import Platform
from plinth.settings import Settings
from tests.extensions.conftest import ADMIN, install, publish
from tests.helpers import as_user, make_tenant, token_for

# Scaled-out nodes share one master key (the ledger's and the vault's keys derive from it).
MASTER = base64.b64encode(os.urandom(32)).decode()

REDIS_URL = os.environ.get("PLINTH_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
CLAIM = {"amount": 1234.5, "country": "FR", "description": "broken window", "prior_claims": 0}


@pytest.fixture
async def fraud(
    platform: Platform, client: httpx.AsyncClient, components: dict[str, Path]
) -> Platform:
    await make_tenant(client, "acme")
    await make_tenant(client, "globex")
    await publish(platform, components, "fraud-scorer")
    await install(platform, "acme", "fraud-scorer")
    await install(platform, "globex", "fraud-scorer")
    return platform


async def test_action_over_http_is_metered_and_audited(
    fraud: Platform, client: httpx.AsyncClient
) -> None:
    seen: list[Event] = []

    async def audit(event: Event) -> None:
        seen.append(event)

    fraud.events.subscribe("plugin.*", audit)
    analyst = await token_for(client, "acme", "analyst")
    r = await client.post(
        "/api/t/acme/plugins/fraud-scorer/actions/score",
        json={**CLAIM, "amount": 60000, "prior_claims": 4, "description": "URGENT cash only"},
        headers=as_user(client, analyst),
    )
    assert r.status_code == 200, r.text
    assert r.json()["level"] == "high" and r.json()["score"] >= 70
    await fraud.plugins.flush_metering()  # metering is written in batches, off the call path
    called = [e for e in seen if e.topic == "plugin.called"]
    assert len(called) == 1
    tenant = await fraud.tenants.get("acme")
    assert called[0].tenant_id == tenant.id
    assert called[0].data["outcome"] == "ok" and called[0].data["fuel"] > 0
    assert called[0].data["by"] and called[0].data["target"] == "score"

    # Input is checked against the action's schema before the plugin runs.
    r = await client.post(
        "/api/t/acme/plugins/fraud-scorer/actions/score",
        json={"amount": -1},
        headers=as_user(client, analyst),
    )
    assert r.status_code == 422 and r.json()["errors"][0]["path"] == "input.amount"
    r = await client.post("/api/t/acme/plugins/fraud-scorer/actions/nope", json={})
    assert r.status_code == 404 and r.json()["path"] == "action"

    metering = (await client.get("/api/t/acme/plugins/metering")).json()
    assert metering["totals"][0]["calls"] == 1 and metering["totals"][0]["fuel"] > 0
    call = metering["calls"][0]
    assert call["outcome"] == "ok" and call["wall_ms"] > 0 and call["memory_limit"] > 0
    # The exact peak of the guest's linear memory: a Python interpreter's worth, under the limit.
    assert 1 << 20 < call["peak_memory"] < call["memory_limit"]
    assert metering["totals"][0]["max_peak_memory"] == call["peak_memory"]
    # Metering is per tenant: globex sees none of acme's calls.
    assert (await client.get("/api/t/globex/plugins/metering")).json()["calls"] == []


async def test_viewer_may_not_execute_and_uninstalled_is_not_found(
    fraud: Platform, client: httpx.AsyncClient
) -> None:
    viewer = await token_for(client, "acme", "viewer")
    r = await client.post(
        "/api/t/acme/plugins/fraud-scorer/actions/score",
        json=CLAIM,
        headers=as_user(client, viewer),
    )
    assert r.status_code == 403
    await make_tenant(client, "initech")
    r = await client.post("/api/t/initech/plugins/fraud-scorer/actions/score", json=CLAIM)
    assert r.status_code == 404


async def test_before_write_amends_or_rejects_with_paths(fraud: Platform) -> None:
    amended = await fraud.plugins.before_write("acme", "claims", "claim", dict(CLAIM), ADMIN)
    assert amended["fraud_score"] == 0 and amended["amount"] == CLAIM["amount"]
    risky = {**CLAIM, "amount": 90000, "prior_claims": 5, "description": "stolen, cash only"}
    with pytest.raises(ValidationFailed) as caught:
        await fraud.plugins.before_write("acme", "claims", "claim", risky, ADMIN)
    assert caught.value.faults[0].path == "amount"
    assert "Fraud risk" in caught.value.faults[0].message
    # Other entities are untouched.
    other = await fraud.plugins.before_write("acme", "claims", "policyholder", {"x": 1}, ADMIN)
    assert other == {"x": 1}


async def test_fuel_budget_429_for_that_tenant_only(
    fraud: Platform, client: httpx.AsyncClient
) -> None:
    fraud.plugins.fuel_per_minute = 1  # the first call spends it all
    url = "/api/t/{}/plugins/fraud-scorer/actions/score"
    assert (await client.post(url.format("acme"), json=CLAIM)).status_code == 200
    r = await client.post(url.format("acme"), json=CLAIM)
    assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
    assert r.json()["code"] == "rate_limited"
    assert (await client.post(url.format("globex"), json=CLAIM)).status_code == 200


async def test_concurrent_calls_each_get_a_fresh_store(fraud: Platform) -> None:
    results = await asyncio.gather(
        *[
            fraud.plugins.call_action(
                "acme", "fraud-scorer", "score", {**CLAIM, "amount": 1000 * i}, ADMIN
            )
            for i in range(1, 9)
        ]
    )
    assert [r["score"] for r in results] == [
        (
            await fraud.plugins.call_action(
                "acme", "fraud-scorer", "score", {**CLAIM, "amount": 1000 * i}, ADMIN
            )
        )["score"]
        for i in range(1, 9)
    ]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_a_warmed_pool_answers_its_first_call_without_a_start_or_a_load(
    fraud: Platform,
) -> None:
    """`plinth worker` warms the pool as it starts: its workers are running, the installed
    plugins' components loaded, before the first call comes."""
    executor = fraud.plugins.executor
    assert executor.workers <= 1  # publishing compiled in one worker; no pool yet
    await fraud.plugins.warm()
    assert executor.workers == executor.admission.capacity + SPARE
    v = await fraud.plugins.version("fraud-scorer")
    assert all(v.sha256 in w.loaded for w in executor._idle)
    spawned = executor.workers
    await fraud.plugins.call_action("acme", "fraud-scorer", "score", dict(CLAIM), ADMIN)
    assert executor.workers == spawned


async def test_fuel_budget_is_shared_by_nodes_through_redis(
    settings: Settings, components: dict[str, Path]
) -> None:
    """Scale-out: two servers on one database and one Redis burn one fuel budget."""
    scaled = settings.model_copy(update={"redis_url": REDIS_URL, "master_key": MASTER})
    nodes = [Platform(scaled), Platform(scaled)]
    for node in nodes:
        await node.start()
    try:
        try:
            await nodes[0].quotas.storage.check()
        except Exception:
            pytest.skip("no Redis at " + REDIS_URL)
        first, second = nodes
        await first.tenants.create("acme", "Acme")
        await first.tenants.create("globex", "Globex")
        await publish(first, components, "fraud-scorer")
        for tenant in ("acme", "globex"):
            await install(first, tenant, "fraud-scorer")
        for node in nodes:
            node.plugins.fuel_per_minute = 1  # the first call spends it all
        await first.plugins.call_action("acme", "fraud-scorer", "score", CLAIM, ADMIN)
        with pytest.raises(RateLimited) as caught:  # on the other node: the same budget
            await second.plugins.call_action("acme", "fraud-scorer", "score", CLAIM, ADMIN)
        assert int(caught.value.headers["Retry-After"]) >= 1
        assert (await second.plugins.call_action("globex", "fraud-scorer", "score", CLAIM, ADMIN))[
            "level"
        ] == "low"
    finally:
        for node in nodes:
            await node.stop()
