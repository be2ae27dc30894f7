"""The outbox worker's start-up does nothing per tenant: after a clean stop, or beside other
running workers, it opens no tenant database; after an unclean stop (a run's marker left in
the platform database, beaten no more) it sweeps every tenant once and dispatches what was
left pending."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
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
            assert not (settings.data_dir / "tenants" / f"{empty.id}.db").exists()
        audited = await after.governance.audit.list(tenant.id, action=CREATED)
        assert [e["resource"] for e in audited] == ["notes/note/left1"]  # once
    finally:
        await after.stop()
    assert await _pending(platform, "acme") == 0


async def test_a_tenant_file_that_cannot_be_read_does_not_stop_recovery_for_the_others(
    client: httpx.AsyncClient, platform: Platform, settings: Settings
) -> None:
    if not platform.db.is_sqlite:
        pytest.skip("a file per tenant is SQLite's layout")
    await make_tenant(client, "aaa")
    bad = await platform.tenants.get("aaa")
    await make_tenant(client, "zzz")
    good = await platform.tenants.get("zzz")
    source = platform.records.storage.database(good)
    await platform.outbox.prepare(source)
    async with source.transaction() as conn:  # its writer died before the dispatch
        left = {"app": "notes", "entity": "note", "id": "left1", "by": "someone"}
        await platform.outbox.write(conn, source, [Event(CREATED, good.id, left)])
        await conn.execute(entries.update().values(run_at=entries.c.run_at - 60))
    await platform.records.storage.close()
    # The first tenant in the sweep's order has a file that is not a database at all.
    (settings.data_dir / "tenants" / f"{bad.id}.db").write_bytes(b"not a database" * 100)
    async with platform.db.transaction() as conn:  # a run that died a while ago
        await conn.execute(runs.insert().values(id="killed", seen_at=time.time() - 100))

    after = await _started(settings)
    try:
        deadline = time.monotonic() + 20
        while not await after.governance.audit.list(good.id, action=CREATED):
            assert time.monotonic() < deadline, "a bad file kept the others from recovery"
            await asyncio.sleep(0.2)
    finally:
        await after.stop()
