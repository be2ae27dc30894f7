"""Field-encryption keys shared by several nodes on one database (two FieldKeys stand in for
two server processes, each with its own cache), driven step by step: no sleeps."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from plinth import envelope
from plinth.db import Database, utcnow
from plinth.errors import Unavailable
from plinth.governance.compliance.keys import FieldKeys
from plinth.tenancy.store import tenants

AAD = b"t1\x00app\x00entity\x00field\x00rec1"


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    db = Database(database_url)
    async with db.transaction() as conn:  # the key tables refer to the tenant
        await conn.execute(
            tenants.insert().values(
                id="t1", slug="t1", name="T1", region="eu", settings={}, created_at=utcnow()
            )
        )
    try:
        yield db
    finally:
        await db.dispose()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_a_node_with_a_stale_tenant_key_never_seals_with_a_rotated_away_key(
    db: Database,
) -> None:
    master = envelope.new_key()
    a, b = FieldKeys(db, lambda: master), FieldKeys(db, lambda: master)
    ref = await a.ref("t1", "v:alice@example.com")  # node A caches tenant key v1
    assert (await b.rotate("t1"))["version"] == 2  # node B rotates: v1 is gone
    sealed = await a.seal("t1", ref, b'"secret"', AAD)  # A still holds v1 in its cache
    fresh = FieldKeys(db, lambda: master)  # any node, any time later
    assert await fresh.open("t1", sealed, AAD) == b'"secret"'
    assert (await b.rotate("t1"))["subject_keys"] == 1  # rotation keeps working
    assert await FieldKeys(db, lambda: master).open("t1", sealed, AAD) == b'"secret"'


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_after_erasure_another_node_never_seals_with_the_destroyed_key(db: Database) -> None:
    master = envelope.new_key()
    a, b = FieldKeys(db, lambda: master), FieldKeys(db, lambda: master)
    ref = await a.ref("t1", "v:alice@example.com")
    before = await b.seal("t1", ref, b'"old"', AAD)  # node B caches the subject key
    assert await a.destroy("t1", [ref]) == 1  # erased on node A
    after = await b.seal("t1", ref, b'"written after erasure"', AAD)
    fresh = FieldKeys(db, lambda: master)
    assert await fresh.open("t1", after, AAD) == b'"written after erasure"'  # not lost
    with pytest.raises(Unavailable):  # the subject has a new key: the erased value stays gone
        await fresh.open("t1", before, AAD)
