"""Throw-away PostgreSQL databases, and what PostgreSQL counts per database while a side runs
(transactions, new sessions, time spent executing statements)."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import asyncpg

SERVER = "postgresql://postgres@127.0.0.1:5432"


@asynccontextmanager
async def throwaway(prefix: str, server: str = SERVER) -> AsyncIterator[str]:
    """A new, empty database (its URL), dropped with every session in it afterwards."""
    name = f"{prefix}_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(f"{server}/postgres")
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield f"{server}/{name}"
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@dataclass(frozen=True)
class DatabaseCounters:
    """pg_stat_database for one database: what its sessions did so far."""

    transactions: int
    sessions: int
    active_ms: float

    def __sub__(self, other: DatabaseCounters) -> DatabaseCounters:
        return DatabaseCounters(
            self.transactions - other.transactions,
            self.sessions - other.sessions,
            self.active_ms - other.active_ms,
        )


# Backends flush their statistics at most once a second, and a backend that goes idle less than
# a second after its last flush only flushes 10 s later (PostgreSQL 15's PGSTAT_IDLE_INTERVAL).
SETTLE_SECONDS = 11.0


async def counters(url: str) -> DatabaseCounters:
    """The database's counters now (call after SETTLE_SECONDS of quiet for exact figures)."""
    server, _, name = url.rpartition("/")
    conn = await asyncpg.connect(f"{server}/postgres")
    try:
        row = await conn.fetchrow(
            "SELECT xact_commit + xact_rollback AS xacts, sessions, active_time"
            " FROM pg_stat_database WHERE datname = $1",
            name,
        )
    finally:
        await conn.close()
    assert row is not None, name
    return DatabaseCounters(int(row["xacts"]), int(row["sessions"]), float(row["active_time"]))


async def settle() -> None:
    await asyncio.sleep(SETTLE_SECONDS)
