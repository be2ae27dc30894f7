"""Scale-out: two nodes on one database and one Redis share circuit-breaker state and OAuth2
access tokens (encrypted in Redis, with a TTL), against a real service on 127.0.0.1."""

from __future__ import annotations

import asyncio
import base64
import os

import httpx
import pytest
import redis.asyncio

from plinth.server import Platform, create_app
from plinth.settings import Settings
from tests.conftest import ADMIN_TOKEN
from tests.integration.helpers import published
from tests.integration.remote import CLIENT_ID, CLIENT_SECRET, Remote

REDIS_URL = os.environ.get("PLINTH_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


async def test_two_nodes_share_breakers_and_tokens(settings: Settings, remote: Remote) -> None:
    probe = redis.asyncio.Redis.from_url(REDIS_URL)
    try:
        await probe.ping()
    except Exception:
        await probe.aclose()
        pytest.skip("no Redis at " + REDIS_URL)
    scaled = settings.model_copy(
        update={"redis_url": REDIS_URL, "master_key": base64.b64encode(os.urandom(32)).decode()}
    )
    nodes = [Platform(scaled), Platform(scaled)]
    for node in nodes:
        await node.start()
    clients = [
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=create_app(platform=n)),
            base_url="http://plinth.test",
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        )
        for n in nodes
    ]
    try:
        ops = {
            "down": {"method": "GET", "path": "/down"},
            "flaky": {"method": "GET", "path": "/flaky"},
            "secure": {"method": "GET", "path": "/secure"},
        }
        doc = {
            "kind": "http",
            "base_url": remote.url,
            "operations": ops,
            "retries": 0,
            "breaker": {"failures": 2, "reset_seconds": 0.5},
            "auth": {
                "type": "oauth2_client_credentials",
                "token_url": f"{remote.url}/token",
                "client_id": CLIENT_ID,
                "client_secret": {"secret": "oauth"},
            },
        }
        await published(
            clients[0],
            "acme",
            "crm",
            {"connectors": {"svc": doc}},
            secrets={"oauth": CLIENT_SECRET},
        )

        async def call(node: int, operation: str) -> httpx.Response:
            return await clients[node].post(
                "/api/t/acme/apps/crm/connectors/svc/call", json={"operation": operation}
            )

        # One token for both nodes: fetched by the first, reused by the second.
        assert (await call(0, "secure")).json()["body"] == {"secure": True}
        assert (await call(1, "secure")).json()["body"] == {"secure": True}
        assert len(remote.tokens_issued) == 1
        sealed = [
            await probe.get(k)
            async for k in probe.scan_iter("plinth:oauth:*")
            if (await probe.pttl(k)) > 0
        ]
        tenant_id = (await nodes[0].tenants.get("acme")).id
        assert [k async for k in probe.scan_iter(f"plinth:oauth:{tenant_id}/*")]
        assert all(remote.tokens_issued[0].encode() not in v for v in sealed if v)
        # The service revokes it: node 1 refreshes once, node 0 then uses the new one.
        remote.tokens_issued.clear()
        assert (await call(1, "secure")).status_code == 200
        assert (await call(0, "secure")).status_code == 200
        assert len(remote.tokens_issued) == 1

        # Two failures on node 0 open the circuit for node 1 too: nothing more goes out.
        for _ in range(2):
            assert (await call(0, "down")).status_code == 502
        r = await call(1, "down")
        assert r.status_code == 503 and r.json()["code"] == "circuit_open", r.text
        assert int(r.headers["retry-after"]) >= 1
        assert (await call(1, "flaky")).status_code == 503
        assert remote.calls["GET /down"] == 2 and "GET /flaky" not in remote.calls
        # After the reset time one node's trial call closes it for both.
        await asyncio.sleep(0.55)
        remote.flaky_failures = 0
        assert (await call(1, "flaky")).status_code == 200
        assert (await call(0, "flaky")).status_code == 200
    finally:
        for c in clients:
            await c.aclose()
        for node in nodes:
            await node.stop()
        await probe.aclose()
