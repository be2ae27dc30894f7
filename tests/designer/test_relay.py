"""Two server nodes on one database and one Redis: rooms stay in sync across them."""

from __future__ import annotations

import asyncio
import base64
import os

import httpx
import pytest
import redis.asyncio as aioredis

from plinth.server import Platform
from plinth.settings import Settings
from tests.conftest import ADMIN_TOKEN
from tests.designer.conftest import serve
from tests.designer.test_sync import add_field, field_names, setup_app
from tests.designer.yclient import YClient, eventually

# Scaled-out nodes share one master key (the ledger's and the vault's keys derive from it).
MASTER = base64.b64encode(os.urandom(32)).decode()

REDIS_URL = os.environ.get("PLINTH_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


async def _redis_up() -> bool:
    try:
        client = aioredis.from_url(REDIS_URL)
        await client.ping()
        await client.aclose()
        return True
    except Exception:
        return False


async def test_two_nodes_converge_through_redis(settings: Settings) -> None:
    if not await _redis_up():
        pytest.skip("no Redis at PLINTH_TEST_REDIS_URL")
    nodes = []
    for _ in range(2):
        node = Platform(settings.model_copy(update={"redis_url": REDIS_URL, "master_key": MASTER}))
        node.designer.limits.sync_interval_seconds = 0.3
        await node.start()
        nodes.append((node, await serve(node)))
    (one, s1), (two, s2) = nodes
    try:
        async with httpx.AsyncClient(
            base_url=s1.http, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
        ) as http:
            await setup_app(http)
        async with (
            YClient(s1.sync_url("acme", "claims"), ADMIN_TOKEN) as a,
            YClient(s2.sync_url("acme", "claims"), ADMIN_TOKEN) as b,
        ):
            await asyncio.wait_for(a.synced.wait(), 5)
            await asyncio.wait_for(b.synced.wait(), 5)
            add_field(a, "claim", "fld_n1", "on_one", type="string")
            add_field(b, "claim", "fld_n2", "on_two", type="string")
            await eventually(
                lambda: (
                    {"on_one", "on_two"} <= field_names(a, "claim")
                    and field_names(a, "claim") == field_names(b, "claim")
                )
            )
            # presence crosses nodes too
            await a.set_presence({"cursor": "claim"})
            await eventually(lambda: a.doc.client_id in b.awareness)
            # node two misses relay messages for a while, then catches up by state vectors
            await two.designer._pubsub.unsubscribe(two.designer.channel)
            add_field(a, "claim", "fld_n3", "while_deaf", type="string")
            await asyncio.sleep(0.3)
            await two.designer._pubsub.subscribe(two.designer.channel)
            await eventually(lambda: "while_deaf" in field_names(b, "claim"), within=10)
    finally:
        for node, served in nodes:
            await served.shutdown()
            await node.stop()
