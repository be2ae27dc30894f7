"""Password logins are throttled (brute force): per tenant + username (a lockout after
consecutive failures, cleared by a correct password) and per client address (across usernames
and tenants), with 429 + Retry-After, audited once per lockout. Both the API login and the
portal's session login go through the same guard; the limits live in memory when embedded and
in Redis when scaled out (shared by every node)."""

from __future__ import annotations

import base64
import os
import secrets
from collections.abc import AsyncIterator

import httpx
import pytest
from argon2 import PasswordHasher

from plinth.governance import identity
from plinth.integration.quotas import LoginLimits, LoginThrottled, Quotas
from plinth.integration.settings import GatewaySettings
from plinth.server import Platform
from plinth.server.app import create_app
from plinth.settings import Settings
from tests.helpers import make_tenant

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
REDIS_URL = os.environ.get("PLINTH_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
PORTAL = {"x-plinth-portal": "1"}
PASSWORD = "a-long-password"


@pytest.fixture(autouse=True)
def cheap_argon2(monkeypatch: pytest.MonkeyPatch) -> None:
    # Real argon2 at its cheapest: the default costs ~0.3 s per attempt, and these tests try many.
    monkeypatch.setattr(
        identity, "_hasher", PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    )


@pytest.fixture
async def acme(client: httpx.AsyncClient) -> str:
    await make_tenant(client, "acme")
    for name in ("ana", "bob"):
        r = await client.post(
            "/api/t/acme/users", json={"username": name, "password": PASSWORD, "roles": ["analyst"]}
        )
        assert r.status_code == 201, r.text
    return "acme"


def _from(platform: Platform, address: str) -> httpx.AsyncClient:
    """An anonymous client connecting from `address`."""
    transport = httpx.ASGITransport(app=create_app(platform=platform), client=(address, 4711))
    return httpx.AsyncClient(transport=transport, base_url="http://plinth.test")


async def test_api_login_locks_a_username_after_failures(acme: str, platform: Platform) -> None:
    login = "/api/auth/acme/login"
    async with _from(platform, "10.0.0.1") as one, _from(platform, "10.0.0.2") as two:
        # A correct password clears the count: four failures, a success, four more are fine.
        for _ in range(4):
            assert (
                await one.post(login, json={"username": "ana", "password": "guess"})
            ).status_code == 401
        assert (
            await one.post(login, json={"username": "ana", "password": PASSWORD})
        ).status_code == 200
        for _ in range(5):
            assert (
                await one.post(login, json={"username": "ana", "password": "guess"})
            ).status_code == 401
        # Five consecutive failures: ana is locked, from any address, even with her password.
        for client in (one, two, two):
            r = await client.post(login, json={"username": "ANA", "password": PASSWORD})
            assert r.status_code == 429, r.text
            assert r.json()["code"] == "login_throttled"
            assert 1 <= int(r.headers["retry-after"]) <= 900  # when the window frees a try
            assert PASSWORD not in r.text
        # Other usernames are not locked with her.
        assert (
            await two.post(login, json={"username": "bob", "password": PASSWORD})
        ).status_code == 200
    tid = (await platform.tenants.get("acme")).id
    events = await platform.governance.audit.list(tid, action="auth.login")
    outcomes = [e["outcome"] for e in events]
    # Audited once per lockout, not once per refused attempt.
    assert outcomes.count("throttled") == 1 and outcomes.count("failed") == 9


async def test_portal_login_is_limited_per_client_address(
    acme: str, platform: Platform, client: httpx.AsyncClient
) -> None:
    platform.quotas.login_limits = LoginLimits(per_ip=4, ip_seconds=60)
    await make_tenant(client, "other")
    login = "/a/{}/-/session/login"
    async with _from(platform, "203.0.113.7") as sprayer, _from(platform, "10.0.0.9") as ana:
        # Guesses spread over usernames and tenants still count against the address.
        for tenant, user in (("acme", "ana"), ("acme", "bob"), ("other", "carl"), ("nobody", "x")):
            r = await sprayer.post(
                login.format(tenant), headers=PORTAL, json={"username": user, "password": "guess"}
            )
            assert r.status_code == 401, r.text
        r = await sprayer.post(
            login.format("acme"), headers=PORTAL, json={"username": "bob", "password": PASSWORD}
        )
        assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
        assert "from this address" in r.json()["detail"]
        assert "set-cookie" not in r.headers
        # Another address signs in as usual.
        r = await ana.post(
            login.format("acme"), headers=PORTAL, json={"username": "ana", "password": PASSWORD}
        )
        assert r.status_code == 200 and "plinth_refresh" in r.headers["set-cookie"]
    tid = (await platform.tenants.get("acme")).id
    [throttled] = [
        e
        for e in await platform.governance.audit.list(tid, action="auth.login")
        if e["outcome"] == "throttled"
    ]
    assert throttled["data"]["via"] == "portal" and throttled["data"]["client"] == "203.0.113.7"


@pytest.fixture
async def nodes(platform: Platform) -> AsyncIterator[list[Quotas]]:
    prefix = f"plinth-test-{secrets.token_hex(6)}"
    settings = Settings(redis_url=REDIS_URL, master_key=base64.b64encode(os.urandom(32)).decode())
    found = [
        Quotas(settings, GatewaySettings(platform.db, platform.tenants), key_prefix=prefix)
        for _ in range(2)
    ]
    try:
        await found[0].storage.check() or pytest.skip("no Redis at " + REDIS_URL)
    except Exception:
        pytest.skip("no Redis at " + REDIS_URL)
    yield found
    for node in found:
        await node.close()


async def test_a_lockout_is_shared_by_nodes_through_redis(nodes: list[Quotas]) -> None:
    for node in nodes:
        node.login_limits = LoginLimits(per_user=3)
    for i in range(3):
        await nodes[i % 2].login_attempt("t1", "ana", f"10.1.0.{i}")
    with pytest.raises(LoginThrottled) as refused:
        await nodes[1].login_attempt("t1", "ana", "10.1.0.9")
    assert not refused.value.repeat and refused.value.headers["Retry-After"]
    with pytest.raises(LoginThrottled):
        await nodes[0].login_attempt("t1", "Ana", "10.1.0.9")
    await nodes[0].login_attempt("t2", "ana", "10.1.0.9")  # another tenant's ana
    # A correct password on one node clears the count the others see.
    await nodes[0].login_succeeded("t1", "ana")
    await nodes[0].login_attempt("t1", "ana", "10.1.0.9")
