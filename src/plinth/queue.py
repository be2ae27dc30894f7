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


def _free(
    table: sa.Table,
    waiting: tuple[str, ...],
    among: sa.ColumnElement[bool] | None,
    now: Any,
    due: Any,
) -> sa.ColumnElement[bool]:
    """The rows a worker may claim at `now`, due by `due` (values or bound parameters)."""
    t = table
    free = sa.and_(
        sa.or_(*(t.c.status == s for s in waiting)),
        t.c.run_at <= due,
        sa.or_(t.c.locked_until.is_(None), t.c.locked_until < now),
    )
    return free if among is None else sa.and_(free, among)


# The prebuilt "is any row free" read of each queue's shape, shared by the queues of that shape
# (the outbox makes one per source database it sweeps).
_FREE: dict[tuple[sa.Table, tuple[str, ...], sa.ColumnElement[bool] | None], Query] = {}


def _any_free(
    table: sa.Table, waiting: tuple[str, ...], among: sa.ColumnElement[bool] | None
) -> Query:
    found = _FREE.get((table, waiting, among))
    if found is None:
        now = sa.bindparam("now", type_=sa.Float)
        due = sa.bindparam("due", type_=sa.Float)
        where = _free(table, waiting, among, now, due)
        found = _FREE[table, waiting, among] = Query(sa.select(table.c.id).where(where).limit(1))
    return found


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
        among: sa.ColumnElement[bool] | None = None,
    ) -> None:
        """`among`: a condition every row claimed must also meet (the workflow engine's: its
        instance is running)."""
        self.db = db
        self.table = table
        self.waiting = tuple(waiting)
        self.lease_seconds = lease_seconds
        # Jobs show "running" while claimed; deliveries keep their status.
        self.claimed_status = claimed_status
        self.among = among
        self._any_free = _any_free(table, self.waiting, among)
        self._idle = True  # the last claim found nothing

    def free(self, now: float, due: float | None = None) -> sa.ColumnElement[bool]:
        """The rows a worker may claim at `now` (due by `due`, else by `now`)."""
        return _free(self.table, self.waiting, self.among, now, now if due is None else due)

    async def claim(
        self, limit: int = 1, *, columns: Sequence[Any] | None = None, grace: float = 0.0
    ) -> Claim | None:
        """Take up to `limit` free rows (oldest due first) under a fresh lease; None if none.
        `grace`: only rows due at least that many seconds ago."""
        t = self.table
        now = time.time()
        due = now - grace
        # A queue found empty last time is looked at with one prebuilt read before it is
        # claimed from: an idle queue's poll costs no write, no lock and no SQL compiled (on
        # SQLite's platform file not even a trip to a thread). A busy one claims at once.
        if self._idle and not await self.db.fetch(self._any_free, {"now": now, "due": due}):
            return None
        query = sa.select(*(columns or [t])).where(self.free(now, due))
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
        else:
            async with self.db.transaction() as conn:
                rows = list(await conn.execute(query))
                if rows:
                    await conn.execute(
                        t.update().where(t.c.id.in_([r.id for r in rows])).values(values)
                    )
        self._idle = not rows
        return Claim(lease, rows) if rows else None

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
