"""Review: the platform database away for a moment as a worker starts (right after its run was
marked) must not end the worker while its heartbeat beats on: a marker kept alive by a worker
that is not sweeping keeps every other worker from sweeping what that process left, and its
overdue keys would never be forgotten."""

from __future__ import annotations

import asyncio
import time

import pytest
import sqlalchemy as sa

from plinth import outbox
from plinth.server import Platform
from plinth.settings import Settings


async def test_a_worker_whose_database_blinks_at_start_goes_on_and_tidies(
    platform: Platform, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with platform.db.transaction() as conn:
        overdue = time.time() - outbox.KEEP_SECONDS - outbox.TIDY_SECONDS - 60
        await conn.execute(outbox.dispatched.insert(), [{"id": "overdue", "at": overdue}])
    asked = outbox.Outbox._overdue
    blinks = [ConnectionResetError("the platform database went away")]

    async def once_away(self: outbox.Outbox) -> bool:
        if blinks:
            raise blinks.pop()
        return await asked(self)

    monkeypatch.setattr(outbox.Outbox, "_overdue", once_away)
    node = Platform(settings.model_copy(update={"embedded_worker": True}))
    await node.start(workers=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            worker = node._outbox_worker
            assert worker is not None and not worker.done(), "the worker ended at start"
            async with node.db.read() as conn:
                kept = set((await conn.execute(sa.select(outbox.dispatched.c.id))).scalars())
            if "overdue" not in kept:
                break
            assert time.monotonic() < deadline, "the overdue key was never forgotten"
            await asyncio.sleep(0.1)
    finally:
        await node.stop()
