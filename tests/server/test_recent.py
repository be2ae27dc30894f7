"""The hot path's short-lived cache of database reads (`plinth.recent.Recent`)."""

from __future__ import annotations

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
