"""The outbox worker's rounds cost nothing for idle tenant files: it sweeps the files its own
process wrote to, until what was written there is old enough to take, and dispatches a write
whose dispatch never happened; files it only read are not touched."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy import event

from plinth import outbox
from plinth.events import Event
from plinth.server import Platform
from plinth.settings import Settings
from tests.helpers import make_tenant


async def _rounds(platform: Platform, n: int) -> None:
    goal = platform.outbox.rounds + n
    deadline = time.monotonic() + 30
    while platform.outbox.rounds < goal:
        assert time.monotonic() < deadline, "the outbox worker stopped sweeping"
        await asyncio.sleep(0.05)


async def test_the_worker_sweeps_what_its_process_wrote_and_leaves_idle_files_alone(
    client: httpx.AsyncClient,
    platform: Platform,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(outbox, "SETTLE_SECONDS", 1.0)  # was a write's longest wait
    await make_tenant(client, "busy")
    await make_tenant(client, "idle")
    node = Platform(settings.model_copy(update={"embedded_worker": True}))
    await node.start(workers=True)
    try:
        await _rounds(node, 1)
        busy, idle = await node.tenants.get("busy"), await node.tenants.get("idle")
        storage = node.records.storage
        # A write whose dispatch never happened (it failed, or the request was cancelled
        # between the commit and the hand-off): a pending row only this process knows of.
        source = storage.database(busy)
        await node.outbox.prepare(source)
        async with source.transaction() as conn:
            left = {"app": "notes", "entity": "note", "id": "left1", "by": "someone"}
            await node.outbox.write(conn, source, [Event("record.created", busy.id, left)])
        # A tenant only read from: its file is open, nothing of this process is in it.
        await node.outbox.prepare(storage.database(idle))
        statements = {"busy": 0, "idle": 0}
        for slug, tenant in (("busy", busy), ("idle", idle)):
            engine = storage.database(tenant).engine.sync_engine

            def count(*_args: object, slug: str = slug) -> None:
                statements[slug] += 1

            event.listen(engine, "before_cursor_execute", count)

        deadline = time.monotonic() + 30
        while not await node.governance.audit.list(busy.id, action="record.created"):
            assert time.monotonic() < deadline, "the worker never dispatched the pending row"
            await asyncio.sleep(0.2)
        audited = await node.governance.audit.list(busy.id, action="record.created")
        assert [e["resource"] for e in audited] == ["notes/note/left1"]
        if not node.db.is_sqlite:
            return  # PostgreSQL: one region database, swept every round whatever it holds
        assert statements["idle"] == 0
        await _rounds(node, 2)  # what it wrote is taken: the busy file falls idle too
        before = statements["busy"]
        await _rounds(node, 2)
        assert statements == {"busy": before, "idle": 0}
    finally:
        await node.stop()


async def test_a_row_whose_dispatch_failed_keeps_its_file_on_the_rounds(
    client: httpx.AsyncClient,
    platform: Platform,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A row the worker claimed but could not dispatch waits out its lease (60 s) in its file;
    the worker must keep sweeping that file until the row is gone, not forget it once the
    file's last write is old."""
    monkeypatch.setattr(outbox, "GRACE_SECONDS", 0.2)
    monkeypatch.setattr(outbox, "SETTLE_SECONDS", 0.5)
    await make_tenant(client, "busy")
    node = Platform(settings.model_copy(update={"embedded_worker": True}))
    await node.start(workers=True)
    try:
        busy = await node.tenants.get("busy")
        source = node.records.storage.database(busy)
        if not source.is_sqlite:
            return  # PostgreSQL: its region database is swept every round anyway
        await node.outbox.prepare(source)
        failed = 0

        async def away(*_args: object) -> None:  # the platform database away for a while
            nonlocal failed
            failed += 1
            raise RuntimeError("the platform database is away")

        monkeypatch.setattr(node.outbox, "_dispatch", away)
        async with source.transaction() as conn:
            left = {"app": "notes", "entity": "note", "id": "left2", "by": "someone"}
            await node.outbox.write(conn, source, [Event("record.created", busy.id, left)])
        deadline = time.monotonic() + 20
        while not failed:
            assert time.monotonic() < deadline, "the worker never tried the row"
            await asyncio.sleep(0.05)
        await _rounds(node, 3)  # its claim's lease holds it: the rounds find nothing free
        seen = 0

        def count(*_args: object) -> None:
            nonlocal seen
            seen += 1

        event.listen(source.engine.sync_engine, "before_cursor_execute", count)
        await _rounds(node, 2)
        assert seen > 0, "the file holding an undispatched row fell off the worker's rounds"
    finally:
        await node.stop()


async def test_a_node_restarted_often_still_forgets_old_idempotency_keys(
    platform: Platform, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Keys are forgotten a week after their rows left every source, by a tidy an hour into a
    worker's run: a node restarted more often than that tidies at start once a key is overdue,
    a batch of keys a transaction, and keeps the keys still within their week."""
    monkeypatch.setattr(outbox, "PRUNE_BATCH", 3)
    now = time.time()
    overdue = now - outbox.KEEP_SECONDS - outbox.TIDY_SECONDS - 60
    async with platform.db.transaction() as conn:
        await conn.execute(
            outbox.dispatched.insert(),
            [{"id": f"overdue{i}", "at": overdue - i} for i in range(7)]
            + [{"id": "recent", "at": now - 60}],
        )
    node = Platform(settings.model_copy(update={"embedded_worker": True}))
    await node.start(workers=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            async with node.db.read() as conn:
                kept = set((await conn.execute(sa.select(outbox.dispatched.c.id))).scalars())
            if kept == {"recent"}:
                break
            assert time.monotonic() < deadline, f"overdue keys never forgotten: {kept}"
            await asyncio.sleep(0.1)
    finally:
        await node.stop()
