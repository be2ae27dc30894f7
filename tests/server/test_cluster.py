"""Scale-out: two nodes on one database and one Redis. A publish on one node reaches the
other's compiled app and policy set, and is audited once."""

from __future__ import annotations

import asyncio
import base64
import copy
import os

import httpx
import pytest
import redis.asyncio

from plinth.server import Platform, create_app
from plinth.settings import Settings
from tests.conftest import ADMIN_TOKEN
from tests.helpers import CLAIMS, as_user, make_app, make_tenant, publish, token_for

REDIS_URL = os.environ.get("PLINTH_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
DATA = "/api/t/acme/apps/claims/data"


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_a_publish_on_one_node_reaches_the_other(settings: Settings) -> None:
    probe = redis.asyncio.Redis.from_url(REDIS_URL)
    try:
        await probe.ping()
    except Exception:
        pytest.skip("no Redis at " + REDIS_URL)
    finally:
        await probe.aclose()
    # Scaled-out nodes share one master key (the ledger's and the vault's keys derive from it).
    master = base64.b64encode(os.urandom(32)).decode()
    scaled = settings.model_copy(update={"redis_url": REDIS_URL, "master_key": master})
    nodes = [Platform(scaled), Platform(scaled)]
    for node in nodes:
        await node.start()
    a, b = (
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=create_app(platform=n)),
            base_url="http://plinth.test",
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        )
        for n in nodes
    )
    try:
        await make_tenant(a, "acme")
        await make_app(a, "acme", "claims")
        await publish(a, "acme", "claims", CLAIMS)
        holder = {"full_name": "Ana Lima", "country": "FR", "phone": "+33 1 23 45 67 89"}
        r = await b.post(f"{DATA}/policyholder", json=holder)  # node B compiles version 1
        assert r.status_code == 422 and r.json()["errors"][0]["path"] == "phone", r.text

        v2 = copy.deepcopy(CLAIMS)
        v2["entities"]["policyholder"]["fields"]["phone"] = {"type": "string"}
        v2["policies"] = {
            "no_deletes": {
                "cedar": (
                    '@id("no_deletes")\nforbid (principal, action == Action::"data.delete", '
                    "resource is policyholder);"
                )
            }
        }
        await publish(a, "acme", "claims", v2)
        for _ in range(100):  # relayed through Redis: milliseconds, not a poll interval
            r = await b.post(f"{DATA}/policyholder", json=holder)
            if r.status_code != 422:
                break
            await asyncio.sleep(0.05)
        assert r.status_code == 201, r.text
        # The policy set moved with it: node B refuses what version 2 forbids.
        owner = as_user(b, await token_for(a, "acme", "owner"))
        r = await b.delete(f"{DATA}/policyholder/{r.json()['id']}", headers=owner)
        assert r.status_code == 403, r.text
        # Audited once, by the node that published, not again by the node that heard of it.
        tid = (await nodes[0].tenants.get("acme")).id
        for node in nodes:
            await node.governance.audit.drain()
        events = await nodes[0].governance.audit.list(tid, action="app.published", limit=100)
        assert [e["data"].get("version") for e in events] == [1, 2]
    finally:
        for client in (a, b):
            await client.aclose()
        for node in nodes:
            await node.stop()
