"""SQLite files opened often (a tenant's, reopened after the LRU closed it): engines that open
each connection in one trip to a thread started ahead, share one dialect and one cache of
compiled statements, and register nothing per file."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable
from functools import partial
from pathlib import Path
from queue import Empty, SimpleQueue
from typing import Any

from sqlalchemy import event
from sqlalchemy.dialects import registry
from sqlalchemy.dialects.sqlite.aiosqlite import SQLiteDialect_aiosqlite
from sqlalchemy.engine import URL, Engine
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import AsyncAdaptedQueuePool, NullPool

from plinth.db import SQLITE_PRAGMAS, _json_dumps, _on_begin

# What the engines of SQLite files opened often (tenant files) share: one dialect, set up once
# without asking a connection (SQLite's answers are known: schema "main", SERIALIZABLE), and one
# cache of compiled statements, so a file opened again compiles nothing and its first
# connection runs no dialect check.
_file_dialect: Any = None
FILE_STATEMENTS = 2000  # compiled statements kept for all tenant files together


def _shared() -> tuple[Any, Any]:
    global _file_dialect
    if _file_dialect is None:
        import sqlite3

        from sqlalchemy.util import LRUCache

        template = create_async_engine(
            "sqlite+plinth_file://", json_serializer=_json_dumps, _initialize=False
        )
        dialect = template.sync_engine.dialect
        dialect.server_version_info = sqlite3.sqlite_version_info
        dialect.default_schema_name = "main"
        dialect.default_isolation_level = "SERIALIZABLE"  # what PRAGMA read_uncommitted says
        _file_dialect = (dialect, LRUCache(FILE_STATEMENTS))
    return _file_dialect


def file_dialect() -> Any:
    """The dialect every tenant file's engine shares (prebuilt queries compile for it)."""
    return _shared()[0]


class FileDialect(SQLiteDialect_aiosqlite):
    """aiosqlite's dialect, for SQLite files opened often. A connection back in the pool is
    rolled back only if a transaction is open on it, as `_reset_sqlite` does for the platform's
    engine, but without a listener on each file's pool (see `FilePool`)."""

    supports_statement_cache = True  # as its parent's: compiled statements stay cached

    def do_rollback(self, dbapi_connection: Any) -> None:
        if dbapi_connection.driver_connection.in_transaction:
            super().do_rollback(dbapi_connection)


registry.register("sqlite.plinth_file", __name__, "FileDialect")


class FileEngine(Engine):
    """The engine of one SQLite file opened often (see `sqlite_file_engine`)."""

    @staticmethod
    def watched() -> bool:
        """Whether someone listens to the statements of every such engine (a test counting
        every engine's): they then run through SQLAlchemy (see `Database._traced`). Asked
        of an engine that never connects: an instance sees the listeners of its class."""
        global _probe
        if _probe is None:
            _probe = FileEngine(NullPool(_unused), file_dialect(), URL.create("sqlite"))
        return bool(_probe.dispatch.before_cursor_execute)


_probe: FileEngine | None = None


def _unused() -> Any:
    raise RuntimeError("the probe engine never connects")


class FilePool(AsyncAdaptedQueuePool):
    """The pool of one SQLite file's connections. It counts the connections out and calls
    `on_idle` when the last one comes back, so the file's owner closes it only unused.

    Counted here rather than by listening to the pool's events: registered per file,
    SQLAlchemy's listeners cost most of building its engine (~0.15 ms of a cold tenant's
    request). What every file's engine listens to is registered once, on its class; the
    rollback on return is its dialect's (`FileDialect`)."""

    in_use = 0
    on_idle: Callable[[], None] | None = None

    def _do_get(self) -> Any:
        record = super()._do_get()
        self.in_use += 1
        return record

    def _do_return_conn(self, record: Any) -> None:
        super()._do_return_conn(record)
        self.in_use = max(0, self.in_use - 1)
        if self.in_use == 0 and self.on_idle is not None:
            self.on_idle()

    def recreate(self) -> FilePool:
        # The engine's dispose() swaps in a new pool: a file used after it was closed (a
        # request that held it) still tells its owner when it falls idle again.
        pool: FilePool = super().recreate()  # type: ignore[assignment]
        pool.on_idle = self.on_idle
        return pool


event.listen(FileEngine, "begin", _on_begin)


def sqlite_file_engine(
    path: Path, pragmas: tuple[str, ...] = (), **pool_kwargs: Any
) -> AsyncEngine:
    """An engine for one SQLite file whose connections open in a single trip to their thread
    (connect, every PRAGMA as one script, SQLAlchemy's SQL functions), each on a thread already
    started when one is spare: the same set-up as `create_engine`, for files opened often (a
    tenant's, reopened after the LRU closed it). Its dialect and compiled statements are
    shared with every other such engine; its pool is a `FilePool`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    script = "".join(f"PRAGMA {p};" for p in (*SQLITE_PRAGMAS, *pragmas))
    dialect, statements = _shared()
    functions = dialect.on_connect()  # regexp(), floor(): what SQLAlchemy gives SQLite

    def open_file() -> sqlite3.Connection:  # runs in the connection's thread
        # isolation_level=None: we begin transactions ourselves (see `_on_begin`).
        conn = sqlite3.connect(path.as_posix(), timeout=30, isolation_level=None)
        try:
            conn.executescript(script)
            functions(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    def creator() -> Any:
        return dialect.loaded_dbapi.connect(async_creator_fn=partial(_spares.connect, open_file))

    pool = FilePool(creator, dialect=dialect, reset_on_return="rollback", **pool_kwargs)
    url = URL.create("sqlite+aiosqlite", database=path.as_posix())
    engine = FileEngine(pool, dialect, url, query_cache_size=0)
    engine.update_execution_options(compiled_cache=statements)
    return AsyncEngine(engine)


class _Spares:
    """aiosqlite connection threads started ahead, for SQLite files opened often. A
    connection's thread otherwise starts when its file opens: a trip to a thread that starts
    it, then the wait for the new thread to run, both before the file is even opened (on a
    loaded machine, scheduling delays in a cold tenant's first request).

    A thread of its own keeps one spare ready: each file that takes it asks for the next, so
    the event loop only passes messages. Spares run as daemon threads (an unused spare must
    not keep the process alive at exit); a file's connection is closed by its engine."""

    KEEP = 1

    def __init__(self) -> None:
        self._ready: SimpleQueue[Any] = SimpleQueue()  # aiosqlite.Connections, thread running
        self._wanted: SimpleQueue[None] = SimpleQueue()
        self._maker: threading.Thread | None = None

    async def connect(self, connector: Callable[[], sqlite3.Connection]) -> Any:
        try:
            connection = self._ready.get_nowait()
        except Empty:
            connection = self._new(connector)
            # `await connection` would start the thread on the event loop and wait there
            # until it runs: a scheduling delay for every request in flight.
            try:
                await asyncio.to_thread(connection._thread.start)
            except BaseException:
                connection.stop()  # its thread ends once it runs
                raise
        else:
            connection._connector = connector  # what its thread runs first (aiosqlite 0.21+)
        self._want()
        return await connection._connect()

    @staticmethod
    def _new(connector: Callable[[], sqlite3.Connection]) -> Any:
        import aiosqlite

        connection = aiosqlite.Connection(connector, 64)
        connection._thread.daemon = True
        return connection

    def _want(self) -> None:
        if self._maker is None:
            self._maker = threading.Thread(target=self._make, name="plinth-spares", daemon=True)
            self._maker.start()
        self._wanted.put(None)

    def _make(self) -> None:
        while True:
            self._wanted.get()
            if self._ready.qsize() < self.KEEP:
                connection = self._new(_no_file)
                connection._thread.start()
                self._ready.put(connection)


def _no_file() -> sqlite3.Connection:
    raise RuntimeError("a spare connection ran before it was given a file")


_spares = _Spares()
