"""The storage underneath: migrations are idempotent and DDL is transactional."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from plinth.db import Database, Timestamp


async def test_failed_migration_leaves_nothing_behind(database_url):
    db = Database(database_url)
    try:
        await db.migrate()
        await db.migrate()  # idempotent
        with pytest.raises(RuntimeError):
            async with db.transaction() as conn:
                await conn.execute(sa.text("CREATE TABLE half_done (id INTEGER)"))
                await conn.execute(sa.text("ALTER TABLE tenants ADD COLUMN half INTEGER"))
                raise RuntimeError("migration step failed")
        async with db.read() as conn:
            tables = await conn.run_sync(lambda c: sa.inspect(c).get_table_names())
            columns = await conn.run_sync(
                lambda c: [col["name"] for col in sa.inspect(c).get_columns("tenants")]
            )
        assert "half_done" not in tables
        assert "half" not in columns
        assert {"tenants", "apps", "drafts", "versions", "api_tokens"} <= set(tables)
    finally:
        await db.dispose()


async def test_sqlite_runs_in_wal_mode(tmp_path):
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}")
    try:
        async with db.read() as conn:
            mode = (await conn.execute(sa.text("PRAGMA journal_mode"))).scalar()
        assert mode == "wal"
    finally:
        await db.dispose()


async def test_a_prepared_query_reads_what_sqlalchemy_reads(database_url):
    """`Database.fetch` runs prebuilt SELECTs on the driver's connection: every column type
    comes back as SQLAlchemy hands it back, and a statement it cannot run so (IN) still runs."""
    import datetime as dt
    from decimal import Decimal

    from plinth.db import Query

    db = Database(database_url)
    # SQLite: the platform's database reads prebuilt SELECTs on the calling thread instead
    here = Database(database_url, reads_here=True)
    table = _typed_table("prepared_check", unique_status=False)
    try:
        async with db.transaction() as conn:
            await conn.run_sync(lambda c: table.create(c))
            await conn.execute(
                table.insert(),
                [
                    {
                        "id": f"r{i}",
                        "at": dt.datetime(2026, 1, 1, 12, i, tzinfo=dt.UTC),
                        "amount": Decimal("12.30") + i,
                        "flag": bool(i % 2),
                        "doc": {"a": [1, i], "ü": None},
                        "day": dt.date(2026, 1, 1 + i),
                        "n": 10**12 + i,
                        "status": "open" if i % 2 else "void",
                    }
                    for i in range(5)
                ],
            )
        c = table.c
        statements = [
            sa.select(table).where(c.id == sa.bindparam("record_id")),
            sa.select(table)
            .where(sa.and_(c.status == "open", c.amount > Decimal("12")))
            .order_by(c.amount.desc().nulls_last(), c.id.desc())
            .limit(3),
            sa.select(table).where(c.at < dt.datetime(2027, 1, 1, tzinfo=dt.UTC), c.flag.is_(True)),
            sa.select(table).where(c.status.in_(["open", "void"])),
        ]
        for stmt in statements:
            query = Query(stmt)
            async with db.statement() as conn:
                expected = [dict(r._mapping) for r in await conn.execute(stmt, {"record_id": "r1"})]
            assert expected
            for _ in range(2):  # the first run prepares, the second reuses
                assert await db.fetch(query, {"record_id": "r1"}) == expected
                assert await here.fetch(query, {"record_id": "r1"}) == expected
        assert Query(statements[0]).prepared(db.engine.dialect) is not None
        assert Query(statements[3]).prepared(db.engine.dialect) is None  # IN: SQLAlchemy's
    finally:
        async with db.transaction() as conn:
            await conn.run_sync(lambda c: table.drop(c, checkfirst=True))
        await here.dispose()
        await db.dispose()


async def test_the_platforms_own_listeners_keep_fetch_on_the_driver(platform):
    """A started platform listens to its engine itself (on PostgreSQL, the tenant search-path
    check): that must not send every `fetch` (a cold tenant's lookups) through SQLAlchemy;
    a listener of someone else's (tracing, a test counting statements) does."""
    from sqlalchemy import event

    from plinth.tenancy.store import BY_SLUG

    assert not platform.db._traced(BY_SLUG)
    seen: list[str] = []

    def count(_conn, _cursor, statement, *_args):  # type: ignore[no-untyped-def]
        seen.append(statement)

    event.listen(platform.db.engine.sync_engine, "before_cursor_execute", count)
    try:
        assert platform.db._traced(BY_SLUG)
        assert await platform.tenants.lookup("nobody") is None
        assert any("tenants" in s for s in seen)
    finally:
        event.remove(platform.db.engine.sync_engine, "before_cursor_execute", count)


async def test_a_connection_back_in_the_pool_holds_no_transaction(tmp_path):
    """SQLite connections come back without a rollback's trip when they hold no transaction,
    and are rolled back when they do (a write lock left held would stall every writer)."""
    from sqlalchemy.util import greenlet_spawn

    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}", pool_size=1, max_overflow=0)
    try:
        raw = await db.engine.raw_connection()
        await raw.driver_connection.execute("BEGIN IMMEDIATE")
        await greenlet_spawn(raw.close)
        raw = await db.engine.raw_connection()  # the same connection, rolled back
        assert not raw.driver_connection.in_transaction
        await greenlet_spawn(raw.close)
        async with db.transaction() as conn:  # and the file's write lock is free
            await conn.execute(sa.text("CREATE TABLE t (id INTEGER)"))
    finally:
        await db.dispose()


def _typed_table(name: str, *, unique_status: bool = True) -> sa.Table:
    return sa.Table(
        name,
        sa.MetaData(),
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("at", Timestamp),
        sa.Column("amount", sa.Numeric(12, 2, asdecimal=True)),
        sa.Column("flag", sa.Boolean),
        sa.Column("doc", sa.JSON),
        sa.Column("day", sa.Date),
        sa.Column("n", sa.BigInteger),
        sa.Column("status", sa.String(20), unique=unique_status),
    )


async def test_prebuilt_writes_store_what_sqlalchemy_stores(database_url):
    """`Database.write` (on SQLite one trip to the driver's thread, on PostgreSQL on the
    driver's connection) stores every column type as SQLAlchemy does, all or nothing, and a
    refused write is SQLAlchemy's IntegrityError with nothing of the transaction left."""
    import datetime as dt
    from decimal import Decimal

    from sqlalchemy.exc import IntegrityError

    from plinth.db import Write

    db = Database(database_url)
    mine, theirs = _typed_table("write_mine"), _typed_table("write_theirs")

    def row(i: int) -> dict[str, object]:
        return {
            "id": f"r{i}",
            "at": dt.datetime(2026, 1, 1, 12, i, 7, 123456, tzinfo=dt.UTC),
            "amount": Decimal("12.30") + i,
            "flag": bool(i % 2),
            "doc": {"a": [1, i], "ü": None},
            "day": dt.date(2026, 1, 1 + i),
            "n": 10**12 + i,
            "status": f"s{i}",
        }

    try:
        async with db.transaction() as conn:
            for t in (mine, theirs):
                await conn.run_sync(lambda c, t=t: t.create(c))
            await conn.execute(theirs.insert(), [row(i) for i in range(4)])
        insert = Write(mine.insert(), row(0).keys())
        delete = Write(mine.delete().where(mine.c.id == sa.bindparam("gone")))
        assert insert.prepared(db.engine.dialect) is not None
        await db.write([(insert, [row(0)]), (insert, [row(1), row(2), row(3)])])
        await db.write([(delete, [{"gone": "r3"}]), (insert, [])])
        with pytest.raises(IntegrityError):  # r4 is new, r1 is there: neither is written
            await db.write([(insert, [row(4)]), (insert, [row(1)])])
        async with db.read() as conn:
            for t in (mine, theirs):  # the raw stored values, not only what comes back
                raw = await conn.execute(sa.text(f"SELECT * FROM {t.name} ORDER BY id"))
                stored = [tuple(r) for r in raw]
                if t is mine:
                    got = stored
                else:
                    expected = stored[:3]
        assert got == expected
        async with db.transaction() as conn:  # the file's write lock is free again
            await conn.execute(mine.delete())
    finally:
        async with db.transaction() as conn:
            for t in (mine, theirs):
                await conn.run_sync(lambda c, t=t: t.drop(c, checkfirst=True))
        await db.dispose()


async def test_a_write_given_up_before_its_commit_leaves_nothing(tmp_path) -> None:
    """A driver-side write (`Database.write`, SQLite) whose caller is cancelled while it waits
    for the file's lock (a request's time limit, another process writing) rolls back instead
    of committing later: the client told 504 does not find the record, nor does its retry
    make a second one. The cancellation is seen once the transaction is over."""
    import asyncio
    import sqlite3
    import time

    from plinth.db import Write
    from plinth.runtime.storage import TenantFile

    path = tmp_path / "t.db"
    table = sa.Table("r", sa.MetaData(), sa.Column("id", sa.String(32), primary_key=True))
    file = TenantFile(path, 2)
    try:
        async with file.transaction() as conn:
            await conn.run_sync(lambda c: table.create(c))
        other = sqlite3.connect(path, isolation_level=None)  # another process's write
        other.execute("BEGIN IMMEDIATE")

        async def commit_later() -> None:
            await asyncio.sleep(1.0)
            other.execute("COMMIT")

        releasing = asyncio.create_task(commit_later())
        began = time.monotonic()
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.2):
                await file.write([(Write(table.insert(), ["id"]), [{"id": "gave-up"}])])
        assert time.monotonic() - began >= 0.9  # over only when the thread was done with it
        await releasing
        assert other.execute("SELECT id FROM r").fetchall() == []
        await file.write([(Write(table.insert(), ["id"]), [{"id": "next"}])])  # the file works
        assert other.execute("SELECT id FROM r").fetchall() == [("next",)]
        other.close()
    finally:
        await file.dispose()


async def test_a_tenant_file_used_after_its_close_closes_again(tmp_path) -> None:
    """A request may hold a tenant file the LRU closes meanwhile and use it after: its
    connection, opened again, must come back and close, not stay open for good."""
    from plinth.runtime.storage import TenantFile

    file = TenantFile(tmp_path / "t.db", 2)
    idle: list[object] = []
    file.on_idle = idle.append
    async with file.read() as conn:
        await conn.execute(sa.text("SELECT 1"))
    assert idle == [file] and file.in_use == 0
    await file.dispose()  # the LRU closed it
    async with file.read() as conn:  # the request that held it goes on
        await conn.execute(sa.text("SELECT 1"))
        assert file.in_use == 1
    assert idle == [file, file] and file.in_use == 0  # its owner hears of it and closes it
    await file.dispose()


async def _notes_file(path, rows: int):  # type: ignore[no-untyped-def]
    """A tenant file holding `rows` notes, closed again: (its table, a read by id, a scan)."""
    from plinth.db import Query
    from plinth.runtime.storage import TenantFile

    table = sa.Table(
        "notes",
        sa.MetaData(),
        sa.Column("id", sa.String, primary_key=True),
        sa.Column("body", sa.String),
    )
    file = TenantFile(path, 2)
    async with file.transaction() as conn:
        await conn.run_sync(lambda c: table.create(c))
        await conn.execute(table.insert(), [{"id": f"n{i}", "body": f"b{i}"} for i in range(rows)])
    await file.dispose()
    by_id = Query(sa.select(table).where(table.c.id == sa.bindparam("id")))
    scan = Query(sa.select(table).where(table.c.body == sa.bindparam("body")))
    return by_id, scan


async def test_tenants_that_are_only_read_take_no_thread_each(tmp_path) -> None:
    """A tenant file's reads run on the event loop's thread (its open on one of a few threads
    kept for opening files): reading cold tenants starts no connection thread per tenant, and
    each file it opened closes with its owner."""
    import asyncio
    import os
    import threading

    from plinth import sqlite_files
    from plinth.runtime.storage import TenantFile

    paths = [tmp_path / f"t{i}.db" for i in range(13)]
    for path in paths:
        by_id, _scan = await _notes_file(path, 3)
    first = TenantFile(paths[0], 2)  # the executor's thread starts for the first open
    assert await first.fetch(by_id, {"id": "n1"}) == [{"id": "n1", "body": "b1"}]
    for _ in range(500):  # the writers' files took the spare thread, and another is being
        if not sqlite_files._spares._ready.empty():  # started for the next file: let it be
            break
        await asyncio.sleep(0.01)
    threads = threading.active_count()
    fds = len(os.listdir("/proc/self/fd"))
    files = [TenantFile(path, 2) for path in paths[1:]]
    try:
        for file in files * 3:
            assert await file.fetch(by_id, {"id": "n1"}) == [{"id": "n1", "body": "b1"}]
        assert threading.active_count() <= threads + 4  # the few that open files, at most
        assert all(file.in_use == 0 for file in files)
        assert len(os.listdir("/proc/self/fd")) > fds  # the files are open, here
    finally:
        for file in files:
            await file.dispose()
        await first.dispose()
    assert len(os.listdir("/proc/self/fd")) < fds  # and closed with their owners


async def test_a_long_read_leaves_the_event_loop_and_still_answers(tmp_path, monkeypatch) -> None:
    """A read that runs long on the loop's thread (an unindexed filter over many rows) is
    interrupted there and answered through the file's pool: the loop is held at most for
    `ReadsHere.STEPS` of SQLite's work, and the caller sees the rows all the same."""
    from plinth.runtime.storage import TenantFile
    from plinth.sqlite_reads import ReadsHere

    by_id, scan = await _notes_file(tmp_path / "t.db", 2000)
    monkeypatch.setattr(ReadsHere, "STEPS", 500)
    file = TenantFile(tmp_path / "t.db", 2)
    try:
        here = ReadsHere(str(tmp_path / "t.db"))
        dialect = file.engine.dialect
        assert await here.fetch(scan.prepared(dialect), {"body": "b1999"}) is None  # too long
        assert await here.fetch(by_id.prepared(dialect), {"id": "n7"}) == [
            {"id": "n7", "body": "b7"}
        ]
        await here.close()
        assert await file.fetch(scan, {"body": "b1999"}) == [{"id": "n1999", "body": "b1999"}]
        assert await file.fetch(by_id, {"id": "n7"}) == [{"id": "n7", "body": "b7"}]
    finally:
        await file.dispose()


async def test_a_read_of_long_text_or_a_like_pattern_leaves_the_event_loop(tmp_path) -> None:
    """A LIKE (a `contains` filter) over long text is one step of SQLite's machine per row,
    which no step count interrupts: a crafted pattern held the loop's thread for seconds. The
    loop's reader refuses LIKE patterns and long values; the pool answers them, off the loop."""
    from plinth.db import Query
    from plinth.runtime.storage import LONGEST_HERE, TenantFile
    from plinth.sqlite_reads import ReadsHere

    by_id, _scan = await _notes_file(tmp_path / "t.db", 3)
    table = by_id.stmt.get_final_froms()[0]
    long = "a" * 200_000
    file = TenantFile(tmp_path / "t.db", 2)
    async with file.transaction() as conn:
        await conn.execute(table.insert(), [{"id": "long", "body": long}])
    await file.dispose()
    contains = Query(
        sa.select(table.c.id).where(table.c.body.contains("a" * 5 + "b", autoescape=True))
    )
    file = TenantFile(tmp_path / "t.db", 2)
    try:
        here = ReadsHere(str(tmp_path / "t.db"), LONGEST_HERE)
        dialect = file.engine.dialect
        assert await here.fetch(contains.prepared(dialect), {}) is None  # through the pool
        assert await here.fetch(by_id.prepared(dialect), {"id": "long"}) is None  # too long
        assert await here.fetch(by_id.prepared(dialect), {"id": "n1"}) == [
            {"id": "n1", "body": "b1"}
        ]
        await here.close()
        assert await file.fetch(contains) == []
        assert await file.fetch(by_id, {"id": "long"}) == [{"id": "long", "body": long}]
    finally:
        await file.dispose()


async def test_writes_queued_behind_another_process_each_fail_in_about_the_busy_timeout(
    tmp_path, monkeypatch
) -> None:
    """Writes of one file queued while another process holds its write lock share a trip
    (`Database.write`, SQLite): when the first can't begin within SQLite's busy timeout,
    the others, queued as long, fail with it. Were each to wait its own busy timeout in
    turn, the last of n would hear after n timeouts (30 s each), every caller told only then."""
    import asyncio
    import sqlite3
    import time

    import plinth.db
    from plinth.db import Write

    pragmas = tuple(p for p in plinth.db.SQLITE_PRAGMAS if not p.startswith("busy_timeout="))
    monkeypatch.setattr(plinth.db, "SQLITE_PRAGMAS", (*pragmas, "busy_timeout=300"))
    path = tmp_path / "t.db"
    table = sa.Table("r", sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True))
    db = Database(f"sqlite+aiosqlite:///{path}")
    try:
        async with db.transaction() as conn:
            await conn.run_sync(lambda c: table.create(c))
        other = sqlite3.connect(path, isolation_level=None)  # another process's write
        other.execute("BEGIN IMMEDIATE")
        insert = Write(table.insert(), ["id"])
        began = time.monotonic()
        told: list[float] = []

        async def write(i: int) -> None:
            with pytest.raises(sa.exc.OperationalError, match="locked"):
                await db.write([(insert, [{"id": i}])])
            told.append(time.monotonic() - began)

        await asyncio.gather(*(write(i) for i in range(8)))
        other.execute("ROLLBACK")
        other.close()
        assert max(told) < 1.2, told  # not 8 x 0.3 s
        await db.write([(insert, [{"id": 99}])])  # the file works once it is free
    finally:
        await db.dispose()


async def test_a_write_that_cannot_have_the_writer_turn_in_time_fails(
    tmp_path, monkeypatch
) -> None:
    """A prebuilt write waiting longer than the turn's time limit (this process's turn held
    by a transaction: here its own caller's, which waits for it) fails as a writer waiting for
    the turn fails, "database is locked", rather than waiting for ever."""
    import asyncio

    import plinth.db
    from plinth.db import Write

    monkeypatch.setattr(plinth.db, "BUSY_SECONDS", 0.3)
    table = sa.Table("r", sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True))
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 't.db'}")
    try:
        async with db.transaction() as conn:
            await conn.run_sync(lambda c: table.create(c))
        insert = Write(table.insert(), ["id"])
        async with asyncio.timeout(5):
            with pytest.raises(sa.exc.OperationalError, match="locked"):
                async with db.transaction():
                    await db.write([(insert, [{"id": 1}])])
            await db.write([(insert, [{"id": 2}])])  # the next write has its turn
    finally:
        await db.dispose()


def insert_one(table: sa.Table) -> object:
    from plinth.db import Write

    return Write(table.insert(), ["id", "v"])


async def _two_writes_in_one_trip(db: Database, big: int) -> tuple[object, ...]:
    """A one-row write, then one of `big` rows, then another one-row write, all queued while
    this process's writer turn is held, so that they leave in one trip (`Database.write`,
    SQLite); the table, the insert and the three tasks."""
    import asyncio

    from plinth.db import Write

    table = sa.Table(
        "r", sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True), sa.Column("v", sa.Text)
    )
    async with db.transaction() as conn:
        await conn.run_sync(lambda c: table.create(c))
    insert = Write(table.insert(), ["id", "v"])
    rows = [{"id": i, "v": "x" * 100} for i in range(10, 10 + big)]
    async with db.writer():
        small = asyncio.create_task(db.write([(insert, [{"id": 1, "v": "a"}])]))
        bulk = asyncio.create_task(db.write([(insert, rows)]))
        after = asyncio.create_task(db.write([(insert, [{"id": 2, "v": "b"}])]))
        await asyncio.sleep(0.01)  # all three queued behind the turn
    return table, small, bulk, after


async def test_a_write_early_in_a_shared_trip_is_answered_when_it_commits(tmp_path) -> None:
    """Writes queued for one file share a trip to its thread, each its own transaction: the
    first is answered as soon as it commits, not when a bulk write behind it in the trip is
    done (a create would otherwise wait for somebody's import)."""
    import asyncio

    db = Database(f"sqlite+aiosqlite:///{tmp_path / 't.db'}")
    try:
        table, small, bulk, after = await _two_writes_in_one_trip(db, 300_000)
        done, _ = await asyncio.wait([small, bulk], return_when=asyncio.FIRST_COMPLETED)
        assert done == {small}
        assert not bulk.done()
        await asyncio.gather(bulk, after)
        async with db.read() as conn:
            assert (await conn.execute(sa.select(sa.func.count()).select_from(table))).scalar() == (
                300_002
            )
    finally:
        await db.dispose()


async def test_a_trip_cut_short_by_a_stop_tells_each_write_what_became_of_it(tmp_path) -> None:
    """The process stopping while a shared trip runs: a write that committed is told it did
    (not that it was cancelled, which would make its caller retry a stored record); the one
    in flight is rolled back and the one not begun never runs, and both callers are told
    they were cancelled."""
    import asyncio

    db = Database(f"sqlite+aiosqlite:///{tmp_path / 't.db'}")
    try:
        table, small, bulk, after = await _two_writes_in_one_trip(db, 300_000)
        await asyncio.wait([small], timeout=5)
        assert db._trips is not None
        db._trips.cancel()  # as the process's stop does
        results = await asyncio.gather(small, bulk, after, return_exceptions=True)
        assert results[0] is None
        assert isinstance(results[1], asyncio.CancelledError)
        assert isinstance(results[2], asyncio.CancelledError)
        async with db.read() as conn:
            assert [r.id for r in await conn.execute(sa.select(table.c.id))] == [1]
        await asyncio.wait_for(db.write([(insert_one(table), [{"id": 3, "v": "c"}])]), 5)
    finally:
        await db.dispose()


async def test_writes_sharing_a_trip_each_keep_their_own_outcome(tmp_path) -> None:
    """Small writes queued for one file meanwhile leave in one trip and commit together, yet
    each ends as it would alone: one with a key another already holds fails (the caller's
    409), the others are stored, and a caller that gave up while the file was locked by
    another process finds nothing of its write while the others of its trip are stored."""
    import asyncio
    import sqlite3

    from plinth.db import Write

    db = Database(f"sqlite+aiosqlite:///{tmp_path / 't.db'}")
    table = sa.Table(
        "r", sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True), sa.Column("v", sa.Text)
    )
    insert = Write(table.insert(), ["id", "v"])

    async def stored() -> list[int]:
        async with db.read() as conn:
            return [r.id for r in await conn.execute(sa.select(table.c.id).order_by(table.c.id))]

    try:
        async with db.transaction() as conn:
            await conn.run_sync(lambda c: table.create(c))
        await db.write([(insert, [{"id": 1, "v": "first"}])])
        async with db.writer():  # all queued behind the turn: they leave in one trip
            writes = [
                asyncio.create_task(db.write([(insert, [{"id": i, "v": "x"}])]))
                for i in (2, 1, 3)  # 1 is taken
            ]
            await asyncio.sleep(0.01)
        results = await asyncio.gather(*writes, return_exceptions=True)
        assert results[0] is None and results[2] is None
        assert isinstance(results[1], sa.exc.IntegrityError)
        assert await stored() == [1, 2, 3]

        other = sqlite3.connect(tmp_path / "t.db", isolation_level=None)  # another process
        other.execute("BEGIN IMMEDIATE")
        writes = [
            asyncio.create_task(db.write([(insert, [{"id": i, "v": "y"}])])) for i in (4, 5, 6)
        ]
        await asyncio.sleep(0.2)  # sent together; the trip waits for the file's lock
        writes[1].cancel()  # the caller gives up (its request's time limit)
        await asyncio.sleep(0.2)
        other.execute("COMMIT")
        other.close()
        results = await asyncio.gather(*writes, return_exceptions=True)
        assert results[0] is None and results[2] is None
        assert isinstance(results[1], asyncio.CancelledError)
        assert await stored() == [1, 2, 3, 4, 6]
    finally:
        await db.dispose()


async def test_a_value_the_driver_cannot_bind_fails_only_its_own_write_of_a_trip(
    tmp_path,
) -> None:
    """A write whose value SQLite cannot take (an integer past 64 bits: Python's sqlite3
    raises OverflowError, not one of its own errors) fails alone; the writes sharing its trip,
    before and after it, are stored and told so, as each would be alone."""
    import asyncio

    from plinth.db import Write

    db = Database(f"sqlite+aiosqlite:///{tmp_path / 't.db'}")
    table = sa.Table(
        "r", sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True), sa.Column("v", sa.Text)
    )
    insert = Write(table.insert(), ["id", "v"])
    try:
        async with db.transaction() as conn:
            await conn.run_sync(lambda c: table.create(c))
        async with db.writer():  # all queued behind the turn: they leave in one trip
            writes = [
                asyncio.create_task(db.write([(insert, [{"id": i, "v": "x"}])]))
                for i in (1, 2**64, 3)
            ]
            await asyncio.sleep(0.01)
        results = await asyncio.gather(*writes, return_exceptions=True)
        assert results[0] is None and results[2] is None
        assert isinstance(results[1], OverflowError)
        async with db.read() as conn:
            assert [r.id for r in await conn.execute(sa.select(table.c.id))] == [1, 3]
    finally:
        await db.dispose()
