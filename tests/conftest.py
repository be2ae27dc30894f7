"""Shared fixtures: every storage test runs on SQLite and on PostgreSQL.

`PLINTH_TEST_DATABASES=sqlite` (or `postgresql`) narrows the run; CI runs both. PostgreSQL
tests each get a throw-away database on `PLINTH_TEST_PG_URL` (default: local, user postgres).
"""

from __future__ import annotations

import asyncio
import os
import queue
import secrets
import shutil
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from plinth.db import Database
from plinth.extensions.build import default_cache_dir
from plinth.server import Platform, create_app
from plinth.settings import Settings
from tests.integration.remote import Remote
from tests.integration.remote import start as start_remote
from tests.scheduling import longest_first

PG_ADMIN_URL = os.environ.get("PLINTH_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
DATABASES = os.environ.get("PLINTH_TEST_DATABASES", "sqlite,postgresql").split(",")
ADMIN_TOKEN = "plt_test_admin_token_0123456789abcdef"
# Plugin builds (componentize-py: seconds and hundreds of MB each) and their compiled artifacts
# are cached by content hash in the user's cache, like `plinth demo` does, and shared by
# tests/extensions and every test that loads the demo (which installs the fraud scorer): a build
# happens once per source change on a machine, not per test nor per checkout.
os.environ.setdefault("PLINTH_CACHE_DIR", str(default_cache_dir()))
# The test suite's remote services listen on 127.0.0.1: let the SSRF guard reach them (every
# Settings built in tests, and servers started as subprocesses, read it from the environment).
os.environ.setdefault("PLINTH_EGRESS_ALLOW", "127.0.0.0/8,::1/128")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    longest_first(items)  # the longest modules start first (tests/scheduling.py)


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


def _pg_url(database: str) -> str:
    return _pg_dsn(database).replace("postgresql://", "postgresql+asyncpg://", 1)


async def _migrate(url: str) -> None:
    db = Database(url)
    try:
        await db.migrate()
    finally:
        await db.dispose()


class _Dropper:
    """Drops used PostgreSQL databases on a background thread.

    DROP DATABASE waits for a checkpoint (up to a second here); the next test need not wait for it.
    """

    def __init__(self) -> None:
        self.queue: queue.Queue[str | None] = queue.Queue()
        self.thread = threading.Thread(target=self._run, name="pg-dropper", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while (name := self.queue.get()) is not None:
            asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

    def close(self) -> None:
        self.queue.put(None)
        self.thread.join()


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An SQLite file with every migration applied, copied per test (migrating takes ~0.3 s)."""
    path = tmp_path_factory.mktemp("template") / "plinth.db"
    asyncio.run(_migrate(f"sqlite+aiosqlite:///{path}"))
    return path


@pytest.fixture(scope="session")
def _pg_template() -> Iterator[tuple[str, _Dropper]]:
    """A migrated PostgreSQL database that each test's database is created from (~1 s saved)."""
    name = f"plinth_template_{secrets.token_hex(6)}"
    asyncio.run(_pg_admin(f'CREATE DATABASE "{name}"'))
    dropper = _Dropper()
    try:
        asyncio.run(_migrate(_pg_url(name)))
        yield name, dropper
    finally:
        dropper.queue.put(name)
        dropper.close()


@pytest.fixture(params=[d for d in ("sqlite", "postgresql") if d in DATABASES])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh database with the platform's tables: an SQLite file or a new PostgreSQL database.

    Both are copies of a template migrated once per session; `Platform.start` finds them current.
    """
    if request.param == "sqlite":
        shutil.copyfile(request.getfixturevalue("_sqlite_template"), tmp_path / "plinth.db")
        yield f"sqlite+aiosqlite:///{tmp_path / 'plinth.db'}"
        return
    template, dropper = request.getfixturevalue("_pg_template")
    name = f"plinth_test_{secrets.token_hex(6)}"
    asyncio.run(_pg_admin(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
    try:
        yield _pg_url(name)
    finally:
        dropper.queue.put(name)


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        database_url=database_url,
        admin_token=ADMIN_TOKEN,
        embedded_worker=False,
    )


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
    async with httpx.AsyncClient(
        transport=transport,
        base_url="http://plinth.test",
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
    ) as c:
        yield c


@pytest.fixture
async def anon(platform: Platform) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client with no credentials."""
    transport = httpx.ASGITransport(app=create_app(platform=platform))
    async with httpx.AsyncClient(transport=transport, base_url="http://plinth.test") as c:
        yield c


@pytest.fixture
def remote() -> Iterator[Remote]:
    """A real remote HTTP service on 127.0.0.1 (OpenAPI, OAuth2, webhooks: tests/integration)."""
    found = start_remote()
    try:
        yield found
    finally:
        assert found.server is not None
        found.server.shutdown()
        found.server.server_close()
