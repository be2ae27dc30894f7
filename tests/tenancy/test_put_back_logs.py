"""Putting a closed tenant file's `-wal` and `-shm` back must never touch a file this
process still (or again) has open. Closing any descriptor of a file drops every POSIX lock the
process holds on it (fcntl semantics), and SQLite keeps its WAL locks (the writer's lock, the
readers' marks, the "in use" byte) as such locks on the `-shm`: another process
(`plinth serve --workers N`) then writes beside a transaction still open here."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from plinth import sqlite_reads
from plinth.outbox import ANY_ROW
from plinth.server import Platform
from tests.tenancy.test_cold_tenants import _with_notes

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

OTHER_WORKER = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=0)
try:
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("INSERT INTO probe VALUES ('other worker')")
    conn.execute("COMMIT")
    print("written")
except sqlite3.OperationalError as exc:
    print(exc)
"""


def _other_worker_writes(path: Path) -> str:
    """What another process writing to `path` (a second `plinth serve` worker) meets."""
    run = subprocess.run(
        [sys.executable, "-c", OTHER_WORKER, str(path)], capture_output=True, text=True
    )
    return run.stdout.strip() or run.stderr


async def _both_kept(db: object, other: str) -> None:
    """Each write the two workers were told was committed is in the file."""
    async with db.read() as conn:  # type: ignore[attr-defined]
        kept = sorted((await conn.execute(sa.text("SELECT v FROM probe"))).scalars())
    told = ["this worker"] + (["other worker"] if other == "written" else [])
    assert (other, kept) == ("database is locked", told)


async def _blocked(pool: object, stuck: threading.Event) -> list[asyncio.Future[bool]]:
    loop = asyncio.get_running_loop()
    return [loop.run_in_executor(pool, stuck.wait, 30) for _ in range(pool._max_workers)]  # type: ignore[attr-defined]


async def test_a_sweeps_peek_leaves_the_lock_of_a_transaction_opened_meanwhile(
    platform: Platform, client: httpx.AsyncClient
) -> None:
    await _with_notes(client, "acme")
    storage = platform.records.storage
    await storage.files.close()
    tenant = await platform.tenants.find("acme")
    assert tenant is not None
    stuck = threading.Event()
    blocked = await _blocked(sqlite_reads._OPENING, stuck)  # a busy disk: the peek's open waits
    peeking = asyncio.create_task(storage.peek(tenant, ANY_ROW))
    await asyncio.sleep(0.05)  # the sweep's peek found the file closed and is opening it
    db = storage.database(tenant)  # meanwhile a request opens the file for good, and writes
    path = Path(db.url.split("///", 1)[1])
    async with db.transaction() as conn:
        await conn.execute(sa.text("CREATE TABLE probe (v TEXT)"))
    async with db.transaction() as conn:
        await conn.execute(sa.text("INSERT INTO probe VALUES ('this worker')"))
        assert await asyncio.to_thread(_other_worker_writes, path) == "database is locked"
        stuck.set()
        await asyncio.gather(*blocked)
        assert await peeking is not None  # the peek closes its reader, puts the logs back
        # The transaction still holds the file's write lock: another worker must wait.
        other = await asyncio.to_thread(_other_worker_writes, path)
    await _both_kept(db, other)


async def test_an_evicted_files_put_back_leaves_the_lock_of_its_reopened_file(
    platform: Platform, client: httpx.AsyncClient
) -> None:
    await _with_notes(client, "acme", "globex")
    storage = platform.records.storage
    files = storage.files
    await files.close()
    files.bound = 1
    acme, globex = [await platform.tenants.find(s) for s in ("acme", "globex")]
    assert acme is not None and globex is not None
    assert await storage.database(acme).fetch(ANY_ROW) is not None  # acme read: open
    stuck = threading.Event()
    blocked = await _blocked(sqlite_reads._CLOSING, stuck)  # closes are slow on a busy disk
    storage.database(globex)  # globex opens: acme, idle, is evicted, its close queued
    assert len(files._closing) == 1
    db = storage.database(acme)  # acme asked again: opened anew while its old close waits
    path = Path(db.url.split("///", 1)[1])
    async with db.transaction() as conn:
        await conn.execute(sa.text("CREATE TABLE probe (v TEXT)"))
    async with db.transaction() as conn:
        await conn.execute(sa.text("INSERT INTO probe VALUES ('this worker')"))
        assert await asyncio.to_thread(_other_worker_writes, path) == "database is locked"
        stuck.set()
        await asyncio.gather(*blocked, *files._closing)  # the old file closed, logs put back
        other = await asyncio.to_thread(_other_worker_writes, path)
    await _both_kept(db, other)


def _open_fds() -> int:
    return len(list(Path("/proc/self/fd").iterdir()))


async def test_cold_tenants_wait_for_evicted_files_to_close_when_closes_lag(
    platform: Platform, client: httpx.AsyncClient
) -> None:
    """The bound of open files keeps a node within its open-files limit
    (`default_open_bound`), and a file evicted but not yet closed still holds its
    descriptors. When closes lag (a busy disk: they have threads of their own), cold tenants'
    opens wait for them rather than pile evicted files up past the bound; once the closes
    run, every read is answered."""
    slugs = [f"t{i}" for i in range(24)]
    await _with_notes(client, *slugs)
    storage = platform.records.storage
    files = storage.files
    await files.close()
    files.bound = 4
    tenants = [await platform.tenants.find(s) for s in slugs]
    before = _open_fds()
    stuck = threading.Event()
    blocked = await _blocked(sqlite_reads._CLOSING, stuck)
    reads = []
    try:
        for tenant in tenants:  # cold tenants read, one after another, none waited for long
            assert tenant is not None
            reads.append(asyncio.create_task(storage.database(tenant).fetch(ANY_ROW)))
            await asyncio.wait(reads[-1:], timeout=0.2)
        held = _open_fds() - before
        assert held <= 3 * (files.bound + 3), f"{held} more descriptors with closes stuck"
        assert not all(r.done() for r in reads)  # the later ones wait for room
    finally:
        stuck.set()
        await asyncio.gather(*blocked)
    answered = await asyncio.wait_for(asyncio.gather(*reads), 30)
    assert all(rows is not None for rows in answered)
    await files.close()


async def test_a_symlinked_tenant_files_logs_are_put_back_beside_its_target(
    database_url: str, tmp_path: Path
) -> None:
    """SQLite keeps the logs of a file reached through a symlink beside the file itself (an
    operator moved a large tenant to another disk and linked it back)."""
    (tmp_path / "disk2").mkdir()
    (tmp_path / "tenants").mkdir()
    target, link = tmp_path / "disk2" / "t.db", tmp_path / "tenants" / "t.db"
    link.symlink_to(target)
    conn = sqlite3.connect(link, isolation_level=None)
    conn.executescript("PRAGMA journal_mode=WAL; CREATE TABLE t (v); INSERT INTO t VALUES (1);")
    conn.close()
    await sqlite_reads.keep_logs(link.as_posix())
    assert sorted(p.name for p in link.parent.iterdir()) == ["t.db"]
    assert sorted(p.name for p in target.parent.iterdir()) == ["t.db", "t.db-shm", "t.db-wal"]
