"""The transactional outbox: the side effects of a change are written with the change.

A record write inserts one outbox row per record event (`record.created`, …) in its own
transaction, in the database that holds the record (the tenant's SQLite file, or its
PostgreSQL database). Nothing else happens before commit. After commit the writer dispatches
the rows at once; whatever is left (the process died, the platform database was away) a worker
finds in the table and dispatches later.

Dispatching runs each registered effect — the audit entry, webhook deliveries, workflow starts
— in one transaction of the platform database, which also records the rows' ids in
`outbox_dispatched`. That id is the idempotency key: a row dispatched twice (a crash between
the two commits, two workers racing) finds its id taken and does nothing the second time, so
every effect happens exactly once. The source rows are then deleted in batches: by a later
write's transaction to the same database (one more statement, no round trip of its own), or by
the worker's sweep.

When every effect can also say what it writes as prebuilt statements (`Plan`), a dispatch is
those statements in one `Database.write` (on SQLite one trip to a connection's thread, on
PostgreSQL the driver's own round trips) instead of a transaction that reads and writes
statement by statement through SQLAlchemy. Its
reads happen before, outside the transaction, so the writes are guesses the database checks:
the ids go in without `ON CONFLICT` (one dispatched before fails the write), the ledger's
entries carry the chain position read before (an append meanwhile fails it on the chain's
unique position). A failed guess rolls everything back, and the round runs the transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import os
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from plinth.db import Database, Query, Steps, Write, platform_metadata
from plinth.events import Event, EventBus, by_tenant
from plinth.ids import new_id
from plinth.queue import Queue

log = logging.getLogger("plinth.outbox")

# Rows older than this are the worker's; younger ones are still being dispatched by their
# writer (racing it would be harmless, only wasted work).
GRACE_SECONDS = 5.0
# How long after its last write here a file stays on the worker's rounds: longer than a write
# can wait for a pooled connection (60 s) and the file's lock (30 s) before it commits.
SETTLE_SECONDS = 120.0
# Dispatched rows are deleted by a later write to their database once this many wait.
DELETE_BATCH = 16
# How long the dispatcher lets committed writes gather before it dispatches them together.
LINGER_SECONDS = 0.01
ROUND_WRITES = 256  # committed writes dispatched in one round (one platform transaction)
# Test-only switches: touch the file they name and hang, after a record's commit (before its
# dispatch) or after its dispatch (before its rows are deleted); the crash test kills there.
PAUSE_AFTER_COMMIT = "PLINTH_TEST_PAUSE_AFTER_COMMIT"
PAUSE_AFTER_DISPATCH = "PLINTH_TEST_PAUSE_AFTER_DISPATCH"

# The outbox lives beside the records, so it is not a platform table: each database that holds
# records gets it on first use.
source_metadata = sa.MetaData()
entries = sa.Table(
    "plinth_outbox",
    source_metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("tenant_id", sa.String(32), nullable=False),
    sa.Column("topic", sa.String(64), nullable=False),
    sa.Column("data", sa.Text, nullable=False),  # the event's data, JSON
    sa.Column("status", sa.String(8), nullable=False),  # pending (dispatched rows are deleted)
    sa.Column("run_at", sa.Float, nullable=False),
    sa.Column("lease", sa.String(32), nullable=True),
    sa.Column("locked_until", sa.Float, nullable=True),
)

dispatched = sa.Table(
    "outbox_dispatched",
    platform_metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("at", sa.Float, nullable=False, index=True),
)

_COLUMNS = [entries.c[n] for n in ("id", "tenant_id", "topic", "data", "status", "run_at")]
# Whether anything is left in a source's outbox.
ANY_ROW = Query(sa.select(entries.c.id).limit(1))
# The same writes as prebuilt statements for `Database.write` (`Outbox.writes`).
_INSERT = Write(entries.insert(), [c.name for c in _COLUMNS])
_DELETE = Write(entries.delete().where(entries.c.id == sa.bindparam("spent")))
# A prebuilt dispatch's keys: no ON CONFLICT, so a row dispatched before fails its write.
_KEYS = Write(dispatched.insert(), ["id", "at"])

# One row per running worker, beating each round and deleted on a clean stop: a row left
# behind marks a process that stopped uncleanly, whose tenants' outboxes may hold rows nobody
# else has open, so the next worker to see it sweeps every source once. Otherwise a worker
# sweeps only the sources its process opened: start-up does nothing per tenant. A row is left
# behind when its beats stop: a starting worker watches the rows it found for a few of its own
# polls (the other workers of `plinth serve --workers N` beat on), and any worker reaps a row
# not seen for `STALE_SECONDS`.
runs = sa.Table(
    "outbox_runs",
    platform_metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("seen_at", sa.Float, nullable=False),
)
# A run not seen for this long is dead (a worker beats every poll, 2 s by default).
STALE_SECONDS = 30.0
# How often a worker sweeps every source before it forgets idempotency keys a week old.
TIDY_SECONDS = 3600.0
KEEP_SECONDS = 7 * 86400.0  # how long an idempotency key outlives its row
PRUNE_BATCH = 10_000  # idempotency keys forgotten per transaction


class Effect(Protocol):
    """A side effect of changes, written in the dispatching transaction of the platform
    database; returns the events to publish once that commits."""

    async def __call__(
        self, conn: AsyncConnection, tenant_id: str, events: Sequence[Event]
    ) -> list[Event]: ...


class Plan(Protocol):
    """An effect as prebuilt writes for a dispatch in one trip (`Outbox.plans`): its writes
    for a tenant's events, from reads made now, outside any transaction; None when it must
    read inside the dispatching transaction (the round then runs the effects there). Writes
    built on a read that no longer holds at commit must fail on a constraint."""

    async def __call__(self, tenant_id: str, events: Sequence[Event]) -> Steps | None: ...


# Built once: `json.dumps` with arguments builds an encoder per call (~2.5 µs each).
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=str)


def _dumps(data: object) -> str:
    return _ENCODER.encode(data)


async def crash_pause(marker: str | None) -> None:
    """A crash test's switch: touch the file `marker` names and hang (None: go on at once)."""
    if marker:  # only ever set by a crash test
        await asyncio.to_thread(Path(marker).touch)
        await asyncio.Event().wait()


class Outbox:
    """Writes outbox rows in a change's transaction and dispatches them to the effects."""

    def __init__(self, db: Database, events: EventBus) -> None:
        self.db = db  # the platform database: effects and idempotency keys
        self.events = events
        self.effects: list[Effect] = []
        # The same effects as prebuilt writes, in the same order: a dispatch uses them when
        # each effect has its plan (see the module's docstring).
        self.plans: list[Plan] = []
        self._pauses = (  # the crash test's switches, read once
            os.environ.get(PAUSE_AFTER_COMMIT),
            os.environ.get(PAUSE_AFTER_DISPATCH),
        )
        self.prebuilt = 0  # dispatches made as prebuilt writes (the others: transactions)
        # Called after a dispatch commits (a webhook worker wakes up for new deliveries).
        self.after: list[Callable[[], None]] = []
        # By database URL (a tenant's file may be closed and opened again meanwhile).
        self._prepared: set[str] = set()
        self._spent: dict[str, list[str]] = {}  # dispatched rows still in their database
        # SQLite files this process wrote rows to, and when it last did: the worker sweeps
        # these (and PostgreSQL's few databases) only, until their outbox is found empty
        # `SETTLE_SECONDS` after that moment (a write stamps it before its commit, which may
        # wait for the pool and the file's lock). An idle tenant file costs no write
        # transaction every round (a node keeps hundreds open); rows of a process that died
        # are found by the sweep of everything its stale run marker starts.
        self._written: dict[str, float] = {}
        self.swept = 0  # sources swept by the worker so far
        # Rows committed and handed to the dispatcher, not dispatched yet (`committed`).
        self._queued: list[tuple[Database, list[tuple[str, Event]]]] = []
        self._handed = 0  # rows handed over so far, and those whose dispatch has ended
        self._ended = 0
        self._wake: asyncio.Event | None = None
        self._progress: asyncio.Condition | None = None
        self._dispatcher: asyncio.Task[None] | None = None
        self.rounds = 0  # the worker's completed sweeps

    # -- writing (in the change's transaction) -------------------------------------------------

    async def prepare(self, db: Database) -> None:
        """Create the outbox table in `db` if this process has not seen it there yet."""
        if db.url in self._prepared:
            return
        try:
            async with db.transaction() as conn:
                await conn.run_sync(source_metadata.create_all, checkfirst=True)
        except DBAPIError:  # another process created it at the same moment
            async with db.read() as conn:
                if not await conn.run_sync(lambda c: sa.inspect(c).has_table(entries.name)):
                    raise
        self._prepared.add(db.url)

    async def write(
        self, conn: AsyncConnection, db: Database, events: Iterable[Event]
    ) -> list[tuple[str, Event]]:
        """Insert one row per event in the caller's transaction on `db` (one statement), and
        delete a batch of rows dispatched earlier. Returns each row's id with its event as the
        effects will see it: the data as stored (JSON), so a row dispatched now or after a
        crash has the same effects."""
        rows, written = self._rows(events)
        if rows:
            self._written[db.url] = time.time()
            await conn.execute(entries.insert(), rows)
        spent = self._spent_batch(db)
        if spent:
            await conn.execute(entries.delete().where(entries.c.id.in_(spent)))
        return written

    def writes(
        self, db: Database, events: Iterable[Event]
    ) -> tuple[list[tuple[Write, list[dict[str, Any]]]], list[tuple[str, Event]]]:
        """`write` as prebuilt statements for the change's own `Database.write` on `db`: one
        row per event and a batch of rows dispatched earlier to delete. Returns them with what
        `write` returns."""
        rows, written = self._rows(events)
        if rows:
            self._written[db.url] = time.time()
        steps = [(_INSERT, rows)]
        spent = self._spent_batch(db)
        if spent:
            steps.append((_DELETE, [{"spent": i} for i in spent]))
        return steps, written

    def statement(self, change: Any) -> Any:
        """PostgreSQL: one statement writing `change` (a data-modifying common table
        expression: the record) and one outbox row, bound by `values`: atomic without an
        explicit transaction (one round trip instead of BEGIN, the statements and COMMIT).
        Built once per change (the caller keeps it); in the platform database the row leaves
        with its dispatch, elsewhere the worker's sweep deletes it."""
        return (
            entries.insert()
            .values({c.name: sa.bindparam(f"o_{c.name}", type_=c.type) for c in _COLUMNS})
            .add_cte(change)
        )

    def values(self, events: Iterable[Event]) -> tuple[dict[str, Any], list[tuple[str, Event]]]:
        """The parameters of `statement` for one event, and its row as `write` returns it."""
        rows, written = self._rows(events)
        [row] = rows
        return {f"o_{k}": v for k, v in row.items()}, written

    def _spent_batch(self, db: Database) -> list[str]:
        spent = self._spent.get(db.url)
        if spent and len(spent) >= DELETE_BATCH:
            del self._spent[db.url]  # a rollback leaves them to the sweep
            return spent
        return []

    @staticmethod
    def _rows(events: Iterable[Event]) -> tuple[list[dict[str, Any]], list[tuple[str, Event]]]:
        now = time.time()
        rows: list[dict[str, Any]] = []
        written: list[tuple[str, Event]] = []
        for e in events:
            data = _dumps(e.data)
            row_id = new_id()
            rows.append(
                {
                    "id": row_id,
                    "tenant_id": e.tenant_id,
                    "topic": e.topic,
                    "data": data,
                    "status": "pending",
                    "run_at": now,
                }
            )
            written.append((row_id, Event(e.topic, e.tenant_id, json.loads(data))))
        return rows, written

    # -- dispatching -------------------------------------------------------------------------

    async def committed(self, source: Database, written: list[tuple[str, Event]]) -> None:
        """Hand what a change wrote to this process's dispatcher, right after its commit,
        without waiting for it: the rows are durable already (a crash before their dispatch
        leaves them to the worker's sweep). The dispatcher takes whatever has been handed over
        since its last round in one platform transaction (a group commit: one audit chain
        step, one checkpoint, one transaction for many concurrent writes)."""
        if not written:
            return
        after_commit, after_dispatch = self._pauses
        await crash_pause(after_commit)
        mark = self.hand_off(source, written)
        if after_dispatch:  # only ever set by the crash test
            await self._until(mark)
            await crash_pause(after_dispatch)

    def hand_off(self, source: Database, written: list[tuple[str, Event]]) -> int:
        """Queue committed rows for the dispatcher; returns the mark `settled` waits for."""
        if source.is_sqlite:
            self._written[source.url] = time.time()
        self._queued.append((source, written))
        self._handed += 1
        loop = asyncio.get_running_loop()
        task = self._dispatcher
        if task is None or task.done() or task.get_loop() is not loop:
            # Rows handed to a dispatcher that is gone (a failed task, an old event loop) are
            # the worker's now: only those queued here are waited for.
            self._ended = self._handed - len(self._queued)
            self._wake = asyncio.Event()
            self._progress = asyncio.Condition()
            self._dispatcher = loop.create_task(self._dispatch_forever())
        assert self._wake is not None
        self._wake.set()
        return self._handed

    async def settled(self) -> None:
        """Wait until every change committed in this process so far has been dispatched (or
        its dispatch failed, leaving it to the worker): readers of the effects (the audit
        log, deliveries, workflow instances) see this process's own writes."""
        await self._until(self._handed)

    async def _until(self, mark: int) -> None:
        progress = self._progress
        if self._ended >= mark or progress is None:
            return
        async with progress:
            await progress.wait_for(lambda: self._ended >= mark or self._dispatcher is None)

    async def _dispatch_forever(self) -> None:
        assert self._wake is not None and self._progress is not None
        wake, progress = self._wake, self._progress
        while True:
            await wake.wait()
            # Let the writes committing meanwhile join this round: the effects wait a few
            # milliseconds (off every request's path), the ledger takes one step for many.
            await asyncio.sleep(LINGER_SECONDS)
            wake.clear()
            # At most ROUND_WRITES per round (a burst is dispatched over several rounds, in
            # statements of bounded size); the rest go in the next round at once.
            batch, self._queued = self._queued[:ROUND_WRITES], self._queued[ROUND_WRITES:]
            if self._queued:
                wake.set()
            if not batch:
                continue
            try:
                await self._dispatch(batch)
            except Exception:  # noqa: BLE001  (the changes are committed; effects follow)
                log.exception("dispatching %d writes failed; the worker retries", len(batch))
            self._ended += len(batch)
            async with progress:
                progress.notify_all()

    async def close(self) -> None:
        """Dispatch what is still handed over, then stop the dispatcher (a clean stop)."""
        task = self._dispatcher
        if task is None:
            return
        await self.settled()
        self._dispatcher = None
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        if self._progress is not None:
            async with self._progress:
                self._progress.notify_all()

    async def dispatch(self, source: Database, rows: Sequence[tuple[str, Event]]) -> int:
        """Run the effects of rows not dispatched before, in one platform transaction; how
        many were new."""
        return await self._dispatch([(source, rows)])

    async def _dispatch(
        self, batches: Sequence[tuple[Database, Sequence[tuple[str, Event]]]]
    ) -> int:
        rows = [row for _, some in batches for row in some]
        if not rows:
            return 0
        after: list[Event] = []
        if await self._dispatch_prebuilt(batches, rows):
            done = len(rows)
        else:
            done, after = await self._dispatch_transaction(batches, rows)
        for hook in self.after:
            hook()
        for event in after:
            await self.events.publish(event)
        for source, some in batches:  # deleted later, in batches
            if not self._local(source):
                self._spent.setdefault(source.url, []).extend(i for i, _ in some)
        return done

    async def _dispatch_prebuilt(
        self,
        batches: Sequence[tuple[Database, Sequence[tuple[str, Event]]]],
        rows: list[tuple[str, Event]],
    ) -> bool:
        """The effects of rows none of which was dispatched before, as the effects' prebuilt
        writes in one `Database.write`; False if that cannot be done or its guesses failed
        (nothing was written: the transaction runs them)."""
        if len(self.plans) != len(self.effects) or not self.plans:
            return False
        now = time.time()
        steps: Steps = [(_KEYS, [{"id": i, "at": now} for i, _ in rows])]
        for tenant_id, events in by_tenant(e for _, e in rows).items():
            for plan in self.plans:
                found = await plan(tenant_id, events)
                if found is None:
                    return False
                steps += found
        here = [i for source, some in batches if self._local(source) for i, _ in some]
        if here:
            steps.append((_DELETE, [{"spent": i} for i in here]))
        try:
            await self.db.write(steps)
        except IntegrityError:  # a row dispatched before, a ledger appended to meanwhile
            return False
        self.prebuilt += 1
        return True

    async def _dispatch_transaction(
        self,
        batches: Sequence[tuple[Database, Sequence[tuple[str, Event]]]],
        rows: list[tuple[str, Event]],
    ) -> tuple[int, list[Event]]:
        """The effects of rows not dispatched before, in one platform transaction through
        SQLAlchemy: how many were new, and the events to publish."""
        now = time.time()
        after: list[Event] = []
        async with self.db.transaction() as conn:
            fresh = await self._claim_keys(conn, [i for i, _ in rows], now)
            todo = [e for i, e in rows if i in fresh]
            for tenant_id, events in by_tenant(todo).items():
                for effect in self.effects:
                    after += await effect(conn, tenant_id, events)
            # Rows in the platform database itself (PostgreSQL's default region) leave with
            # their dispatch, in its transaction; others' are deleted later, in batches.
            here = [i for source, some in batches if self._local(source) for i, _ in some]
            if here:
                await conn.execute(entries.delete().where(entries.c.id.in_(here)))
        return len(todo), after

    def _local(self, source: Database) -> bool:
        """Whether `source` is the platform database itself, with an outbox table."""
        return source.url == self.db.url and source.url in self._prepared

    async def _claim_keys(self, conn: AsyncConnection, ids: list[str], now: float) -> set[str]:
        """Record the ids as dispatched; those already there were (their effects exist)."""
        insert = pg_insert if self.db.dialect == "postgresql" else sqlite_insert
        stmt = (
            insert(dispatched)
            .values([{"id": i, "at": now} for i in ids])
            .on_conflict_do_nothing(index_elements=["id"])
            .returning(dispatched.c.id)
        )
        return {r.id for r in await conn.execute(stmt)}

    async def flush(self, source: Database) -> None:
        """Delete the rows of `source` dispatched so far."""
        spent = self._spent.pop(source.url, None)
        if spent:
            async with source.transaction() as conn:
                await conn.execute(entries.delete().where(entries.c.id.in_(spent)))

    async def scrub(
        self, source: Database, tenant_id: str, scrub: Callable[[Any], tuple[Any, bool]]
    ) -> int:
        """Erasure: drop dispatched rows now, and scrub the values from any still pending (their
        effects still happen, with the values erased). How many rows changed."""
        await self.prepare(source)
        await self.flush(source)
        changed = 0
        async with source.transaction() as conn:
            rows = await conn.execute(
                sa.select(entries.c.id, entries.c.data).where(entries.c.tenant_id == tenant_id)
            )
            for row in rows.all():
                data, hit = scrub(json.loads(row.data))
                if hit:
                    await conn.execute(
                        entries.update().where(entries.c.id == row.id).values(data=_dumps(data))
                    )
                    changed += 1
        return changed

    # -- the worker --------------------------------------------------------------------------

    async def sweep(self, source: Database, *, grace: float = GRACE_SECONDS) -> int:
        """Dispatch rows a writer left behind in `source`; how many had effects to run."""
        await self.prepare(source)
        await self.flush(source)
        queue = Queue(source, entries, waiting=("pending",), lease_seconds=60.0)
        done = 0
        while True:
            taken = await queue.claim(100, grace=grace)
            if taken is None:
                break
            rows = [(r.id, Event(r.topic, r.tenant_id, json.loads(r.data))) for r in taken.rows]
            async with queue.holding(taken.lease):
                done += await self.dispatch(source, rows)
            await self.flush(source)
        return done

    async def work(
        self,
        stop: asyncio.Event,
        sources: Callable[[bool], AsyncIterator[Database]],
        poll: float = 2.0,
    ) -> None:
        """Sweep the source databases until `stop` is set: those this process opened, and
        every one after an unclean stop (of this node before it started, or of another), and
        every hour before old idempotency keys are forgotten: a row a clean stop left behind,
        dispatched but not yet deleted, must leave its source before its key may go, or a
        later sweep would run its effects again."""
        run = new_id()
        found = await self._begin(run)  # other runs' markers: stopped uncleanly, or running
        watch_until = time.monotonic() + 2 * poll + 1  # each running one beats by then
        died = asyncio.Event()  # the beat reaped a run gone stale: its sources are owed
        beating = asyncio.create_task(self._beating(run, stop, poll, died))
        everything, first, tidied = False, True, time.monotonic()
        left: list[str] = []
        try:
            while not stop.is_set():
                try:
                    # A worker tidies an hour after it starts, and hourly after that; one
                    # whose keys are already overdue tidies at once, or a node restarted more
                    # often than hourly (a deploy, an autoscaler) would never forget a key.
                    # Asked in the round (a database away at start is retried, not the
                    # worker's end while its heartbeat beats on).
                    if first and await self._overdue():
                        tidied = -math.inf
                    if died.is_set():
                        died.clear()
                        everything = True
                    if found and time.monotonic() >= watch_until:
                        left, found = await self._silent(found), {}
                        everything |= bool(left)
                    tidy = time.monotonic() - tidied > TIDY_SECONDS
                    everything |= tidy
                    complete, failed = True, False
                    async for source in sources(everything):
                        if stop.is_set():  # a SIGTERM is not kept waiting by a thousand files
                            complete = False
                            break
                        if not (everything or self._owed(source)):
                            continue
                        # No grace at start: nothing is in flight in this process yet.
                        began = time.time()
                        try:
                            await self.sweep(source, grace=0.0 if first else GRACE_SECONDS)
                        except Exception:  # noqa: BLE001 - one bad file must not stop the rest
                            log.exception("outbox sweep of a source failed")
                            failed = True
                            continue
                        self.swept += 1
                        if source.url in self._written and await self._settled(source, began):
                            del self._written[source.url]
                    complete &= not stop.is_set()  # `sources` may stop early for a stop too
                    if complete and everything:
                        everything = False
                        if not failed:  # else their markers stay: the next start tries again
                            await self._forget(left)  # what they left is dispatched
                            left = []
                            if tidy:
                                await self._prune()
                                tidied = time.monotonic()
                    first = False
                    self.rounds += 1
                except Exception:  # noqa: BLE001  (a database away for a moment: sweep again)
                    log.exception("outbox sweep failed")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), poll)
        finally:
            beating.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beating
        if not everything:  # a sweep of everything still owed stays owed: keep the marker
            with contextlib.suppress(Exception):
                await self._forget([run])

    async def _beating(
        self, run: str, stop: asyncio.Event, poll: float, died: asyncio.Event
    ) -> None:
        """Beat every `poll` seconds whatever the rounds do: a round sweeping thousands of
        files takes longer than a poll, and a worker silent that long looks dead to others."""
        while not stop.is_set():
            try:
                if await self._beat(run):
                    died.set()
            except Exception:  # noqa: BLE001  (the platform database away: beat again)
                log.exception("outbox beat failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), poll)

    async def _settled(self, source: Database, began: float) -> bool:
        """Whether `source` no longer needs this process's sweeps: its last write here is
        `SETTLE_SECONDS` old (committed or given up) and nothing is left in its outbox (a
        row whose dispatch failed waits out its lease there, to be swept again)."""
        if self._written[source.url] > began - SETTLE_SECONDS:
            return False
        return not await source.fetch(ANY_ROW)

    def _owed(self, source: Database) -> bool:
        """Whether the worker's round sweeps `source` (see `_written`)."""
        return not source.is_sqlite or source.url in self._written or source.url in self._spent

    async def _begin(self, run: str) -> dict[str, float]:
        """Mark this run as started; the runs already marked, with when each was last seen."""
        async with self.db.transaction() as conn:
            found = {r.id: r.seen_at for r in await conn.execute(sa.select(runs))}
            await conn.execute(runs.insert().values(id=run, seen_at=time.time()))
        return found

    async def _silent(self, found: dict[str, float]) -> list[str]:
        """Those of `found` not seen since: their processes stopped without a clean stop (a
        run that stopped cleanly took its marker away)."""
        async with self.db.transaction() as conn:
            rows = await conn.execute(sa.select(runs).where(runs.c.id.in_(list(found))))
            return [r.id for r in rows if r.seen_at <= found[r.id]]

    async def _beat(self, run: str) -> bool:
        """Mark this run alive; whether another one died since (its marker is taken here)."""
        now = time.time()
        async with self.db.transaction() as conn:
            seen = await conn.execute(runs.update().where(runs.c.id == run).values(seen_at=now))
            if seen.rowcount == 0:  # forgotten by a worker that swept for it: mark again
                await conn.execute(runs.insert().values(id=run, seen_at=now))
            dead = await conn.execute(
                runs.delete()
                .where(runs.c.id != run, runs.c.seen_at < now - STALE_SECONDS)
                .returning(runs.c.id)
            )
            return bool(dead.all())

    async def _forget(self, ids: Sequence[str]) -> None:
        if ids:
            async with self.db.transaction() as conn:
                await conn.execute(runs.delete().where(runs.c.id.in_(ids)))

    async def _overdue(self) -> bool:
        """Whether a key has been kept `TIDY_SECONDS` beyond `KEEP_SECONDS`: an hourly tidy
        would have forgotten it."""
        async with self.db.read() as conn:
            oldest = (await conn.execute(sa.select(sa.func.min(dispatched.c.at)))).scalar()
        return oldest is not None and oldest < time.time() - KEEP_SECONDS - TIDY_SECONDS

    async def _prune(self) -> None:
        """Forget idempotency keys long after their rows left every source, `PRUNE_BATCH` a
        transaction: a node's first tidy may find millions (on SQLite, a million in one
        transaction held the platform file's write lock for 6 s, and other writers give up
        after 30)."""
        cutoff = time.time() - KEEP_SECONDS
        old = sa.select(dispatched.c.id).where(dispatched.c.at < cutoff).limit(PRUNE_BATCH)
        while True:
            async with self.db.transaction() as conn:
                gone = await conn.execute(dispatched.delete().where(dispatched.c.id.in_(old)))
            if gone.rowcount < PRUNE_BATCH:
                return
            await asyncio.sleep(0)  # other writers take the lock between batches
