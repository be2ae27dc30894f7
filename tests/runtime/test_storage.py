"""Tenant data lives apart (a file per tenant on SQLite, a schema on PostgreSQL), and a publish
that fails after the migration leaves the tenant's tables as they were."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
import sqlalchemy as sa

from plinth.errors import PublishRefused
from plinth.metadata import publish as pipeline
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
