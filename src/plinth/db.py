"""The database underneath every layer: one async SQLAlchemy engine, SQLite or PostgreSQL.

SQLite runs in WAL mode with transactions we begin ourselves, so DDL is transactional (a failed
migration leaves nothing behind) and writers take the lock up front (`BEGIN IMMEDIATE`) instead
of failing when a read lock cannot be upgraded. PostgreSQL needs none of this.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
from sqlalchemy import DateTime, Delete, Insert, MetaData, Select, Update, event
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.types import TypeDecorator, TypeEngine
from sqlalchemy.util import await_only, greenlet_spawn

from plinth.sqlite_reads import ReadsHere
from plinth.sqlite_writes import Failed, Queued, send, settle

# aiosqlite's DEBUG records print every call with its statement and parameters: password and
# token hashes, record values. An operator turning on DEBUG to chase a problem must not get
# them in the log, so that logger stops at INFO whatever the root level is.
logging.getLogger("aiosqlite").setLevel(logging.INFO)

# Platform tables of every layer live in this one MetaData; each layer's store.py adds its own.
# Alembic migrations, not create_all, create them in a real database.
platform_metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

T = TypeVar("T")
_READ_ONLY = "plinth_read_only"
_SINGLE = "plinth_single_statement"


def utcnow() -> datetime:
    return datetime.now(UTC)


class Timestamp(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on every dialect (SQLite hands back naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


# Built once: `json.dumps` with arguments builds an encoder per call (~2.5 µs each).
_JSON_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=str)


def _json_dumps(value: Any) -> str:
    return _JSON_ENCODER.encode(value)


# Connections each engine keeps open. A request holds one connection at a time, so the pool
# must cover the requests a process serves at once: a smaller pool opens and closes overflow
# connections continuously under load (a new PostgreSQL session, or an SQLite file opened and
# its pragmas run, per request). 20 covers 16 concurrent requests plus the embedded workers'
# loops (outbox, workflow engine, webhooks, cluster log) holding one now and then; the most
# open at once stays 24.
POOL_SIZE = 20
MAX_OVERFLOW = 4


def create_engine(url: str, **kwargs: Any) -> AsyncEngine:
    """An async engine for `url`, with the SQLite set-up described above."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            kwargs.setdefault("pool_size", POOL_SIZE)
            kwargs.setdefault("max_overflow", MAX_OVERFLOW)
        kwargs.setdefault("pool_reset_on_return", None)  # `_reset_sqlite` instead
        engine = create_async_engine(
            url, json_serializer=_json_dumps, connect_args={"timeout": 30}, **kwargs
        )
        _configure_sqlite(engine)
        event.listen(engine.sync_engine.pool, "reset", _reset_sqlite)
        return engine
    kwargs.setdefault("pool_size", POOL_SIZE)
    kwargs.setdefault("max_overflow", MAX_OVERFLOW)
    kwargs.setdefault("pool_pre_ping", False)
    return create_async_engine(url, json_serializer=_json_dumps, **kwargs)


BUSY_SECONDS = 30
SQLITE_PRAGMAS = (
    "journal_mode=WAL",
    "synchronous=NORMAL",
    "foreign_keys=ON",
    f"busy_timeout={BUSY_SECONDS * 1000}",
)


def _configure_sqlite(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Hand transaction control to us (pysqlite would otherwise skip BEGIN before DDL).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in SQLITE_PRAGMAS:
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()

    event.listen(engine.sync_engine, "begin", _on_begin)


def _reset_sqlite(dbapi_connection: Any, _record: Any, state: Any) -> None:
    """A connection back in the pool is rolled back only if a transaction is open on it:
    SQLite says so without a trip to the connection's thread, and most come back with none
    (a single statement, a committed transaction), so they come back without a wasted hop."""
    if state.terminate_only or not state.asyncio_safe:
        return  # as SQLAlchemy's own reset: nothing to do, or nothing it may await here
    if dbapi_connection.driver_connection.in_transaction:
        dbapi_connection.rollback()


def _on_begin(conn: Any) -> None:
    options = conn.get_execution_options()
    if options.get(_SINGLE, False):
        return  # one statement: SQLite's implicit transaction around it is enough
    conn.exec_driver_sql("BEGIN" if options.get(_READ_ONLY, False) else "BEGIN IMMEDIATE")


# `before_cursor_execute` listeners of Plinth's own, each with what it must still see.
_UNTRACED: dict[Any, Callable[[Query | Write], bool]] = {}


def untraced(listener: Any, wants: Callable[[Query | Write], bool]) -> None:
    """Let `Database.fetch` and `Database.write` run prebuilt statements on the driver's
    connection although `listener` listens to the engine, except those `wants(statement)`
    says it must see (which then go through SQLAlchemy, and so through the listener)."""
    _UNTRACED[listener] = wants


# SQLSTATEs of a PostgreSQL write that lost only to other writers: a deadlock, a lock not
# granted in time, a serialization failure. Tried again, it may well go through.
_CONTENDED_STATES = frozenset({"40P01", "55P03", "40001"})


def contended(exc: BaseException) -> bool:
    """Whether a write failed only because other writers held the database (SQLite's "database
    is locked" after its busy timeout, a PostgreSQL deadlock or lock timeout), not because of
    what it wrote: nothing of it stayed, and trying it again may succeed."""
    if not isinstance(exc, DBAPIError):
        return False
    orig = exc.orig
    if isinstance(orig, sqlite3.OperationalError):
        return "locked" in str(orig) or "busy" in str(orig)
    return getattr(orig, "sqlstate", None) in _CONTENDED_STATES


class Refused(RuntimeError):
    """A statement refused before it reached the database (`fetch` does not retry it)."""


class Database:
    """The platform database: transactions for writes, snapshots for reads, migrations."""

    # SQLite lets one writer in at a time. Writers of this process take turns here, woken the
    # moment the one before commits; without it, each waits inside SQLite's busy handler,
    # which sleeps 1, 2, 5 … 100 ms between tries (so a burst of writers queues behind sleeps,
    # not behind each other's work). Other processes still meet at the file's lock.
    _turn: asyncio.Lock | None = None

    _here: ReadsHere | None = None
    # SQLite: `write`'s transactions waiting for their trip, and the task making the trips.
    _queued: list[Queued]
    _trips: asyncio.Task[None] | None = None

    def __init__(self, url: str, *, reads_here: bool = False, **engine_kwargs: Any) -> None:
        """`reads_here`: `fetch` reads an SQLite file on the calling thread (see `ReadsHere`);
        for a small file of short indexed reads, such as the platform's."""
        self.url = url
        self.engine = create_engine(url, **engine_kwargs)
        self.dialect = self.engine.dialect.name  # "sqlite" | "postgresql"
        path = self.engine.url.database
        if reads_here and self.dialect == "sqlite" and path and path != ":memory:":
            self._here = ReadsHere(path)

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    @asynccontextmanager
    async def writer(self) -> AsyncIterator[None]:
        """This process's turn to write (SQLite; a no-op on PostgreSQL). Waits as long as
        SQLite's busy timeout would, then fails as SQLite does ("database is locked")."""
        if self.dialect != "sqlite":
            yield
            return
        if self._turn is None:
            self._turn = asyncio.Lock()
        turn = self._turn
        # A free turn nobody waits for is taken at once (asyncio.Lock's own rule): no timer
        # to arm for it.
        if turn.locked() or getattr(turn, "_waiters", None):
            try:
                async with asyncio.timeout(BUSY_SECONDS):
                    await self._turn.acquire()
            except TimeoutError:
                raise OperationalError(
                    "BEGIN IMMEDIATE", None, sqlite3.OperationalError("database is locked")
                ) from None
        else:
            await turn.acquire()
        try:
            yield
        finally:
            self._turn.release()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        """One write transaction: committed on success, rolled back on any error."""
        async with self.writer(), self.engine.begin() as conn:
            yield conn

    @asynccontextmanager
    async def read(self, *, snapshot: bool = False) -> AsyncIterator[AsyncConnection]:
        """A read-only transaction (deferred on SQLite, so readers never block writers).

        `snapshot`: every statement sees the same committed state (PostgreSQL REPEATABLE READ;
        an SQLite read transaction in WAL mode always does)."""
        async with self.engine.connect() as conn:
            options: dict[str, Any] = {_READ_ONLY: True}
            if snapshot and self.dialect == "postgresql":
                options["isolation_level"] = "REPEATABLE READ"
            conn = await conn.execution_options(**options)
            async with conn.begin():
                yield conn

    @asynccontextmanager
    async def statement(self) -> AsyncIterator[AsyncConnection]:
        """A connection for one read statement, outside any explicit transaction: the
        statement is its own (SQLite's implicit one, PostgreSQL autocommit), so it costs one
        round trip instead of BEGIN, the statement and COMMIT. Only for a single statement:
        two would not see the same state."""
        async with self.engine.connect() as conn:
            if self.dialect == "postgresql":
                conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            else:
                conn = await conn.execution_options(**{_SINGLE: True})
            yield conn

    async def fetch(
        self, query: Query, params: dict[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        """The rows of a prebuilt SELECT, as `statement()` would run it (one statement, no
        explicit transaction), on the driver's connection when the query allows it."""
        params = params or {}
        prepared = query.prepared(self._sql_dialect())
        if prepared is not None and not self._traced(query):
            if self._here is not None:
                found = await self._here.fetch(prepared, params)
                if found is not None:
                    return found
            try:
                return await self._on_driver(lambda raw: self._run(prepared, query, raw, params))
            except Refused:
                raise
            except Exception:  # noqa: BLE001 - SQLAlchemy runs it again, raising its own error
                pass
        async with self.statement() as conn:
            return [dict(row._mapping) for row in await conn.execute(query.stmt, params)]

    async def execute(self, write: Write, params: dict[str, Any]) -> None:
        """One prebuilt write with one parameter set, as `statement()` would run it (its own
        transaction: PostgreSQL autocommit). On PostgreSQL (asyncpg) it runs on the driver's
        connection, not through SQLAlchemy's execution layer, its errors raised as
        SQLAlchemy's (`IntegrityError`, `DBAPIError` with the driver's error); elsewhere, or
        when someone listens to the engine's statements, through SQLAlchemy."""
        prepared = write.prepared(self.engine.dialect) if self.dialect == "postgresql" else None
        args = prepared.args([params]) if prepared is not None else None
        if prepared is None or args is None or self._traced(write):
            async with self.statement() as conn:
                await conn.execute(write.stmt, params)
            return
        row = args[0]

        async def run(raw: Any) -> None:
            sql = self._write_sql(prepared, write, raw)
            await _asyncpg_errors(raw.driver_connection.execute(sql, *row), sql)

        await self._on_driver(run)

    def _write_sql(self, prepared: _PreparedWrite, write: Write, raw: Any) -> str:
        """The text `execute` sends for `write` on `raw` (a tenant's schema checks it)."""
        return prepared.sql

    async def write(self, steps: Sequence[tuple[Write, Sequence[dict[str, Any]]]]) -> None:
        """Prebuilt writes, each with its parameter sets, in one transaction: all or nothing.

        On SQLite (aiosqlite) the transaction is one trip to the connection's thread (BEGIN
        IMMEDIATE, the statements, COMMIT) in this process's writer turn, instead of a trip per
        statement, each through SQLAlchemy's execution layer, and the transactions queued for
        the file meanwhile share that trip and, when small, its transaction (`_make_trips`,
        `sqlite_writes`), each with the outcome it would have had alone; the driver's errors
        are raised as SQLAlchemy's would be (`IntegrityError`, `OperationalError`, … with the
        driver's message), the transaction rolled back. On PostgreSQL (asyncpg) it runs on the
        driver's connection: BEGIN, the statements, COMMIT, each a round trip but none through
        SQLAlchemy; its integrity errors are raised as `IntegrityError`. Anything else (a
        statement that cannot be prepared, someone listening to the engine's statements, a
        tenant's schema: `TenantSchema`) runs in `transaction()` through SQLAlchemy as before."""
        steps = [(w, rows) for w, rows in steps if rows]
        work = self._driver_work(steps)
        if work is None:
            async with self.transaction() as conn:
                for w, rows in steps:
                    await conn.execute(w.stmt, list(rows))
            return
        if self.dialect == "postgresql":
            await self._write_asyncpg(work)
            return
        queued = Queued(work)
        loop = asyncio.get_running_loop()
        trips = self._trips
        if trips is None or trips.done() or trips.get_loop() is not loop:
            self._queued = []
            self._trips = loop.create_task(self._make_trips())
        self._queued.append(queued)
        try:
            await asyncio.shield(queued.outcome)
        except asyncio.CancelledError:
            # Not sent yet: it never begins. Sent: its thread rolls it back unless it had
            # already committed, and the cancellation is seen once the thread is done with it.
            queued.abandon()
            if queued in self._queued:
                self._queued.remove(queued)
            else:
                await asyncio.wait([queued.outcome])
                if not queued.outcome.cancelled():
                    queued.outcome.exception()  # rolled back or failed: its caller was cancelled
            raise
        except Failed as failed:
            raise DBAPIError.instance(
                failed.sql, None, failed.error, sqlite3.Error
            ) from failed.error

    async def _make_trips(self) -> None:
        """SQLite: the queued transactions of `write`, all those waiting in one trip to a
        connection's thread, in this process's writer turn, until none wait. Under load the
        writes of a file wait for each other anyway (one writer at a time); sent together
        they share the trip (the hand-off to the thread and back, a pool checkout, the turn)
        and, the small ones, one transaction; each still has the outcome it would have had
        as a transaction of its own (`sqlite_writes._run_group`)."""
        while self._queued:
            jobs: list[Queued] = []
            waiting = list(self._queued)  # those that will have waited the turn's time limit
            try:
                async with self.writer():
                    jobs, self._queued = self._queued, []
                    outcomes = await self._on_driver(partial(send, jobs))
            except asyncio.CancelledError:  # the process stopping: nothing more is sent
                for job in [*jobs, *self._queued]:
                    job.outcome.cancel()  # those that committed are settled already (`send`)
                self._queued = []
                raise
            except Exception as exc:  # noqa: BLE001 - the turn, the pool: each job's failure
                if not jobs:  # the turn not had in time: those waiting as long fail, as a
                    # writer waiting for it fails (else a write made inside `transaction()`
                    # would wait for it for ever)
                    queued = set(self._queued)
                    jobs = [job for job in waiting if job in queued]
                    failed = set(jobs)
                    self._queued = [job for job in self._queued if job not in failed]
                outcomes = [exc] * len(jobs)
            for job, outcome in zip(jobs, outcomes, strict=True):
                settle(job.outcome, outcome)  # those `send` has not settled (a failed trip)

    async def _write_asyncpg(self, work: list[tuple[str, list[list[Any]]]]) -> None:
        async def run(raw: Any) -> None:
            driver = raw.driver_connection
            async with driver.transaction():
                for sql, args in work:
                    if len(args) == 1:
                        await _asyncpg_errors(driver.execute(sql, *args[0]), sql)
                    else:
                        await _asyncpg_errors(driver.executemany(sql, args), sql)

        await self._on_driver(run)

    def _driver_work(
        self, steps: list[tuple[Write, Sequence[dict[str, Any]]]]
    ) -> list[tuple[str, list[list[Any]]]] | None:
        """The statements of `steps` as the driver takes them, or None for SQLAlchemy."""
        sync = self.engine.sync_engine
        dialect = sync.dialect
        if dialect.name not in ("sqlite", "postgresql"):
            return None
        if sync.dispatch.before_cursor_execute and any(self._traced(w) for w, _ in steps):
            return None
        work = []
        for w, rows in steps:
            prepared = w.prepared(dialect)
            if prepared is None:
                return None
            args = prepared.args(rows)
            if args is None:
                return None
            work.append((prepared.sql, args))
        return work

    def _sql_dialect(self) -> Dialect:
        """The dialect prebuilt queries compile for (the engine's)."""
        return self.engine.dialect

    def _traced(self, query: Query | Write) -> bool:
        """Whether someone listens to the engine's statements (tracing, a test counting
        them) and must see this one: it then runs through SQLAlchemy, as it always did.
        Plinth's own listeners count only for the queries they want (`untraced`)."""
        listeners = self.engine.sync_engine.dispatch.before_cursor_execute
        return any(fn not in _UNTRACED or _UNTRACED[fn](query) for fn in listeners)

    async def _on_driver(self, work: Callable[[Any], Awaitable[T]]) -> T:
        """`work(raw)` on a connection of the pool (`raw.driver_connection` is the driver's),
        given back to the pool afterwards, reset as SQLAlchemy does, whatever happened.

        The pool's code is synchronous and may wait for the driver (a new connection, a
        rollback at check-in), so SQLAlchemy runs it in a greenlet. Taking the connection
        and giving it back each in a greenlet of their own (`engine.raw_connection()`, then
        `greenlet_spawn(raw.close)`) made two greenlets per statement, ~12 µs apiece; here one
        greenlet takes it, waits for `work` and gives it back."""
        raw = await self._ahead()
        if raw is not None:
            try:
                return await work(raw)
            finally:
                await greenlet_spawn(raw.close)
        checkout = self._checkout

        def run() -> T:
            raw = checkout()
            try:
                return await_only(work(raw))
            finally:
                raw.close()

        return await greenlet_spawn(run)

    def _checkout(self) -> Any:
        """A connection of the pool, taken in `_on_driver`'s greenlet."""
        return self.engine.sync_engine.raw_connection()

    async def _ahead(self) -> Any:
        """A connection taken ahead for this database's next statement, or None (a tenant's
        schema takes one ahead for a cold tenant's first read: `TenantSchema.prepare`)."""
        return None

    async def _run(
        self, prepared: _Prepared, query: Query, raw: Any, params: dict[str, Any]
    ) -> list[dict[str, Any]]:
        return await prepared.run(raw.driver_connection, params)

    async def migrate(self) -> None:
        """Apply every layer's Alembic migrations (all heads) in one transaction."""
        from plinth.migrations import upgrade

        async with self.transaction() as conn:
            await conn.run_sync(upgrade)

    async def ping(self) -> None:
        from sqlalchemy import text

        async with self.read() as conn:
            await conn.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        if self._here is not None:
            await self._here.close()
        await self.engine.dispose()


class Query:
    """A SELECT built once (a compiled entity's read of one record, a list's shape) and run
    by `Database.fetch` on the driver's own connection: no SQLAlchemy compilation, cache key,
    execution context or result objects per run. Its parameters pass through the bind
    processors and its columns through the result processors SQLAlchemy itself would apply,
    so rows hold the same values either way. A statement that cannot run so (one that
    SQLAlchemy must finish per execution, such as `IN` with expanding parameters) runs
    through SQLAlchemy."""

    def __init__(self, stmt: Select[Any]) -> None:
        self.stmt = stmt
        self._prepared: dict[str, _Prepared | None] = {}

    def prepared(self, dialect: Dialect) -> _Prepared | None:
        found = self._prepared.get(dialect.name, False)
        if found is False:
            found = self._prepared[dialect.name] = _Prepared.of(self.stmt, dialect)
        return found  # type: ignore[return-value]


class _Prepared:
    """A `Query` compiled for one dialect: SQL text, parameter order and converters."""

    def __init__(
        self,
        sql: str,
        dialect: Dialect,
        binds: list[tuple[str, Any, Any]],
        columns: list[tuple[str, TypeEngine[Any]]],
    ) -> None:
        self.sql = sql
        self.dialect = dialect
        self.binds = binds  # (name, value compiled into the statement, bind processor)
        self.columns = columns
        # Result processors of PostgreSQL's numeric types depend on the column's type oid,
        # known after the first run prepared the statement; SQLite's on nothing.
        self.results: list[Any] | None = (
            None if dialect.name == "postgresql" else self._results([None] * len(columns))
        )

    @classmethod
    def of(cls, stmt: Select[Any], dialect: Dialect) -> _Prepared | None:
        compiled = stmt.compile(dialect=dialect)
        if (
            dialect.name not in ("postgresql", "sqlite")
            or dialect.driver not in ("asyncpg", "aiosqlite")
            or not compiled.positional
            or compiled.positiontup is None
            or getattr(compiled, "post_compile_params", None)
            or getattr(compiled, "literal_execute_params", None)
        ):
            return None
        binds = []
        for name in compiled.positiontup:
            bind = compiled.binds[name]
            kind = bind.type.dialect_impl(dialect)
            binds.append((name, bind.effective_value, kind.bind_processor(dialect)))
        columns = [(c.name, c.type) for c in stmt.selected_columns]
        return cls(compiled.string, dialect, binds, columns)

    def _results(self, coltypes: list[Any]) -> list[Any]:
        return [
            kind.dialect_impl(self.dialect).result_processor(self.dialect, coltype)
            for (_, kind), coltype in zip(self.columns, coltypes, strict=True)
        ]

    def args(self, params: dict[str, Any]) -> list[Any]:
        args = []
        for name, value, process in self.binds:
            value = params.get(name, value)
            args.append(value if process is None else process(value))
        return args

    def rows(self, rows: Iterable[Any]) -> list[dict[str, Any]]:
        names = [name for name, _ in self.columns]
        processors = self.results
        assert processors is not None
        return [
            {n: (v if p is None else p(v)) for n, p, v in zip(names, processors, row, strict=True)}
            for row in rows
        ]

    async def run(self, driver: Any, params: dict[str, Any]) -> list[dict[str, Any]]:
        args = self.args(params)
        if self.dialect.name == "postgresql":
            if self.results is None:
                statement = await driver.prepare(self.sql)
                self.results = self._results([a.type.oid for a in statement.get_attributes()])
                rows = await statement.fetch(*args)
            else:
                rows = await driver.fetch(self.sql, *args)
        else:
            rows = await driver.execute_fetchall(self.sql, args)
        return self.rows(rows)


class Write:
    """An INSERT, UPDATE or DELETE (or a SELECT run for its effect: a lock) built once with
    named parameters, run by `Database.write` with one or many parameter sets. An INSERT
    names the columns it sets (`columns`: those of its parameter sets), as SQLAlchemy
    compiles it for them."""

    def __init__(
        self, stmt: Insert | Update | Delete | Select[Any], columns: Iterable[str] | None = None
    ) -> None:
        self.stmt = stmt
        self.columns = sorted(columns) if columns is not None else None
        self._prepared: dict[str, _PreparedWrite | None] = {}

    def prepared(self, dialect: Dialect) -> _PreparedWrite | None:
        found = self._prepared.get(dialect.name, False)
        if found is False:
            found = self._prepared[dialect.name] = _PreparedWrite.of(self, dialect)
        return found  # type: ignore[return-value]


_DRIVERS = (("sqlite", "aiosqlite"), ("postgresql", "asyncpg"))  # `_PreparedWrite` runs on them
# Prebuilt writes, each with its parameter sets, for `Database.write`.
Steps = list[tuple[Write, list[dict[str, Any]]]]


class _PreparedWrite:
    """A `Write` compiled for the driver (aiosqlite, asyncpg): SQL text, parameter order,
    bind processors."""

    def __init__(self, sql: str, binds: list[tuple[str, Any]]) -> None:
        self.sql = sql
        self.binds = binds  # (name, SQLAlchemy's bind processor for its type)
        self.names = frozenset(name for name, _ in binds)

    @classmethod
    def of(cls, write: Write, dialect: Dialect) -> _PreparedWrite | None:
        if (dialect.name, dialect.driver) not in _DRIVERS:
            return None
        compiled: Any = write.stmt.compile(dialect=dialect, column_keys=write.columns)
        if (
            not compiled.positional
            or compiled.positiontup is None
            or getattr(compiled, "post_compile_params", None)
            or getattr(compiled, "literal_execute_params", None)
            or compiled.insert_prefetch  # values SQLAlchemy works out per run (defaults)
            or compiled.update_prefetch
            or compiled.effective_returning
        ):
            return None
        binds = [
            (name, compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect))
            for name in compiled.positiontup
        ]
        return cls(compiled.string, binds)

    def args(self, rows: Sequence[dict[str, Any]]) -> list[list[Any]] | None:
        """Each parameter set in order, converted; None unless each names exactly the
        statement's parameters (SQLAlchemy then decides what to do with it)."""
        out = []
        for row in rows:
            if len(row) != len(self.names) or not self.names.issuperset(row):
                return None
            out.append([row[n] if p is None else p(row[n]) for n, p in self.binds])
        return out


async def _asyncpg_errors(call: Awaitable[Any], sql: str) -> None:
    """Await an asyncpg call, its database errors raised as SQLAlchemy raises them (the
    driver's error as `orig`, with its `sqlstate`)."""
    try:
        await call
    except asyncpg.IntegrityConstraintViolationError as exc:
        raise IntegrityError(sql, None, exc) from exc
    except asyncpg.PostgresError as exc:
        raise DBAPIError(sql, None, exc) from exc
