"""The storage underneath: migrations are idempotent and DDL is transactional."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from plinth.db import Database


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
