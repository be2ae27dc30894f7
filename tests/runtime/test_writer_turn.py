"""SQLite writers of one process take turns (Database.writer): a publish whose tenant-file
migration is cancelled while it waits for the file's write lock gives its turn back when it
ends, and leaves nothing behind."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import sqlite3
import time
from pathlib import Path

import httpx
import pytest

from plinth.server import Platform
from tests.helpers import CLAIMS, make_app, make_tenant, publish

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


async def test_a_publish_cancelled_while_its_migration_waits_gives_the_turn_back(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    await make_tenant(client, "acme")
    await make_app(client, "acme", "claims")
    assert (await publish(client, "acme", "claims", CLAIMS)).status_code == 201
    base = "/api/t/acme/apps/claims/data/policyholder"
    assert (await client.post(base, json={"full_name": "Ada", "country": "DE"})).status_code == 201
    tenant = await platform.tenants.find("acme")
    assert tenant is not None
    file = platform.records.storage.database(tenant)
    grown = copy.deepcopy(CLAIMS)
    grown["entities"]["policyholder"]["fields"]["phone"] = {"type": "string"}
    r = await client.put("/api/t/acme/apps/claims/draft", json=grown)
    assert r.status_code == 200, r.text
    # Another process writes the file for a moment: the migration waits in BEGIN IMMEDIATE.
    path = Path(platform.settings.data_dir) / "tenants" / f"{tenant.id}.db"
    other = sqlite3.connect(path, timeout=0, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        task = asyncio.ensure_future(client.post("/api/t/acme/apps/claims/publish", json={}))
        await asyncio.sleep(0.5)
        assert file._turn is not None and file._turn.locked()  # the migration holds it
        task.cancel()  # as a request's deadline does
    finally:
        other.execute("ROLLBACK")  # the migration's BEGIN can end (SQLAlchemy cleans up)
        other.close()
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.wait_for(task, 10)
    assert not file._turn.locked()  # given back when the publish ended, not when collected
    started = time.monotonic()
    r = await client.post(base, json={"full_name": "Grace", "country": "DE"})
    assert r.status_code == 201, r.text
    assert time.monotonic() - started < 10  # not SQLite's 30 s busy timeout
    r = await client.get(f"/api/t/acme/apps/claims/data/policyholder/{r.json()['id']}")
    assert r.status_code == 200 and "phone" not in r.json()  # the cancelled publish left nothing
