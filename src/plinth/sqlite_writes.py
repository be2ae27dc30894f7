"""SQLite writes of `Database.write`, run in a connection's thread: the transactions queued
for a file meanwhile (`Queued`) sent in one trip (`send`), the small ones committed together
(`_run_group`), each with the outcome it would have had alone, rolled back if its caller gave
up before it committed. The loop's side (the queue, the trips, the writer turn) is
`Database._make_trips`; reads of a file on the loop's own thread are `sqlite_reads`."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import Any, TypeVar

T = TypeVar("T")


class Failed(Exception):
    """A statement of a driver-side transaction failed (rolled back): which, and why."""

    def __init__(self, sql: str, error: sqlite3.Error) -> None:
        super().__init__(sql)
        self.sql, self.error = sql, error


async def _until_over(job: Awaitable[T], abandon: Callable[[], None]) -> T:
    """Await transactions running in a connection's thread. Cancelled (the process
    stopping), the caller still waits until the thread is done with them (the writer turn and
    connection are not handed on while it runs) and then sees the cancellation; `abandon`,
    called then, makes the thread roll back those not committed yet."""
    task = asyncio.ensure_future(job)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        abandon()
        while not task.done():
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait([task])
        if not task.cancelled():
            task.exception()  # rolled back or failed: its caller only learns it was cancelled
        raise


class _Abandoned(Exception):
    """A driver-side transaction whose caller stopped waiting before COMMIT (rolled back)."""


class Queued:
    """A transaction of `Database.write` waiting for its trip to an SQLite connection."""

    __slots__ = ("abandoned", "outcome", "work")

    def __init__(self, work: list[tuple[str, list[list[Any]]]]) -> None:
        self.work = work
        # Its caller stopped waiting: roll back, if not done. Set on the loop's thread and read
        # in the connection's between statements; a plain attribute is enough for that (its
        # store is seen by the next read under the GIL), and a `threading.Event` (a lock and a
        # condition built per write) was ~1.5 % of a create's time on the loop.
        self.abandoned = False
        self.outcome: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def abandon(self) -> None:
        """Its caller gives up: the thread rolls it back unless it committed already."""
        self.abandoned = True


async def send(jobs: Sequence[Queued], raw: Any) -> list[BaseException | None]:
    """One trip to the thread of `raw`, the pool's aiosqlite connection, with `jobs`; each
    job's outcome is settled here (see `settle`), also when the trip is cancelled (the
    process stopping) after some of its transactions committed."""
    driver = raw.driver_connection
    # aiosqlite's own call into its thread (as `sqlite_files` uses its `_connect`): the
    # sqlite3 connection is only touched there.
    trip = asyncio.ensure_future(driver._execute(_run_transactions, driver._conn, jobs))
    try:
        outcomes = await _until_over(trip, partial(_abandon, jobs))
    except asyncio.CancelledError:
        if not trip.cancelled() and trip.exception() is None:
            for job, outcome in zip(jobs, trip.result(), strict=True):
                settle(job.outcome, outcome)
        raise
    for job, outcome in zip(jobs, outcomes, strict=True):
        settle(job.outcome, outcome)
    return outcomes


def settle(outcome: asyncio.Future[None], ended: BaseException | None) -> None:
    """A job's future from what its transaction ended with: committed (None), given up
    (cancelled: its caller left, or the process is stopping) or failed."""
    if outcome.done():
        return
    if ended is None:
        outcome.set_result(None)
    elif isinstance(ended, _Abandoned):
        outcome.cancel()
    else:
        outcome.set_exception(ended)


def _abandon(jobs: Sequence[Queued]) -> None:
    for job in jobs:
        job.abandon()


# Jobs of a trip with at most this many parameter sets each (a create has two or three, a
# dispatch round a few per write it dispatches) share one transaction (`_run_group`); a job
# with more (an import) runs alone, so nothing small waits for it to commit.
GROUP_ROWS = 256


def _run_transactions(
    conn: sqlite3.Connection, jobs: Sequence[Queued]
) -> list[BaseException | None]:
    """In the connection's thread: the jobs in turn, each run of small ones together
    (`_run_group`), a large one alone (`_run_transaction`); what each ended with (None:
    committed). Each caller hears as soon as its jobs are committed (or have failed), not
    after those behind them in the trip.

    One that cannot begin because another process held the file's lock through the busy
    timeout fails the jobs after it too: all were queued before the trip, so each has waited
    that long already (as a writer waiting for the turn that long fails), and trying each
    would keep every caller of the trip waiting a busy timeout per job."""
    outcomes: list[BaseException | None] = []
    locked: BaseException | None = None
    i = 0
    while i < len(jobs):
        if locked is not None:
            outcomes.append(locked)
            i += 1
            continue
        run = [jobs[i]]
        if _small(jobs[i]):
            while i + len(run) < len(jobs) and _small(jobs[i + len(run)]):
                run.append(jobs[i + len(run)])
        ended = _run_group(conn, run)
        for outcome in ended:
            if outcome is not None and _busy_at_begin(outcome):
                locked = outcome
        outcomes += ended
        i += len(run)
        if i < len(jobs) and locked is None:
            # Their callers hear now, not after the transactions behind them in the trip (a
            # create would wait for a bulk write). The last ones' outcomes come back with
            # the trip, so a trip of one run costs no extra wake of the loop.
            loop = run[0].outcome.get_loop()
            loop.call_soon_threadsafe(_settle_run, run, ended)
    return outcomes


def _small(job: Queued) -> bool:
    return sum(len(args) for _, args in job.work) <= GROUP_ROWS


def _settle_run(jobs: Sequence[Queued], ended: Sequence[BaseException | None]) -> None:
    for job, outcome in zip(jobs, ended, strict=True):
        settle(job.outcome, outcome)


def _run_group(conn: sqlite3.Connection, jobs: Sequence[Queued]) -> list[BaseException | None]:
    """In the connection's thread: the jobs in one write transaction, as if each had been
    its own in turn. A trip's jobs share it because each BEGIN IMMEDIATE … COMMIT is a few
    more statements in this thread, and each statement hands the GIL back and forth with the
    event loop's thread: under a load of creates, one transaction per trip took the loop's
    CPU per create from ~0.55-0.75 to ~0.45 ms (bench/README.md). Should any statement
    fail, or a caller give up before the COMMIT, nothing of the group stays and each job
    runs again alone (`_run_transaction`), so each has the outcome it would have had alone:
    a duplicate key fails its own create, the others commit; one given up is rolled back."""
    if len(jobs) > 1 and not any(job.abandoned for job in jobs):
        sql = "BEGIN IMMEDIATE"
        try:
            conn.execute(sql)
            for job in jobs:
                for sql, args in job.work:
                    if len(args) == 1:
                        conn.execute(sql, args[0])
                    else:
                        conn.executemany(sql, args)
            if not any(job.abandoned for job in jobs):
                sql = "COMMIT"
                conn.execute(sql)
                return [None] * len(jobs)
        except Exception as exc:  # noqa: BLE001 - each job's own outcome is found alone below
            # Not only the driver's errors: a value it cannot bind (an int past 64 bits, a
            # lone surrogate) raises OverflowError or UnicodeEncodeError, which must fail its
            # own write, not the trip's others (as `_run_transactions` did per job).
            if isinstance(exc, sqlite3.Error):
                failed = Failed(sql, exc)
                if _busy_at_begin(failed):  # the file locked by another process: alone, too
                    return [failed] * len(jobs)
        finally:
            if conn.in_transaction:
                conn.rollback()
    ended: list[BaseException | None] = []
    for job in jobs:
        if ended and ended[-1] is not None and _busy_at_begin(ended[-1]):
            ended.append(ended[-1])  # as `_run_transactions` fails the rest of a trip
            continue
        try:
            _run_transaction(conn, job)
        except Exception as exc:  # noqa: BLE001 - handed to the job's caller
            ended.append(exc)
        else:
            ended.append(None)
    return ended


def _busy_at_begin(exc: BaseException) -> bool:
    """Whether a transaction of `_run_transaction` could not begin: the file was locked by
    another connection through the busy timeout."""
    return (
        isinstance(exc, Failed)
        and exc.sql == "BEGIN IMMEDIATE"
        and getattr(exc.error, "sqlite_errorcode", 0) & 0xFF == sqlite3.SQLITE_BUSY  # extended
    )


def _run_transaction(conn: sqlite3.Connection, job: Queued) -> None:
    """In the connection's thread: the job's work in one write transaction (see
    `Database.write`), rolled back instead of committed if it was abandoned meanwhile."""
    if job.abandoned:
        raise _Abandoned  # its caller left (or the process is stopping) before it began
    sql = "BEGIN IMMEDIATE"
    try:
        conn.execute(sql)
        for sql, args in job.work:
            if len(args) == 1:
                conn.execute(sql, args[0])
            else:
                conn.executemany(sql, args)
        if job.abandoned:
            raise _Abandoned
        sql = "COMMIT"
        conn.execute(sql)
    except BaseException as exc:
        if conn.in_transaction:
            conn.rollback()
        if isinstance(exc, sqlite3.Error):
            raise Failed(sql, exc) from exc
        raise
