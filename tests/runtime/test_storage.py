"""Tenant data lives apart (a file per tenant on SQLite, a schema on PostgreSQL), and a publish
that fails after the migration leaves the tenant's tables as they were."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy import event

from plinth.db import Database
from plinth.errors import PublishRefused
from plinth.metadata import publish as pipeline
from plinth.runtime import storage as storage_module
from plinth.runtime.storage import TenantIsolationError, TenantSchema
from plinth.server import Platform
from tests.helpers import CLAIMS, make_app, make_tenant, publish


async def test_each_tenant_has_its_own_file_or_schema(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    for slug in ("acme", "globex"):
        await make_tenant(client, slug)
        await make_app(client, slug, "claims")
        assert (await publish(client, slug, "claims", CLAIMS)).status_code == 201
    acme = await platform.tenants.find("acme")
    globex = await platform.tenants.find("globex")
    assert acme and globex
    storage = platform.records.storage
    if platform.db.is_sqlite:
        files = sorted(
            p.name for p in (platform.settings.data_dir / "tenants").iterdir() if p.suffix == ".db"
        )
        assert files == sorted([f"{acme.id}.db", f"{globex.id}.db"])
    else:
        async with platform.db.read() as conn:
            schemas = set(
                (
                    await conn.execute(
                        sa.text("SELECT schema_name FROM information_schema.schemata")
                    )
                ).scalars()
            )
        assert {storage.schema(acme), storage.schema(globex)} <= schemas
    await client.post(
        "/api/t/acme/apps/claims/data/policyholder", json={"full_name": "Ada", "country": "DE"}
    )
    r = await client.get("/api/t/globex/apps/claims/data/policyholder")
    assert r.json()["items"] == []


class Explode:
    name = "explode"

    async def run(self, ctx: pipeline.PublishContext, result: pipeline.StepResult) -> None:
        raise PublishRefused("a later step refused", path="explode")


@pytest.fixture
def exploding_step(platform: Platform) -> Iterator[None]:
    platform.metadata.publishing.register("migrate", Explode())  # after the migration
    try:
        yield
    finally:
        platform.metadata.publishing.unregister("explode")


async def test_failure_after_migrate_leaves_tables_untouched(
    client: httpx.AsyncClient,
    platform: Platform,
    exploding_step: None,
) -> None:
    await make_tenant(client, "acme")
    await make_app(client, "acme", "claims")
    r = await publish(client, "acme", "claims", CLAIMS)
    assert r.status_code == 409 and r.json()["path"] == "explode"
    tenant = await platform.tenants.find("acme")
    assert tenant is not None
    db = platform.records.storage.database(tenant)
    schema = platform.records.storage.schema(tenant)
    async with db.read() as conn:
        names = await conn.run_sync(lambda c: sa.inspect(c).get_table_names(schema=schema))
    assert names == []
    platform.metadata.publishing.unregister("explode")
    assert (await publish(client, "acme", "claims")).status_code == 201


async def _policyholders(client: httpx.AsyncClient, names: dict[str, str]) -> dict[str, str]:
    """A tenant per slug, each with the claims app and one policyholder named as given: the
    policyholders' ids by tenant."""
    ids = {}
    for slug, name in names.items():
        await make_tenant(client, slug)
        await make_app(client, slug, "claims")
        assert (await publish(client, slug, "claims", CLAIMS)).status_code == 201
        r = await client.post(
            f"/api/t/{slug}/apps/claims/data/policyholder",
            json={"full_name": name, "country": "DE"},
        )
        assert r.status_code == 201, r.text
        ids[slug] = r.json()["id"]
    return ids


async def test_postgresql_tenants_share_statements_never_rows(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    """On PostgreSQL two tenants on the same app version run the same statement text (one
    prepared statement per pooled connection, not one per tenant), and a connection switched
    back and forth between them only ever reaches the tenant it was taken for: through
    SQLAlchemy, through the driver (`fetch`, the lean read route's path) and over HTTP."""
    if platform.db.is_sqlite:
        pytest.skip("a file per tenant on SQLite: nothing shared to check")
    names = {"acme": "Ada", "globex": "Grace"}
    ids = await _policyholders(client, names)
    for _round in range(2):  # the lean read route, alternately, on the platform's pool
        for slug, name in names.items():
            base = f"/api/t/{slug}/apps/claims/data/policyholder"
            r = await client.get(base)
            assert [i["full_name"] for i in r.json()["items"]] == [name], r.text
            r = await client.get(f"{base}/{ids[slug]}")
            assert r.json()["full_name"] == name, r.text
            other = next(i for s, i in ids.items() if s != slug)
            assert (await client.get(f"{base}/{other}")).status_code == 404
    tenants = {slug: await platform.tenants.find(slug) for slug in names}
    storage = platform.records.storage
    # One connection (a pool of one), its search path switching between the two tenants.
    solo = Database(platform.db.url, pool_size=1, max_overflow=0)
    backends = set()

    async def prepared(conn: Any, like: str) -> int:
        query = sa.text("SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE :s")
        return int((await conn.execute(query, {"s": like})).scalar_one())

    try:
        for _round in range(3):
            for slug, tenant in tenants.items():
                assert tenant is not None
                app = await platform.records.compiled(tenant, "claims")
                entity = app.entities["policyholder"]
                schema = storage.schema(tenant)
                assert schema is not None
                db = TenantSchema(solo, schema)
                [row] = await db.fetch(entity.one, {"record_id": ids[slug]})  # the driver's
                assert row["full_name"] == names[slug]
                other = next(i for s, i in ids.items() if s != slug)
                assert await db.fetch(entity.one, {"record_id": other}) == []
                async with db.statement() as conn:
                    rows = (await conn.execute(sa.select(entity.table.c.full_name))).all()
                    shared = await prepared(
                        conn, "%SELECT claims__policyholder.full_name %FROM claims__policyholder"
                    )
                    one = await prepared(
                        conn, "/* v% */ SELECT %WHERE claims__policyholder.id = $1%"
                    )
                    pid = (await conn.execute(sa.text("SELECT pg_backend_pid()"))).scalar()
                    backends.add(pid)
                assert [r.full_name for r in rows] == [names[slug]]
                # The same text for both tenants (their tables' shape), prepared once.
                assert (shared, one) == (1, 1)
        assert len(backends) == 1
        # A connection whose search path is not the tenant's (here: the switch at checkout
        # left out) runs none of that tenant's statements, on either path.
        pool = solo.engine.sync_engine.pool
        event.remove(pool, "checkout", storage_module._on_checkout)
        try:
            last = TenantSchema(solo, storage.schema(tenants["acme"]) or "")
            with pytest.raises(TenantIsolationError):
                await last.fetch(entity.one, {"record_id": ids["acme"]})
        finally:
            event.listen(pool, "checkout", storage_module._on_checkout)
    finally:
        await solo.dispose()
    # A statement on tenant tables on a connection not taken for a tenant is refused.
    with pytest.raises(TenantIsolationError):
        async with platform.db.statement() as conn:
            await conn.execute(sa.select(entity.table.c.full_name))
    with pytest.raises(TenantIsolationError):
        await platform.db.fetch(entity.one, {"record_id": ids["acme"]})


async def test_postgresql_a_connection_taken_ahead_is_claimed_or_given_back(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    """On PostgreSQL, the gateway reading a cold tenant's settings for a caller it knows takes
    a pooled connection set to the tenant's schema ahead of the request's first read: that
    read claims it (and reads its own tenant's rows only); one nobody claims goes back to
    the pool within a second or so."""
    if platform.db.is_sqlite:
        pytest.skip("SQLite: the tenant's file is opened ahead instead (tests/tenancy)")
    ids = await _policyholders(client, {"acme": "Ada", "globex": "Grace"})
    urls = {slug: f"/api/t/{slug}/apps/claims/data/policyholder/{i}" for slug, i in ids.items()}
    globex = await platform.tenants.find("globex")
    assert globex is not None
    reserved = platform.records.storage.reserved
    gates = platform.quotas.gateway
    platform.tokens._known.trust = 60.0  # the admin's token stays trusted however slow a round
    pool = platform.db.engine.sync_engine.pool
    for _round in range(3):
        gates._by_slug.forget()
        # globex's app document reads no record: its connection is left unclaimed.
        assert (await client.get("/api/t/globex/apps/claims")).status_code == 200
        assert list(reserved._for) == [platform.records.storage.schema(globex)]
        r = await client.get(urls["acme"])  # acme's cold read claims acme's connection
        assert r.status_code == 200, r.text
        assert r.json()["full_name"] == "Ada"
        for _ in range(60):
            if not reserved._for and pool.checkedout() == 0:
                break
            await asyncio.sleep(0.05)
        assert not reserved._for
        assert pool.checkedout() == 0
