"""The gateway: rate limits and quotas (memory and Redis), CORS per app, custom domains,
time limits, access logs, and one tenant's flood not slowing another tenant."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import secrets
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from plinth.errors import RateLimited
from plinth.integration import GatewaySettings, Quotas
from plinth.integration.models import QuotaExceeded
from plinth.server import Platform, create_app
from plinth.settings import Settings
from tests.conftest import ADMIN_TOKEN
from tests.helpers import make_app, make_tenant, token_for

REDIS_URL = os.environ.get("PLINTH_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture
async def served(platform: Platform) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """The app (to add test routes to) and an admin client for it."""
    app = create_app(platform=platform)

    @app.get("/api/t/{tenant}/apps/{app_slug}/slow")
    async def slow(tenant: str, app_slug: str) -> dict:
        await asyncio.sleep(1)
        return {"slow": True}

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport,
        base_url="http://plinth.test",
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
    ) as c:
        yield app, c


async def test_tenant_limit_gives_429_with_standard_headers(
    served: tuple[FastAPI, httpx.AsyncClient],
) -> None:
    _, client = served
    await make_tenant(client, "acme")
    await make_tenant(client, "other")
    # Per day: five requests on a loaded machine may straddle a one-second window.
    r = await client.put("/api/t/acme/gateway", json={"limits": {"per_day": 3}})
    assert r.status_code == 200, r.text
    statuses = [(await client.get("/api/t/acme/apps")).status_code for _ in range(5)]
    assert statuses[:3] == [200, 200, 200] and statuses[3:] == [429, 429]
    r = await client.get("/api/t/acme/apps")
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["code"] == "rate_limited" and r.json()["scope"] == "tenant"
    assert int(r.headers["retry-after"]) >= 1
    assert r.headers["ratelimit-limit"] == "3" and r.headers["ratelimit-remaining"] == "0"
    assert r.headers["ratelimit-policy"] == "3;w=86400" and "x-request-id" in r.headers
    # The other tenant's budget is its own.
    r = await client.get("/api/t/other/apps")
    assert r.status_code == 200 and int(r.headers["ratelimit-remaining"]) > 3


async def test_api_key_and_app_limits(served: tuple[FastAPI, httpx.AsyncClient]) -> None:
    _, client = served
    await make_tenant(client, "acme")
    await make_app(client, "acme", "crm")
    await make_app(client, "acme", "hr")
    viewer = await token_for(client, "acme", "viewer")
    analyst = await token_for(client, "acme", "analyst")
    # Per day, not per second: three requests on a loaded machine may straddle a second.
    await client.put("/api/t/acme/gateway", json={"limits": {"api_key": {"per_day": 2}}})
    as_viewer = {"Authorization": f"Bearer {viewer}"}
    codes = [
        (await client.get("/api/t/acme/apps", headers=as_viewer)).status_code for _ in range(3)
    ]
    assert codes == [200, 200, 429]
    r = await client.get("/api/t/acme/apps", headers={"Authorization": f"Bearer {analyst}"})
    assert r.status_code == 200  # another key has its own budget
    await client.put("/api/t/acme/gateway", json={})
    r = await client.put("/api/t/acme/gateway/apps/crm", json={"limits": {"per_day": 2}})
    assert r.status_code == 200
    codes = [(await client.get("/api/t/acme/apps/crm")).status_code for _ in range(3)]
    assert codes == [200, 200, 429]
    r = await client.get("/api/t/acme/apps/crm")
    assert r.json()["scope"] == "app" and r.headers["ratelimit-policy"] == "2;w=86400"
    assert (await client.get("/api/t/acme/apps/hr")).status_code == 200
    # Settings are validated; tenants do not raise their own limits.
    r = await client.put("/api/t/acme/gateway", json={"limits": {"per_second": 0}})
    assert r.status_code == 422 and r.json()["errors"][0]["path"] == "limits.per_second"
    owner = await token_for(client, "acme", "owner")
    r = await client.put(
        "/api/t/acme/gateway",
        json={"limits": {"per_second": 1000}},
        headers={"Authorization": f"Bearer {owner}"},
    )
    assert r.status_code == 403


async def test_quota_hooks_for_other_layers(
    platform: Platform, served: tuple[FastAPI, httpx.AsyncClient]
) -> None:
    _, client = served
    await make_tenant(client, "acme")
    tenant = await platform.tenants.get("acme")
    await client.put(
        "/api/t/acme/gateway",
        json={"quotas": {"plugin_fuel": {"per_day": 1000}, "records": {"max": 10}}},
    )
    await platform.quotas.consume(tenant.id, "plugin_fuel", 600)
    await platform.quotas.consume(tenant.id, "plugin_fuel", 400)
    with pytest.raises(QuotaExceeded) as refused:
        await platform.quotas.consume(tenant.id, "plugin_fuel", 1)
    assert refused.value.status == 429 and "Retry-After" in refused.value.headers
    await platform.quotas.check_stock(tenant.id, "records", current=9, adding=1)
    with pytest.raises(QuotaExceeded, match="at most 10 records"):
        await platform.quotas.check_stock(tenant.id, "records", current=10)
    await platform.quotas.consume(tenant.id, "unmetered", 10**9)  # no quota set: free


async def test_limits_shared_through_redis_between_nodes(platform: Platform) -> None:
    prefix = f"plinth-test-{secrets.token_hex(6)}"
    settings = Settings(redis_url=REDIS_URL, master_key=base64.b64encode(os.urandom(32)).decode())
    nodes = [
        Quotas(settings, GatewaySettings(platform.db, platform.tenants), key_prefix=prefix)
        for _ in range(2)
    ]
    try:
        await nodes[0].storage.check() or pytest.skip("no Redis at " + REDIS_URL)
    except Exception:
        pytest.skip("no Redis at " + REDIS_URL)
    tenant = await platform.tenants.create("acme")
    await nodes[0].gateway.put(tenant.id, "tenant", {"quotas": {"fuel": {"per_day": 5}}})
    limits = [("tenant", tenant.id, {"per_second": 4})]
    verdicts = [await nodes[i % 2].hit(limits) for i in range(5)]
    assert [v.allowed for v in verdicts] == [True, True, True, True, False]
    assert verdicts[-1].reset_after >= 0 and verdicts[2].remaining == 1
    await nodes[0].consume(tenant.id, "fuel", 3)
    with pytest.raises(QuotaExceeded):
        await nodes[1].consume(tenant.id, "fuel", 3)
    for node in nodes:
        await node.close()


async def test_cors_per_app(served: tuple[FastAPI, httpx.AsyncClient]) -> None:
    _, client = served
    await make_tenant(client, "acme")
    await make_app(client, "acme", "crm")
    await client.put(
        "/api/t/acme/gateway/apps/crm",
        json={"cors": {"origins": ["https://crm.example.com"], "methods": ["GET", "POST"]}},
    )
    preflight = {"Origin": "https://crm.example.com", "Access-Control-Request-Method": "POST"}
    r = await client.options("/api/t/acme/apps/crm/draft", headers=preflight)
    assert r.status_code == 204
    assert r.headers["access-control-allow-origin"] == "https://crm.example.com"
    assert r.headers["access-control-allow-methods"] == "GET, POST"
    r = await client.options(
        "/api/t/acme/apps/crm/draft", headers={**preflight, "Origin": "https://evil.example"}
    )
    assert r.status_code == 403 and r.json()["code"] == "cors_refused"
    r = await client.get("/api/t/acme/apps/crm", headers={"Origin": "https://crm.example.com"})
    assert r.headers["access-control-allow-origin"] == "https://crm.example.com"
    r = await client.get("/api/t/acme/apps/crm", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in r.headers


async def test_custom_domain_resolves_the_tenant(served: tuple[FastAPI, httpx.AsyncClient]) -> None:
    _, client = served
    await make_tenant(client, "acme")
    await make_app(client, "acme", "crm")
    r = await client.post("/api/t/acme/domains", json={"host": "Apps.Acme.Example"})
    assert r.status_code == 201 and r.json()["host"] == "apps.acme.example"
    r = await client.get("/api/apps/crm", headers={"Host": "apps.acme.example"})
    assert r.status_code == 200 and r.json()["slug"] == "crm"
    await make_tenant(client, "beta")
    r = await client.post("/api/t/beta/domains", json={"host": "apps.acme.example"})
    assert r.status_code == 409


async def test_time_limit_gives_504_and_access_log_is_clean(
    served: tuple[FastAPI, httpx.AsyncClient], caplog: pytest.LogCaptureFixture
) -> None:
    _, client = served
    caplog.set_level(logging.INFO, logger="plinth.access")
    await make_tenant(client, "acme")
    await make_app(client, "acme", "crm")
    await client.put("/api/t/acme/gateway/apps/crm", json={"timeout_seconds": 0.2})
    r = await client.get(
        "/api/t/acme/apps/crm/slow?token=abc123querysecret", headers={"X-Request-Id": "req-42"}
    )
    assert r.status_code == 504 and r.json()["code"] == "gateway_timeout"
    assert r.json()["request_id"] == "req-42"
    lines = [json.loads(rec.getMessage()) for rec in caplog.records if rec.name == "plinth.access"]
    line = next(x for x in lines if x["request_id"] == "req-42")
    assert (line["status"], line["tenant"], line["app"]) == (504, "acme", "crm")
    assert line["path"] == "/api/t/acme/apps/crm/slow" and line["duration_ms"] >= 200
    assert ADMIN_TOKEN not in caplog.text and "abc123querysecret" not in caplog.text


async def test_marketplace_lists_kinds_and_installed(
    served: tuple[FastAPI, httpx.AsyncClient],
) -> None:
    _, client = served
    await make_tenant(client, "acme")
    await make_app(
        client,
        "acme",
        "crm",
        {"connectors": {"hook": {"kind": "webhook_in", "secret": {"secret": "s"}}}},
    )
    await client.post("/api/t/acme/apps/crm/publish", json={})
    r = await client.get("/api/marketplace", params={"tenant": "acme"})
    assert r.status_code == 200
    body = r.json()
    assert {k["name"] for k in body["connector_kinds"]} == {
        "http",
        "webhook_out",
        "webhook_in",
        "sql",
    }
    assert body["plugins"] == []
    assert body["installed"]["connectors"] == [
        {"app": "crm", "connector": "hook", "kind": "webhook_in", "operations": []}
    ]
    viewer = await token_for(client, "acme", "viewer")
    await make_tenant(client, "other")
    r = await client.get(
        "/api/marketplace",
        params={"tenant": "other"},
        headers={"Authorization": f"Bearer {viewer}"},
    )
    assert r.status_code == 403


def test_refusal_error_is_typed() -> None:
    assert RateLimited.status == 429


async def test_concurrency_cap_per_tenant(served: tuple[FastAPI, httpx.AsyncClient]) -> None:
    _, client = served
    await make_tenant(client, "acme")
    await make_tenant(client, "other")
    await client.put("/api/t/acme/gateway", json={"limits": {"max_concurrent": 1}})
    first = asyncio.create_task(client.get("/api/t/acme/apps/crm/slow"))
    await asyncio.sleep(0.1)
    r = await client.get("/api/t/acme/apps")
    assert r.status_code == 429 and r.json()["scope"] == "concurrency"
    assert (await client.get("/api/t/other/apps")).status_code == 200
    assert (await first).status_code == 200
    assert (await client.get("/api/t/acme/apps")).status_code == 200


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_fair_share_when_the_process_is_full(
    served: tuple[FastAPI, httpx.AsyncClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    from plinth.integration import Gateway

    app, client = served
    entered: list[int] = []
    both_in, release = asyncio.Event(), asyncio.Event()

    @app.get("/api/t/{tenant}/apps/{app_slug}/held")
    async def held(tenant: str, app_slug: str) -> dict:
        entered.append(1)
        if len(entered) == 2:
            both_in.set()
        await release.wait()
        return {"held": True}

    await make_tenant(client, "acme")
    await make_tenant(client, "other")
    monkeypatch.setattr(Gateway, "capacity", 2)
    slow = [asyncio.create_task(client.get("/api/t/acme/apps/crm/held")) for _ in range(2)]
    await asyncio.wait_for(both_in.wait(), 10)
    # acme holds every slot: its next request is refused, another tenant's still runs.
    r = await client.get("/api/t/acme/apps")
    assert r.status_code == 503 and r.json()["scope"] == "fair_share"
    assert r.headers["retry-after"] == "1"
    assert (await client.get("/api/t/other/apps")).status_code == 200
    release.set()
    assert [(await t).status_code for t in slow] == [200, 200]
    assert (await client.get("/api/t/acme/apps")).status_code == 200


async def test_two_nodes_share_limits_through_redis(settings: Settings) -> None:
    """Scale-out: two servers on one database and one Redis count one budget."""
    scaled = settings.model_copy(
        update={"redis_url": REDIS_URL, "master_key": base64.b64encode(os.urandom(32)).decode()}
    )
    prefix = f"plinth-test-{secrets.token_hex(6)}"
    nodes = [Platform(scaled), Platform(scaled)]
    for node in nodes:
        node.quotas = Quotas(scaled, GatewaySettings(node.db, node.tenants), key_prefix=prefix)
        await node.start()
    try:
        try:
            await nodes[0].quotas.storage.check()
        except Exception:
            pytest.skip("no Redis at " + REDIS_URL)
        clients = [
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=create_app(platform=n)),
                base_url="http://plinth.test",
                headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
            )
            for n in nodes
        ]
        await make_tenant(clients[0], "acme")
        await clients[1].put("/api/t/acme/gateway", json={"limits": {"per_day": 4}})
        codes = [(await clients[i % 2].get("/api/t/acme/apps")).status_code for i in range(6)]
        assert codes.count(200) == 4 and codes[-1] == 429, codes
        for c in clients:
            await c.aclose()
    finally:
        for node in nodes:
            await node.stop()
