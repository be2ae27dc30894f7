"""The hot path's short-lived cache of database reads (`plinth.recent.Recent`)."""

from __future__ import annotations

import asyncio

from plinth.recent import Recent


async def test_many_keys_push_out_the_oldest_reads_not_everything() -> None:
    reads: list[int] = []

    async def read(n: int) -> int:
        reads.append(n)
        return n * 10

    cache: Recent[int, int] = Recent(trust=60, limit=3)
    for n in (1, 2, 3):
        assert await cache.get(n, lambda n=n: read(n)) == n * 10
    cache.forget(1)  # changed: read again, and now the newest
    assert await cache.get(1, lambda: read(1)) == 10
    assert await cache.get(4, lambda: read(4)) == 40  # over the limit: 2, the oldest, goes
    reads.clear()
    for n in (1, 3, 4, 2):
        assert await cache.get(n, lambda n=n: read(n)) == n * 10
    assert reads == [2]  # only the one pushed out was read again


async def test_a_change_during_a_read_is_not_hidden_by_that_read() -> None:
    """A tenant changed while a lookup of it is under way: the lookup began before the
    change, so neither a request after the change nor the cache may take its answer."""
    row = {"status": "active"}
    release = asyncio.Event()

    async def slow_read() -> str:
        seen = row["status"]  # read before the change commits
        await release.wait()
        return seen

    async def read() -> str:
        return row["status"]

    cache: Recent[str, str] = Recent(trust=60)
    in_flight = asyncio.create_task(cache.get("acme", slow_read))
    await asyncio.sleep(0)
    row["status"] = "suspended"  # the change commits, and drops what was cached
    cache.forget("acme")
    # Not the read under way (which would wait for it, and answer "active").
    assert await asyncio.wait_for(cache.get("acme", read), 5) == "suspended"
    release.set()
    assert await in_flight == "active"  # its own caller asked before the change
    assert await cache.get("acme", read) == "suspended"  # and it was not kept
