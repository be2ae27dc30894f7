"""Shared fixtures: every storage test runs on SQLite and on PostgreSQL.

`PLINTH_TEST_DATABASES=sqlite` (or `postgresql`) narrows the run; CI runs both. PostgreSQL
tests each get a throw-away database on `PLINTH_TEST_PG_URL` (default: local, user postgres).
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from plinth.server import Platform, create_app
from plinth.settings import Settings

PG_ADMIN_URL = os.environ.get("PLINTH_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
DATABASES = os.environ.get("PLINTH_TEST_DATABASES", "sqlite,postgresql").split(",")
ADMIN_TOKEN = "plt_test_admin_token_0123456789abcdef"
# The test suite's remote services listen on 127.0.0.1: let the SSRF guard reach them (every
# Settings built in tests, and servers started as subprocesses, read it from the environment).
os.environ.setdefault("PLINTH_EGRESS_ALLOW", "127.0.0.0/8,::1/128")


def _pg_dsn(database: str) -> str:
    base, _, _ = PG_ADMIN_URL.rpartition("/")
    return f"{base}/{database}"


async def _pg_admin(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(PG_ADMIN_URL)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture(params=[d for d in ("sqlite", "postgresql") if d in DATABASES])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database URL: an SQLite file, or a new PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'plinth.db'}"
        return
    name = f"plinth_test_{secrets.token_hex(6)}"
    asyncio.run(_pg_admin(f'CREATE DATABASE "{name}"'))
    try:
        yield _pg_dsn(name).replace("postgresql://", "postgresql+asyncpg://", 1)
    finally:
        asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", database_url=database_url,
                    admin_token=ADMIN_TOKEN, embedded_worker=False)


@pytest.fixture
async def platform(settings: Settings) -> AsyncIterator[Platform]:
    """A started platform on a fresh database."""
    platform = Platform(settings)
    await platform.start()
    try:
        yield platform
    finally:
        await platform.stop()


@pytest.fixture
async def client(platform: Platform) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client for the server of `platform`, authenticated as platform admin."""
    app = create_app(platform=platform)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://plinth.test",
                                 headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}) as c:
        yield c


@pytest.fixture
async def anon(platform: Platform) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client with no credentials."""
    transport = httpx.ASGITransport(app=create_app(platform=platform))
    async with httpx.AsyncClient(transport=transport, base_url="http://plinth.test") as c:
        yield c
