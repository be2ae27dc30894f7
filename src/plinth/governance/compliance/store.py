"""Compliance tables: waivers, and the result of the check of each published version."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from plinth.db import Timestamp, platform_metadata
from plinth.governance.compliance.models import Waiver

waivers = sa.Table(
    "compliance_waivers",
    platform_metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("tenant_id", sa.String(32), nullable=False),
    sa.Column("app", sa.String(40), nullable=False),
    sa.Column("rule", sa.String(80), nullable=False),
    sa.Column("path", sa.String(300), nullable=True),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("by", sa.String(200), nullable=False),
    sa.Column("until", Timestamp, nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
)

checks = sa.Table(
    "compliance_checks",
    platform_metadata,
    sa.Column("tenant_id", sa.String(32), primary_key=True),
    sa.Column("app", sa.String(40), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("hash", sa.String(64), nullable=False),
    sa.Column("packs", sa.JSON, nullable=False),
    sa.Column("violations", sa.JSON, nullable=False),
    sa.Column("by", sa.String(200), nullable=True),
    sa.Column("checked_at", Timestamp, nullable=False),
)

fixes = sa.Table(
    "compliance_fixes",
    platform_metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("tenant_id", sa.String(32), nullable=False),
    sa.Column("app", sa.String(40), nullable=False),
    sa.Column("revision", sa.Integer, nullable=False),
    sa.Column("patch", sa.JSON, nullable=False),
    sa.Column("rules", sa.JSON, nullable=False),
    sa.Column("by", sa.String(200), nullable=True),
    sa.Column("applied_at", Timestamp, nullable=False),
)


def _waiver(row: sa.Row) -> Waiver:
    return Waiver(
        row.id,
        row.tenant_id,
        row.app,
        row.rule,
        row.path,
        row.reason,
        row.by,
        row.until,
        row.created_at,
    )


async def insert_waiver(conn: AsyncConnection, waiver: Waiver) -> None:
    await conn.execute(
        waivers.insert().values(
            id=waiver.id,
            tenant_id=waiver.tenant_id,
            app=waiver.app,
            rule=waiver.rule,
            path=waiver.path,
            reason=waiver.reason,
            by=waiver.by,
            until=waiver.until,
            created_at=waiver.created_at,
        )
    )


async def waivers_of(conn: AsyncConnection, tenant_id: str, app: str | None = None) -> list[Waiver]:
    query = waivers.select().where(waivers.c.tenant_id == tenant_id)
    if app is not None:
        query = query.where(waivers.c.app == app)
    return [_waiver(r) for r in await conn.execute(query.order_by(waivers.c.created_at))]


async def record_check(
    conn: AsyncConnection,
    tenant_id: str,
    app: str,
    version: int,
    digest: str,
    packs: list[str],
    violations: list[dict[str, Any]],
    by: str | None,
    at: Any,
) -> None:
    await conn.execute(
        checks.insert().values(
            tenant_id=tenant_id,
            app=app,
            version=version,
            hash=digest,
            packs=packs,
            violations=violations,
            by=by,
            checked_at=at,
        )
    )


async def last_check(conn: AsyncConnection, tenant_id: str, app: str) -> sa.Row | None:
    query = (
        checks.select()
        .where(checks.c.tenant_id == tenant_id, checks.c.app == app)
        .order_by(checks.c.version.desc())
        .limit(1)
    )
    return (await conn.execute(query)).first()


async def record_fix(conn: AsyncConnection, **values: Any) -> None:
    await conn.execute(fixes.insert().values(**values))


async def fixes_of(conn: AsyncConnection, tenant_id: str, app: str) -> list[dict[str, Any]]:
    query = (
        fixes.select()
        .where(fixes.c.tenant_id == tenant_id, fixes.c.app == app)
        .order_by(fixes.c.applied_at)
    )
    return [
        {
            "revision": r.revision,
            "rules": r.rules,
            "patch": r.patch,
            "by": r.by,
            "applied_at": r.applied_at.isoformat(),
        }
        for r in await conn.execute(query)
    ]


# -- field encryption keys (envelope: master -> tenant key -> subject key -> field) --------

tenant_keys = sa.Table(
    "compliance_tenant_keys",
    platform_metadata,
    sa.Column("tenant_id", sa.String(32), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("wrapped", sa.LargeBinary, nullable=False),  # by the master key
    sa.Column("salt", sa.LargeBinary, nullable=False),  # sealed by the master key
    sa.Column("master_id", sa.String(16), nullable=False),
    sa.Column("active", sa.Boolean, nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
)

subject_keys = sa.Table(
    "compliance_subject_keys",
    platform_metadata,
    sa.Column("tenant_id", sa.String(32), primary_key=True),
    sa.Column("ref", sa.String(64), primary_key=True),  # HMAC of the subject, never its value
    sa.Column("key_version", sa.Integer, nullable=False),  # of the tenant key wrapping it
    sa.Column("wrapped", sa.LargeBinary, nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
)
