"""The outbox worker's start-up does nothing per tenant: after a clean stop it opens no tenant
database; after an unclean one (a run's marker left in the platform database) it sweeps every
tenant once and dispatches what was left pending."""

from __future__ import annotations

import asyncio
import time

import httpx
import sqlalchemy as sa

from plinth.events import Event
from plinth.outbox import entries, runs
from plinth.server import Platform
from plinth.settings import Settings
from tests.helpers import make_tenant


async def _started(settings: Settings) -> Platform:
    platform = Platform(settings.model_copy(update={"embedded_worker": True}))
    await platform.start(workers=True)
    deadline = time.monotonic() + 20
    while platform.outbox.rounds < 1:  # its first sweep is done
        assert time.monotonic() < deadline, "the outbox worker never swept"
        await asyncio.sleep(0.02)
    return platform


async def _pending(platform: Platform, tenant_id: str) -> int:
    tenant = await platform.tenants.get(tenant_id)
    async with platform.records.storage.database(tenant).read() as conn:
        return len((await conn.execute(entries.select())).all())


async def test_a_clean_restart_opens_no_tenant_and_an_unclean_one_dispatches_what_was_left(
    client: httpx.AsyncClient, platform: Platform, settings: Settings
) -> None:
    await make_tenant(client, "acme")
    tenant = await platform.tenants.get("acme")
    # A write whose process died between its commit and its dispatch: a pending row.
    source = platform.records.storage.database(tenant)
    await platform.outbox.prepare(source)
    async with source.transaction() as conn:
        left = {"app": "notes", "entity": "note", "id": "left1", "by": "someone"}
        await platform.outbox.write(conn, source, [Event("record.created", tenant.id, left)])
    await platform.records.storage.close()

    # A clean restart: the worker's first sweep opens no tenant's file.
    clean = await _started(settings)
    try:
        assert len(clean.records.storage.files) == 0
    finally:
        await clean.stop()
    # A tenant file stays closed, its row pending; PostgreSQL tenants share their region's
    # database, which is open and swept (one source, whatever the number of tenants).
    assert await _pending(platform, "acme") == (1 if platform.db.is_sqlite else 0)
    async with platform.db.read() as conn:  # the clean stop took its marker away
        assert (await conn.execute(sa.select(runs))).first() is None

    # An unclean stop leaves its run's marker: the next start sweeps every tenant.
    async with platform.db.transaction() as conn:
        await conn.execute(runs.insert().values(id="killed", seen_at=time.time()))
    after = await _started(settings)
    try:
        audited = await after.governance.audit.list(tenant.id, action="record.created")
        assert [e["resource"] for e in audited] == ["notes/note/left1"]  # once
        async with after.db.read() as conn:  # the dead run's marker is gone, ours is there
            ids = [r.id for r in await conn.execute(sa.select(runs.c.id))]
        assert len(ids) == 1 and ids != ["killed"]
    finally:
        await after.stop()
    assert await _pending(platform, "acme") == 0
