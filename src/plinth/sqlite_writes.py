"""SQLite writes of `Database.write`, run in a connection's thread: the transactions queued
for a file meanwhile (`Queued`) sent in one trip (`send`), each its own BEGIN IMMEDIATE …
COMMIT with its own outcome, rolled back if its caller gave up before it committed. The
loop's side (the queue, the trips, the writer turn) is `Database._make_trips`; reads of a
file on the loop's own thread are `sqlite_reads`."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
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

    __slots__ = ("abandon", "outcome", "work")

    def __init__(self, work: list[tuple[str, list[list[Any]]]]) -> None:
        self.work = work
        self.abandon = threading.Event()  # its caller stopped waiting: roll back, if not done
        self.outcome: asyncio.Future[None] = asyncio.get_running_loop().create_future()


async def send(jobs: Sequence[Queued], raw: Any) -> list[BaseException | None]:
    """One trip to the thread of `raw`, the pool's aiosqlite connection, with `jobs`."""
    driver = raw.driver_connection
    # aiosqlite's own call into its thread (as `sqlite_files` uses its `_connect`): the
    # sqlite3 connection is only touched there.
    trip = driver._execute(_run_transactions, driver._conn, jobs)
    return await _until_over(trip, partial(_abandon, jobs))


def _abandon(jobs: Sequence[Queued]) -> None:
    for job in jobs:
        job.abandon.set()


def _run_transactions(
    conn: sqlite3.Connection, jobs: Sequence[Queued]
) -> list[BaseException | None]:
    """In the connection's thread: each job's transaction in turn (`_run_transaction`); what
    each ended with (None: committed, or given up before it began).

    One that cannot begin because another process held the file's lock through the busy
    timeout fails the jobs after it too: all were queued before the trip, so each has waited
    that long already (as a writer waiting for the turn that long fails), and trying each
    would keep every caller of the trip waiting a busy timeout per job."""
    outcomes: list[BaseException | None] = []
    locked: BaseException | None = None
    for job in jobs:
        if locked is not None:
            outcomes.append(locked)
            continue
        try:
            _run_transaction(conn, job.work, job.abandon)
        except Exception as exc:  # noqa: BLE001 - handed to the job's caller
            outcomes.append(exc)
            if _busy_at_begin(exc):
                locked = exc
        else:
            outcomes.append(None)
    return outcomes


def _busy_at_begin(exc: BaseException) -> bool:
    """Whether a transaction of `_run_transaction` could not begin: the file was locked by
    another connection through the busy timeout."""
    return (
        isinstance(exc, Failed)
        and exc.sql == "BEGIN IMMEDIATE"
        and getattr(exc.error, "sqlite_errorcode", 0) & 0xFF == sqlite3.SQLITE_BUSY  # extended
    )


def _run_transaction(
    conn: sqlite3.Connection,
    work: list[tuple[str, list[list[Any]]]],
    abandon: threading.Event,
) -> None:
    """In the connection's thread: `work` in one write transaction (see `Database.write`),
    rolled back instead of committed if `abandon` was set meanwhile."""
    if abandon.is_set():
        return  # its caller left before it began
    sql = "BEGIN IMMEDIATE"
    try:
        conn.execute(sql)
        for sql, args in work:
            if len(args) == 1:
                conn.execute(sql, args[0])
            else:
                conn.executemany(sql, args)
        if abandon.is_set():
            raise _Abandoned
        sql = "COMMIT"
        conn.execute(sql)
    except BaseException as exc:
        if conn.in_transaction:
            conn.rollback()
        if isinstance(exc, sqlite3.Error):
            raise Failed(sql, exc) from exc
        raise
