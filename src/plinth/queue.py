"""The database queue: rows claimed under a lease, kept alive by a heartbeat, retried with
jittered backoff. Workflow jobs, webhook deliveries and the outbox are all queues of this kind.

A row is free when its status is one of the queue's waiting states, it is due (`run_at`), and
it holds no live lease (`locked_until` absent or past). A worker claims free rows in one write
transaction — `FOR UPDATE SKIP LOCKED` on PostgreSQL, so workers never wait on each other's
rows; SQLite's `BEGIN IMMEDIATE` serialises claims — and stamps them with a fresh lease. A
worker that dies leaves a lease that expires, and the row is claimed again; whoever applies a
result checks the lease is still its own, so a stale worker's result is dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from plinth.db import Database, Query
from plinth.ids import new_id

log = logging.getLogger("plinth.queue")


def backoff(attempt: int, base: float, cap: float = 300.0) -> float:
    """Seconds before attempt `attempt + 1`: exponential from `base`, capped at `cap`, with
    jitter in [delay/2, delay] so retries of many rows do not fall due together."""
    delay = min(cap, base * (2 ** (attempt - 1)))
    return delay / 2 + random.random() * delay / 2


@dataclass(frozen=True)
class Claim:
    """Rows taken under one lease."""

    lease: str
    rows: list[Any]


class Queue:
    """One table used as a queue. The table has `id`, `status`, `run_at` (epoch seconds),
    `lease` and `locked_until` columns."""

    def __init__(
        self,
        db: Database,
        table: sa.Table,
        *,
        waiting: Sequence[str],
        lease_seconds: float,
        claimed_status: str | None = None,
    ) -> None:
        self.db = db
        self.table = table
        self.waiting = tuple(waiting)
        self.lease_seconds = lease_seconds
        # Jobs show "running" while claimed; deliveries keep their status.
        self.claimed_status = claimed_status
        # Whether any row is free: one prebuilt read (on SQLite's platform file, on the event
        # loop's thread), so an idle queue's poll costs no transaction and no trip to a thread.
        t = table
        self._any_free = Query(
            sa.select(t.c.id)
            .where(
                sa.or_(*(t.c.status == s for s in self.waiting)),
                t.c.run_at <= sa.bindparam("now", type_=sa.Float),
                sa.or_(t.c.locked_until.is_(None), t.c.locked_until < sa.bindparam("now")),
            )
            .limit(1)
        )

    def free(self, now: float) -> sa.ColumnElement[bool]:
        """The rows a worker may claim at `now`."""
        t = self.table
        return sa.and_(
            t.c.status.in_(self.waiting),
            t.c.run_at <= now,
            sa.or_(t.c.locked_until.is_(None), t.c.locked_until < now),
        )

    async def claim(
        self,
        limit: int = 1,
        *,
        where: sa.ColumnElement[bool] | None = None,
        columns: Sequence[Any] | None = None,
    ) -> Claim | None:
        """Take up to `limit` free rows (oldest due first) under a fresh lease; None if none."""
        t = self.table
        now = time.time()
        query = sa.select(*(columns or [t])).where(self.free(now))
        if where is not None:
            query = query.where(where)
        query = query.order_by(t.c.run_at).limit(limit)
        lease = new_id()
        values: dict[str, Any] = {"lease": lease, "locked_until": now + self.lease_seconds}
        if self.claimed_status:
            values["status"] = self.claimed_status
        if self.db.dialect == "postgresql":
            # One statement, its own transaction: the free rows locked (skipping those another
            # worker is taking) and stamped, returned as the query asked for them.
            chosen = query.with_only_columns(t.c.id).with_for_update(skip_locked=True, of=t)
            taken = chosen.cte("taken")
            stamp = (
                t.update().where(t.c.id == taken.c.id).values(values).returning(*(columns or [t]))
            )
            async with self.db.statement() as conn:
                rows = list(await conn.execute(stamp))
            return Claim(lease, rows) if rows else None
        # An idle queue is seen with a read: no write lock (SQLite's BEGIN IMMEDIATE) per poll.
        if where is None:
            if not await self.db.fetch(self._any_free, {"now": now}):
                return None
        else:  # free rows the caller's condition leaves out must not cost a write lock a poll
            async with self.db.read() as conn:
                if (await conn.execute(query.with_only_columns(t.c.id).limit(1))).first() is None:
                    return None
        async with self.db.transaction() as conn:
            rows = list(await conn.execute(query))
            if not rows:
                return None
            await conn.execute(t.update().where(t.c.id.in_([r.id for r in rows])).values(values))
        return Claim(lease, rows)

    async def extend(self, lease: str) -> None:
        """Push the lease's expiry out by another lease period."""
        t = self.table
        async with self.db.transaction() as conn:
            await conn.execute(
                t.update()
                .where(t.c.lease == lease)
                .values(locked_until=time.time() + self.lease_seconds)
            )

    async def release(self, lease: str, ids: Sequence[str] | None = None) -> None:
        """Give rows back unattempted (a worker stopping): free at once, not after the lease."""
        t = self.table
        query = t.update().where(t.c.lease == lease)
        if ids is not None:
            query = query.where(t.c.id.in_(list(ids)))
        values: dict[str, Any] = {"lease": None, "locked_until": None}
        if self.claimed_status:
            values["status"] = self.waiting[0]
        async with self.db.transaction() as conn:
            await conn.execute(query.values(values))

    @contextlib.asynccontextmanager
    async def holding(self, lease: str) -> AsyncIterator[None]:
        """Keep `lease` alive (a heartbeat every third of the lease) while the body runs; a
        dead worker stops beating and its rows are claimed again."""
        task = asyncio.create_task(self._beat(lease))
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _beat(self, lease: str) -> None:
        while True:
            await asyncio.sleep(self.lease_seconds / 3)
            try:
                await self.extend(lease)
            except Exception:  # noqa: BLE001  (the apply decides; a missed beat risks a re-run)
                log.warning("lease heartbeat %s failed", lease)
