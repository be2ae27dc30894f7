"""Reading an SQLite file on the event loop's thread: the platform's file and each open tenant
file answer their prebuilt SELECTs (`db.Query`) without a trip to a connection's thread."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import stat
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol


class Prepared(Protocol):
    """A prebuilt SELECT compiled for SQLite (`db.Query.prepared`)."""

    sql: str

    def args(self, params: dict[str, Any]) -> list[Any]: ...

    def rows(self, rows: Any) -> list[dict[str, Any]]: ...


class Gate(Protocol):
    """What a reader of a file opened often asks before it opens it (`OpenFiles`): whether
    too many files are still closing, and a wait until they are not."""

    @property
    def crowded(self) -> bool: ...

    async def room(self) -> None: ...


def _interrupt() -> int:
    return 1  # a progress handler answering non-zero interrupts the statement


class ReadsHere:
    """Prebuilt SELECTs on an SQLite file, run on the calling thread (the event loop's).

    A read through the pool is a trip to its connection's thread and back, each a wake-up the
    OS and the interpreter's lock must schedule, and worth more than the read itself (an
    indexed row of a cached file takes microseconds): the platform's file (a cold tenant's
    row, its gateway settings, its apps' versions) and each open tenant file (a record, a
    page of a list) are read here. SQLite in WAL mode never blocks a reader on a writer, and
    this connection does not wait at all (busy timeout 0, read-only): should it ever meet a
    lock (a checkpoint resetting the log, recovery after a crash) or fail in any other way,
    `fetch` answers None and the query goes through the pool as before. Nor does a read hold
    the loop for long: one that runs past `STEPS` of SQLite's virtual machine (~0.3 ms; an
    unindexed filter over a large table) is interrupted and goes through the pool too. Some
    work is a single step, though, which no step count interrupts: a LIKE (a `contains`
    filter) costs the length of the value times that of the pattern for each row (a crafted
    filter over long text held the loop for seconds), and a long value is copied whole. So
    this connection refuses any LIKE or GLOB pattern and, given `longest` (a tenant's file,
    whose values its users write), any value longer than that many bytes: such a read, too,
    goes through the pool, off the loop's thread.

    Opening and closing are filesystem work (the first read opens the file's `-wal` and
    `-shm`, creating them if they are not there; the last close checkpoints and deletes them),
    which on a busy disk now and then takes tens of milliseconds: both run on threads kept for
    them (`_OPENING`, `_CLOSING`), never on the loop. A file's owner puts its `-wal` and `-shm`
    back once it has closed it for good (`keep_logs`), so that the next open finds them."""

    STEPS = 20_000

    def __init__(self, path: str, longest: int | None = None, gate: Gate | None = None) -> None:
        self.path = path
        self.longest = longest
        self.gate = gate  # asked before each open: it may have to wait (see `Gate`)
        self._closed = False
        self._conn: sqlite3.Connection | None = None
        self._opening: asyncio.Future[sqlite3.Connection | None] | None = None

    async def fetch(
        self, prepared: Prepared, params: dict[str, Any]
    ) -> list[dict[str, Any]] | None:
        conn = self._conn or await self._open()
        if conn is None:
            return None
        try:
            rows = conn.execute(prepared.sql, prepared.args(params)).fetchall()
        except sqlite3.Error:  # busy, locked, interrupted, closed meanwhile: through the pool
            return None
        return prepared.rows(rows)

    def prepare(self) -> None:
        """Start opening the file, if it is not open or opening, without waiting: a reader
        expected soon then finds it open, or waits only for the rest of the open (which runs
        on an `_OPENING` thread while the loop does the request's other work)."""
        crowded = self.gate is not None and self.gate.crowded  # then the reader waits for room
        if self._conn is None and self._opening is None and not crowded:
            self._start()

    def _start(self) -> asyncio.Future[sqlite3.Connection | None]:
        work = asyncio.get_running_loop().run_in_executor(_OPENING, self._connect)
        self._opening = work
        return work

    async def _open(self) -> sqlite3.Connection | None:
        # The first reader opens it (or `prepare` did); any other meanwhile waits for it.
        if self._opening is None and self.gate is not None:
            await self.gate.room()
            if self._closed:
                return None  # closed while it waited: the pool's connection answers
        opening = self._opening or self._start()
        # Shielded: a reader that gives up leaves the connection to the next (or to close).
        conn = await asyncio.shield(opening)
        if self._opening is opening:  # not closed meanwhile
            self._opening = None
            self._conn = conn  # None (no file yet, locked): the next read tries again
        return conn

    def _connect(self) -> sqlite3.Connection | None:  # on an `_OPENING` thread
        if not os.path.exists(self.path):
            return None  # the pool's connection makes it, as it always did
        conn = None
        try:
            # Handed to the loop's thread once open, closed on another (`close`).
            conn = sqlite3.connect(
                self.path, timeout=0, isolation_level=None, check_same_thread=False
            )
            conn.set_progress_handler(_interrupt, self.STEPS)
            conn.setlimit(sqlite3.SQLITE_LIMIT_LIKE_PATTERN_LENGTH, 0)
            if self.longest is not None:  # SQLite's error "string or blob too big"
                conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, self.longest)
            # One call (each takes the interpreter's lock back, from a loop that may be busy):
            # read-only, then a read that loads the schema and opens the log.
            conn.executescript("PRAGMA query_only=ON; SELECT 1 FROM sqlite_master LIMIT 1;")
        except Exception:  # noqa: BLE001 - not readable here: the pool's connection will say
            if conn is not None:
                _close_quietly(conn)
            return None
        return conn

    async def close(self, keep_logs: bool = False) -> None:
        """Close the connection; `keep_logs`: this was the file's last one here, so put its
        `-wal` and `-shm` back once it is closed, in the same trip (see `_put_back`)."""
        self._closed = True
        conn, self._conn = self._conn, None
        opening, self._opening = self._opening, None
        if opening is not None:  # one being opened (or opened for a reader that gave up)
            conn = await asyncio.shield(opening) or conn
        if conn is not None or keep_logs:
            kept = self.path if keep_logs else None
            await asyncio.get_running_loop().run_in_executor(_CLOSING, _closed, conn, kept)


async def keep_logs(path: str) -> None:
    """Put back, empty, the `-wal` and `-shm` of the SQLite file at `path` that its last
    connection's close deleted (see `_put_back`)."""
    await asyncio.get_running_loop().run_in_executor(_CLOSING, _put_back, path)


def _closed(conn: sqlite3.Connection | None, kept: str | None) -> None:
    if conn is not None:
        _close_quietly(conn)
    if kept is not None:
        _put_back(kept)


def _put_back(path: str) -> None:
    """SQLite deletes a file's `-wal` and `-shm` when the last connection to it closes, and
    the next open creates both again: two file creations, each a change to the directory
    that waits on the filesystem's journal: while other processes wrote to the disk, the
    open's first read took 0.55–1.0 ms, against 0.23–0.25 ms with the two files there
    (bench/README.md). Created here again, off any request's path, they are
    found by the next open. SQLite starts an empty `-wal` as a log with nothing in it, and
    the first connection to open a file rebuilds its `-shm` whatever it holds (as after a
    crash). A file that does not exist gets none.

    Made by name (`mknod`), never opened: closing any descriptor of a file drops every POSIX
    lock this process holds on it, and SQLite keeps a WAL's locks (the writer's, the readers'
    marks, the one saying the `-shm` is in use) as such locks on the `-shm`. A connection of
    this process that opened the file meanwhile (a request reopening a tenant whose eviction
    is still closing, a file opened while a sweep peeked at it) would lose them, and another
    process (`plinth serve --workers N`) would write beside its transaction: one of the two
    commits lost. A log already there (another connection's) is left as it is. Only a file
    of this process's user gets its logs back, with the file's mode: SQLite gives a file's
    logs both (as root it hands them to the file's owner, whatever the umask), and logs owned
    by another user, or narrowed by a umask, could not be opened by the file's users; logs
    beside a symlink would never be used."""
    try:
        path = os.path.realpath(path)  # SQLite keeps a symlinked file's logs by its target
        found = os.stat(path)
    except OSError:  # no file (never written), or its folder is gone: nothing to keep
        return
    if found.st_uid != os.geteuid():
        return
    mode = stat.S_IMODE(found.st_mode)
    for log in (f"{path}-wal", f"{path}-shm"):
        try:
            os.mknod(log, mode | stat.S_IFREG)  # fails on any name there, a symlink too
            if stat.S_IMODE(os.lstat(log).st_mode) != mode:  # the umask took some bits
                os.chmod(log, mode)
        except FileExistsError:
            continue
        except OSError:  # a read-only or full disk: the next open makes them, as it did
            return


# Opening and closing SQLite files read on the loop's thread (`ReadsHere`): a few threads
# each, whatever the number of files, started as needed. Apart, so that a request waiting for
# a file to open never waits behind closes: a node at its bound of open files closes one for
# each it opens (a checkpoint, the logs deleted and put back, milliseconds each on a busy
# disk); queued behind such closes on one shared pool, a cold tenant's open waited up to 9 ms
# (seen at load 4).
_OPENING = ThreadPoolExecutor(max_workers=2, thread_name_prefix="plinth-sqlite-open")
_CLOSING = ThreadPoolExecutor(max_workers=2, thread_name_prefix="plinth-sqlite-close")


def _close_quietly(conn: sqlite3.Connection) -> None:
    with contextlib.suppress(sqlite3.Error):
        conn.close()
