"""The outbox under concurrent writes: every write's audit entry exists once the write has
answered, concurrent writes share dispatches, and nothing is left behind to dispatch twice."""

from __future__ import annotations

import asyncio

import httpx

from plinth.outbox import entries
from plinth.server import Platform
from tests.helpers import make_app, make_tenant, publish

APP = {"entities": {"note": {"fields": {"text": {"type": "string"}}}}}


async def test_concurrent_writes_are_audited_once_each(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    await make_tenant(client, "acme")
    await make_app(client, "acme", "notes")
    await publish(client, "acme", "notes", APP)
    answers = await asyncio.gather(
        *(
            client.post("/api/t/acme/apps/notes/data/note", json={"text": f"n{i}"})
            for i in range(40)
        )
    )
    assert {r.status_code for r in answers} == {201}
    ids = {r.json()["id"] for r in answers}
    tenant = await platform.tenants.get("acme")
    audited = [
        e["resource"].rsplit("/", 1)[-1]
        for e in await platform.governance.audit.list(
            tenant.id, action="record.created", limit=1000
        )
    ]
    assert sorted(audited) == sorted(ids)  # each once, already when the writes answered
    # What is still in the outbox was dispatched: a sweep runs no effect again.
    source = platform.records.storage.database(tenant)
    assert await platform.outbox.sweep(source, grace=0.0) == 0
    async with source.read() as conn:
        assert (await conn.execute(entries.select())).first() is None
    after = await platform.governance.audit.list(tenant.id, action="record.created", limit=1000)
    assert len(after) == 40
