"""The outbox under concurrent writes: every write's audit entry exists once the write has
answered, concurrent writes share dispatches, and nothing is left behind to dispatch twice."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import httpx

from plinth.db import Steps
from plinth.events import Event
from plinth.governance.audit import AuditEntry
from plinth.ids import new_id
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


async def test_a_dispatch_whose_prebuilt_guesses_fail_runs_its_transaction(
    platform: Platform,
) -> None:
    """A dispatch is the effects' prebuilt writes in one `Database.write`, built on reads made
    before it. A row dispatched before, or a chain appended to between the read of its head and
    the write, fails that write: nothing of it stays, and the transaction runs the effects once
    each, the chain linear."""
    ledger = platform.governance.audit
    outbox = platform.outbox
    event = Event("record.created", "t1", {"app": "a", "entity": "e", "id": "r1", "by": "u"})
    row = (new_id(), event)
    prebuilt = outbox.prebuilt
    assert await outbox.dispatch(platform.db, [row]) == 1
    assert outbox.prebuilt == prebuilt + 1
    # The same row again (a sweep after a crash between the two commits): nothing new.
    assert await outbox.dispatch(platform.db, [row]) == 0
    assert outbox.prebuilt == prebuilt + 1

    # Another writer appends to the chain after the plan read its head.
    plan = ledger.plan

    async def then_append(tenant_id: str, events: Sequence[Event]) -> Steps:
        steps = await plan(tenant_id, events)
        await ledger.append("t1", AuditEntry("other", "test.append"))
        return steps

    outbox.plans[0] = then_append
    try:
        other = Event("record.created", "t1", {"app": "a", "entity": "e", "id": "r2"})
        assert await outbox.dispatch(platform.db, [(new_id(), other)]) == 1
    finally:
        outbox.plans[0] = plan
    assert outbox.prebuilt == prebuilt + 1
    report = await ledger.verify("t1")
    assert report.ok and report.checked == 3, report
    audited = await ledger.list("t1", limit=10)
    assert [e["action"] for e in audited] == ["record.created", "test.append", "record.created"]
