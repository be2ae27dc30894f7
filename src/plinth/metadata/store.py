"""Tables and queries of the metadata repository."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from plinth.db import Timestamp, platform_metadata
from plinth.metadata.models import App, Draft, Version

apps = sa.Table(
    "apps",
    platform_metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("tenant_id", sa.String(32), nullable=False),
    sa.Column("slug", sa.String(40), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("active_version", sa.Integer),
    sa.Column("created_at", Timestamp, nullable=False),
)
drafts = sa.Table(
    "drafts",
    platform_metadata,
    sa.Column("app_id", sa.String(32), primary_key=True),
    sa.Column("body", sa.JSON, nullable=False),
    sa.Column("revision", sa.Integer, nullable=False),
    sa.Column("updated_by", sa.String(200)),
    sa.Column("updated_at", Timestamp, nullable=False),
)
versions = sa.Table(
    "versions",
    platform_metadata,
    sa.Column("app_id", sa.String(32), primary_key=True),
    sa.Column("number", sa.Integer, primary_key=True),
    sa.Column("hash", sa.String(64), nullable=False),
    sa.Column("body", sa.JSON, nullable=False),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("created_by", sa.String(200)),
    sa.Column("created_at", Timestamp, nullable=False),
)


def _app(row: Any) -> App:
    return App(
        row.id,
        row.tenant_id,
        row.slug,
        row.name,
        row.description,
        row.active_version,
        row.created_at,
    )


def _version(row: Any) -> Version:
    return Version(
        row.app_id, row.number, row.hash, row.body, row.message, row.created_by, row.created_at
    )


as_version = _version  # for readers that select whole `versions` rows themselves


async def insert_app(conn: AsyncConnection, app: App) -> None:
    await conn.execute(
        apps.insert().values(
            id=app.id,
            tenant_id=app.tenant_id,
            slug=app.slug,
            name=app.name,
            description=app.description,
            active_version=None,
            created_at=app.created_at,
        )
    )


async def app_by_slug(
    conn: AsyncConnection, tenant_id: str, slug: str, *, lock: bool = False
) -> App | None:
    query = apps.select().where(apps.c.tenant_id == tenant_id, apps.c.slug == slug)
    if lock and conn.dialect.name == "postgresql":
        query = query.with_for_update()
    row = (await conn.execute(query)).first()
    return _app(row) if row else None


async def apps_of(conn: AsyncConnection, tenant_id: str) -> list[App]:
    query = apps.select().where(apps.c.tenant_id == tenant_id).order_by(apps.c.slug)
    return [_app(r) for r in await conn.execute(query)]


async def delete_app(conn: AsyncConnection, app_id: str) -> None:
    # children first: SQLite enforces the foreign keys too, but explicit is clearer
    await conn.execute(versions.delete().where(versions.c.app_id == app_id))
    await conn.execute(drafts.delete().where(drafts.c.app_id == app_id))
    await conn.execute(apps.delete().where(apps.c.id == app_id))


async def set_active(conn: AsyncConnection, app_id: str, number: int | None) -> None:
    await conn.execute(apps.update().where(apps.c.id == app_id).values(active_version=number))


async def draft_of(conn: AsyncConnection, app_id: str) -> Draft | None:
    row = (await conn.execute(drafts.select().where(drafts.c.app_id == app_id))).first()
    if row is None:
        return None
    return Draft(row.app_id, row.body, row.revision, row.updated_at, row.updated_by)


async def write_draft(
    conn: AsyncConnection, draft: Draft, *, expected_revision: int | None
) -> bool:
    """Insert or update the draft; False if `expected_revision` is stale."""
    values = dict(
        body=draft.definition,
        revision=draft.revision,
        updated_at=draft.updated_at,
        updated_by=draft.updated_by,
    )
    if expected_revision is None:
        await conn.execute(drafts.insert().values(app_id=draft.app_id, **values))
        return True
    result = await conn.execute(
        drafts.update()
        .where(drafts.c.app_id == draft.app_id, drafts.c.revision == expected_revision)
        .values(**values)
    )
    return bool(result.rowcount)


async def insert_version(conn: AsyncConnection, version: Version) -> None:
    await conn.execute(
        versions.insert().values(
            app_id=version.app_id,
            number=version.number,
            hash=version.hash,
            body=version.definition,
            message=version.message,
            created_by=version.created_by,
            created_at=version.created_at,
        )
    )


async def version(conn: AsyncConnection, app_id: str, number: int) -> Version | None:
    row = (
        await conn.execute(
            versions.select().where(versions.c.app_id == app_id, versions.c.number == number)
        )
    ).first()
    return _version(row) if row else None


async def active_version(conn: AsyncConnection, tenant_id: str, slug: str) -> Version | None:
    """The active version of the app `slug` of a tenant, in one statement (None: no such app,
    or none published)."""
    row = (
        await conn.execute(
            sa.select(versions)
            .join(apps, versions.c.app_id == apps.c.id)
            .where(
                apps.c.tenant_id == tenant_id,
                apps.c.slug == slug,
                versions.c.number == apps.c.active_version,
            )
        )
    ).first()
    return _version(row) if row else None


async def latest_number(conn: AsyncConnection, app_id: str) -> int:
    value = (
        await conn.execute(
            sa.select(sa.func.max(versions.c.number)).where(versions.c.app_id == app_id)
        )
    ).scalar()
    return int(value or 0)


async def versions_of(conn: AsyncConnection, app_id: str) -> list[Version]:
    query = versions.select().where(versions.c.app_id == app_id).order_by(versions.c.number)
    return [_version(r) for r in await conn.execute(query)]
