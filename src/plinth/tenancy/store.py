"""Tenant table and queries."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from plinth.db import Database, Query, Timestamp, platform_metadata
from plinth.tenancy.models import Tenant

tenants = sa.Table(
    "tenants",
    platform_metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("slug", sa.String(40), nullable=False, unique=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("region", sa.String(40), nullable=False),
    sa.Column("settings", sa.JSON, nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
)


def _tenant(row: Any) -> Tenant:
    return Tenant(
        id=row.id,
        slug=row.slug,
        name=row.name,
        region=row.region,
        created_at=row.created_at,
        settings=row.settings or {},
    )


async def insert(conn: AsyncConnection, tenant: Tenant) -> None:
    await conn.execute(
        tenants.insert().values(
            id=tenant.id,
            slug=tenant.slug,
            name=tenant.name,
            region=tenant.region,
            settings=tenant.settings,
            created_at=tenant.created_at,
        )
    )


async def by_slug(conn: AsyncConnection, slug: str) -> Tenant | None:
    row = (await conn.execute(tenants.select().where(tenants.c.slug == slug))).first()
    return _tenant(row) if row else None


BY_SLUG = Query(tenants.select().where(tenants.c.slug == sa.bindparam("slug")))


async def find(db: Database, slug: str) -> Tenant | None:
    """The tenant named `slug` in one statement on the driver's connection (the hot path)."""
    rows = await db.fetch(BY_SLUG, {"slug": slug})
    return _tenant(SimpleNamespace(**rows[0])) if rows else None


async def by_id(conn: AsyncConnection, tenant_id: str) -> Tenant | None:
    row = (await conn.execute(tenants.select().where(tenants.c.id == tenant_id))).first()
    return _tenant(row) if row else None


async def all_(conn: AsyncConnection, ids: set[str] | None = None) -> list[Tenant]:
    query = tenants.select().order_by(tenants.c.slug)
    if ids is not None:
        query = query.where(tenants.c.id.in_(ids))
    return [_tenant(r) for r in (await conn.execute(query))]


async def update_settings(conn: AsyncConnection, tenant_id: str, settings: dict) -> None:  # type: ignore[type-arg]
    await conn.execute(tenants.update().where(tenants.c.id == tenant_id).values(settings=settings))
