"""The engine: claim jobs from the database queue and run them, in worker loops. It is made of
the parts that start instances (`starts.py`), advance them (`advance.py`), move them from outside
(`controls.py`) and fire schedules (`schedules.py`).

A job is "enter node N" (run) or "resume step S with a signal". A worker claims one job under a
lease (`FOR UPDATE SKIP LOCKED` on PostgreSQL; SQLite's `BEGIN IMMEDIATE` serialises claims),
runs the step outside any transaction, then applies the step's Outcome in one transaction that
first checks the lease is still its own and the step is still in the state it started from, so
a job re-run after a crash (lease expired) or a duplicate signal never applies twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

import sqlalchemy as sa

from plinth.db import Database
from plinth.events import Effect, EventBus
from plinth.queue import Queue
from plinth.workflows import store
from plinth.workflows.advance import CHAIN, PAUSE_AFTER_STEP, Carried, Job
from plinth.workflows.controls import Controls
from plinth.workflows.ports import Services
from plinth.workflows.schedules import Schedules

log = logging.getLogger("plinth.workflows")


async def _settled() -> None:
    return None


class Engine(Controls, Schedules):
    """Runs workflow instances for one process; any number of processes share the queue."""

    def __init__(self, db: Database, events: EventBus, services: Services, lease: float = 30.0):
        self.db = db
        self.events = events
        self.services = services  # metadata, tenants, records, plugins, … (workflows/ports.py)
        self.queue = Queue(
            db,
            store.jobs,
            waiting=("queued", "running"),
            lease_seconds=lease,
            claimed_status="running",
            # Jobs of running instances only (a cancelled or failed one's jobs stay put).
            among=store.jobs.c.instance_id.in_(
                sa.select(store.instances.c.id).where(store.instances.c.status == "running")
            ),
        )
        self._tenants: dict[str, Any] = {}
        # An instance's definition is written once, when it starts; a step reads it from here
        # instead of decoding the whole JSON twice per step (instance id → definition).
        self._definitions: dict[str, dict[str, Any]] = {}
        self._ticked = 0.0  # when a worker loop last checked the schedules
        self._claiming = asyncio.Lock()
        self._hungry = 0  # this process's loops waiting for a job
        self._claimed: list[Job] = []  # claimed for a loop that has not taken it yet
        # The workflows of each app's active version, (tenant id, app) → (number, workflows),
        # and of the versions instances are pinned to, (tenant id, app, number) → the same:
        # a start reads no version. Dropped when the app is published, rolled back or deleted
        # on any node (`forget`, through the cluster relay); `_generation` keeps a read that
        # raced with such an event from caching what it read.
        self._active: dict[tuple[str, str], tuple[int, dict[str, Any]]] = {}
        self._pinned: dict[tuple[str, str, int], tuple[int, dict[str, Any]]] = {}
        self._generation = 0
        # Starts waiting to be written, per tenant: those that arrive while the tenant's
        # previous batch commits go in together, in one transaction (group commit).
        self._starting = {}  # (typed in `Starts`)
        self._writers: dict[str, asyncio.Task[None]] = {}
        # Effects of the events the engine makes (instances started and ended, tasks created),
        # run in the transaction that makes them (the audit ledger's and the webhooks'
        # `effect`, wired by the platform; `take_effect`); without any, the events are
        # published on the bus after the commit.
        self.effects: list[Effect] = []
        self.after: list[Callable[[], None]] = []  # called once such a transaction committed
        # Waits for this process's committed record writes to be dispatched (their workflow
        # starts are created off the request path): the outbox's, set by the platform.
        self.settle: Callable[[], Awaitable[None]] = _settled
        self._announcing: set[asyncio.Task[None]] = set()  # events of committed steps
        self._last_announced: asyncio.Task[None] | None = None
        self._pause_after_step = os.environ.get(PAUSE_AFTER_STEP)

    @property
    def lease(self) -> float:
        """Seconds a claimed job stays leased without a heartbeat."""
        return self.queue.lease_seconds

    @lease.setter
    def lease(self, seconds: float) -> None:
        self.queue.lease_seconds = seconds

    # -- the queue ----------------------------------------------------------------------------

    async def claim(self, limit: int = 1) -> list[Job]:
        """Take up to `limit` due jobs (or ones whose lease expired) of running instances."""
        j = store.jobs
        taken = await self.queue.claim(
            limit, columns=(j.c.id, j.c.instance_id, j.c.step_id, j.c.kind, j.c.signal)
        )
        if taken is None:
            return []
        return [
            Job(r.id, r.instance_id, r.step_id, r.kind, r.signal, taken.lease) for r in taken.rows
        ]

    async def _next(self) -> Job | None:
        """A job for one of this process's loops. One claim at a time per process (its loops
        would otherwise all see the same due job and race for it), taking a job for every
        loop waiting meanwhile: they find theirs here when the claim returns."""
        if self._claimed:
            return self._claimed.pop(0)
        self._hungry += 1
        try:
            async with self._claiming:
                if self._claimed:
                    return self._claimed.pop(0)
                jobs = await self.claim(self._hungry)
        finally:
            self._hungry -= 1
        if not jobs:
            return None
        self._claimed += jobs[1:]
        return jobs[0]

    async def run_one(self) -> bool:
        """Claim one job and advance its instance until it waits, ends or branches; False when
        none was due. Each step still commits on its own (a crash loses at most the step under
        way); the step that follows is queued already claimed by this lease and run at once,
        from the state the commit wrote, without a claim, a read or a poll in between."""
        job = await self._next()
        if job is None:
            return False
        carried: Carried | None = None
        async with self.queue.holding(job.lease):
            for left in range(CHAIN, 0, -1):
                try:
                    following = await self.process(job, carried, chain=left > 1)
                except Exception:  # the lease expires and another attempt picks the job up again
                    log.exception("workflow job %s failed in the engine", job.id)
                    break
                if following is None:
                    break
                job, carried = following
        return True

    async def drain(self, limit: int = 10_000) -> int:
        """Process due jobs until none is left (tests and the embedded worker's catch-up)."""
        await self.settle()
        done = 0
        while done < limit and await self.run_one():
            done += 1
        await self.announced()
        return done

    # -- the worker loop ----------------------------------------------------------------------

    async def work(self, stop: asyncio.Event, poll: float = 0.2) -> None:
        """Process jobs until `stop` is set; an idle worker polls less often, up to `poll` s."""
        idle = 0.005
        while not stop.is_set():
            # Schedules are checked once a second per process, not per concurrent loop.
            if time.time() - self._ticked >= 1.0:
                self._ticked = time.time()
                try:
                    await self.tick_schedules()
                except Exception:  # a schedule failure must not stop the job loop
                    log.exception("schedule tick failed")
            try:
                busy = await self.run_one()
            except Exception:  # the database went away for a moment: keep the worker alive
                log.exception("workflow worker iteration failed")
                busy = False
            if busy:
                idle = 0.005  # the next step of the same instance is usually due right now
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), idle)
            idle = min(poll, idle * 2)
        await self.announced()
        left, self._claimed = self._claimed, []
        for job in left:  # claimed for a loop that stopped first: free at once for others
            with contextlib.suppress(Exception):
                await self.queue.release(job.lease, [job.id])
