"""The outbox worker's start-up does nothing per tenant: after a clean stop, or beside other
running workers, it opens no tenant database; after an unclean stop (a run's marker left in
the platform database, beaten no more) it sweeps every tenant once and dispatches what was
left pending."""

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

CREATED = "record.created"


async def _started(settings: Settings) -> Platform:
    platform = Platform(settings.model_copy(update={"embedded_worker": True}))
    await platform.start(workers=True)
    deadline = time.monotonic() + 20
    while platform.outbox.rounds < 1:  # its first sweep is done
        assert time.monotonic() < deadline, "the outbox worker never swept"
        await asyncio.sleep(0.02)
    return platform


async def _markers(platform: Platform) -> list[str]:
    async with platform.db.read() as conn:
        return [r.id for r in await conn.execute(sa.select(runs.c.id))]


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
    # Another tenant with a file and nothing left in its outbox, and one without a file.
    await make_tenant(client, "quiet")
    quiet = await platform.tenants.get("quiet")
    await platform.outbox.prepare(platform.records.storage.database(quiet))
    await make_tenant(client, "empty")
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

    # Another worker is running (a sibling of `plinth serve --workers N`): its marker is
    # there, beaten every poll. A start beside it sweeps no tenant, during its watch or after.
    async with platform.db.transaction() as conn:
        await conn.execute(runs.insert().values(id="sibling", seen_at=time.time()))

    async def beat() -> None:
        while True:
            await asyncio.sleep(0.5)
            async with platform.db.transaction() as conn:
                await conn.execute(
                    runs.update().where(runs.c.id == "sibling").values(seen_at=time.time())
                )

    beating = asyncio.create_task(beat())
    beside = await _started(settings)
    try:
        rounds = beside.outbox.rounds
        await asyncio.sleep(6)  # past its watch (2 polls and a second)
        assert beside.outbox.rounds > rounds
        assert len(beside.records.storage.files) == 0
    finally:
        beating.cancel()
        await beside.stop()
    assert await _pending(platform, "acme") == (1 if platform.db.is_sqlite else 0)
    async with platform.db.transaction() as conn:  # the sibling stops cleanly
        await conn.execute(runs.delete().where(runs.c.id == "sibling"))

    # An unclean stop leaves its run's marker, beaten no more: once a start has watched it
    # stay silent, it sweeps every tenant.
    async with platform.db.transaction() as conn:
        await conn.execute(runs.insert().values(id="killed", seen_at=time.time()))
    after = await _started(settings)
    try:
        deadline = time.monotonic() + 20
        while "killed" in (ids := await _markers(after)):  # until its sweep is complete
            assert time.monotonic() < deadline, "the dead run's sweep never completed"
            await asyncio.sleep(0.2)
        assert len(ids) == 1  # ours
        if platform.db.is_sqlite:
            # The sweep read every tenant's outbox, and opened for good only the one with a
            # row left: no pool, no thread, nothing evicted for the others; no file was made.
            assert after.records.storage.files.stats()["opened"] == 1
            empty = await after.tenants.get("empty")
            assert not (settings.data_dir / "tenants" / empty.id).exists()
        audited = await after.governance.audit.list(tenant.id, action=CREATED)
        assert [e["resource"] for e in audited] == ["notes/note/left1"]  # once
    finally:
        await after.stop()
    assert await _pending(platform, "acme") == 0
