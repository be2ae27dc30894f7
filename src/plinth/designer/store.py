"""Tables of the designer: the update log of each draft room and its compacted snapshot."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from plinth.db import platform_metadata

# Every accepted update, in order. Compaction folds `data` into the snapshot and clears it,
# but keeps the row so history (who changed what, when) survives compaction.
updates = sa.Table(
    "designer_updates",
    platform_metadata,
    sa.Column(
        "id",
        sa.BigInteger().with_variant(sa.Integer, "sqlite"),
        primary_key=True,
        autoincrement=True,
    ),
    sa.Column("tenant_id", sa.String(32), nullable=False),
    sa.Column("app_id", sa.String(32), nullable=False),
    sa.Column("data", sa.LargeBinary),
    sa.Column("size", sa.Integer, nullable=False),
    sa.Column("author", sa.String(200), nullable=False),
    sa.Column("summary", sa.JSON, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_designer_updates_app", "app_id", "id"),
)
snapshots = sa.Table(
    "designer_snapshots",
    platform_metadata,
    sa.Column("app_id", sa.String(32), primary_key=True),
    sa.Column("tenant_id", sa.String(32), nullable=False),
    sa.Column("data", sa.LargeBinary, nullable=False),
    sa.Column("upto", sa.BigInteger, nullable=False),
    # the REST draft revision the room last wrote or took in (a REST change made while no
    # room was loaded is applied on the next load)
    sa.Column("draft_revision", sa.Integer, nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    # the last logged update the REST draft reflects (written with the draft, in its
    # transaction): a draft read finding later updates settles first (migration 0701)
    sa.Column("settled_upto", sa.BigInteger, nullable=False, server_default="0"),
)


@dataclass(frozen=True)
class Change:
    id: int
    author: str
    size: int
    summary: list[str]
    at: datetime


async def append(
    conn: AsyncConnection,
    tenant_id: str,
    app_id: str,
    data: bytes,
    author: str,
    summary: list[str],
    at: datetime,
) -> int:
    """Append one update to the log; its id orders it."""
    result = await conn.execute(
        updates.insert()
        .values(
            tenant_id=tenant_id,
            app_id=app_id,
            data=data,
            size=len(data),
            author=author,
            summary=summary,
            created_at=at,
        )
        .returning(updates.c.id)
    )
    return int(result.scalar_one())


async def append_many(
    conn: AsyncConnection,
    tenant_id: str,
    app_id: str,
    entries: list[tuple[bytes, str, list[str]]],
    at: datetime,
) -> int:
    """Append a batch of (update, author, summary); the last id. One statement, compiled once
    for any batch size (SQLAlchemy's insertmanyvalues, which keeps RETURNING), not a VALUES
    list compiled anew for each size of batch."""
    result = await conn.execute(
        _APPEND,
        [
            {
                "tenant_id": tenant_id,
                "app_id": app_id,
                "data": data,
                "size": len(data),
                "author": author,
                "summary": summary,
                "created_at": at,
            }
            for data, author, summary in entries
        ],
    )
    return max(int(i) for i in result.scalars())


_APPEND = updates.insert().returning(updates.c.id)


async def load(conn: AsyncConnection, app_id: str) -> tuple[bytes | None, list[tuple[int, bytes]]]:
    """The snapshot (if any) and every update logged after it, in order."""
    snap = (
        await conn.execute(
            sa.select(snapshots.c.data, snapshots.c.upto).where(snapshots.c.app_id == app_id)
        )
    ).first()
    upto = snap.upto if snap else 0
    rows = (
        await conn.execute(
            sa.select(updates.c.id, updates.c.data)
            .where(updates.c.app_id == app_id, updates.c.id > upto, updates.c.data.is_not(None))
            .order_by(updates.c.id)
        )
    ).all()
    return (snap.data if snap else None), [(r.id, r.data) for r in rows]


async def snapshot_of(conn: AsyncConnection, app_id: str) -> tuple[bytes, int, int] | None:
    """(data, upto, draft_revision) of the room's snapshot, None for a room never opened."""
    row = (
        await conn.execute(
            sa.select(snapshots.c.data, snapshots.c.upto, snapshots.c.draft_revision).where(
                snapshots.c.app_id == app_id
            )
        )
    ).first()
    return (row.data, int(row.upto), int(row.draft_revision)) if row else None


async def logged_before(
    conn: AsyncConnection, app_id: str, after: int, before: datetime, chunk: int
) -> AsyncIterator[list[tuple[int, bytes]]]:
    """The updates logged after id `after`, `chunk` at a time, in order, up to the first one
    logged at or after `before`: a prefix of the log, since a snapshot up to id N drops the
    data of every row up to N (a younger row passed over would be lost)."""
    newer = (updates.c.app_id == app_id, updates.c.id > after)
    first_young = (
        sa.select(sa.func.min(updates.c.id))
        .where(*newer, updates.c.created_at >= before)
        .scalar_subquery()
    )
    result = await conn.stream(
        sa.select(updates.c.id, updates.c.data)
        .where(
            *newer,
            updates.c.data.is_not(None),
            updates.c.id < sa.func.coalesce(first_young, 2**62),
        )
        .order_by(updates.c.id)
    )
    async for rows in result.partitions(chunk):
        yield [(r.id, r.data) for r in rows]


async def since(conn: AsyncConnection, app_id: str, after: int) -> list[tuple[int, bytes]]:
    """Updates logged after id `after` (a node catching up with others)."""
    rows = (
        await conn.execute(
            sa.select(updates.c.id, updates.c.data)
            .where(updates.c.app_id == app_id, updates.c.id > after, updates.c.data.is_not(None))
            .order_by(updates.c.id)
        )
    ).all()
    return [(r.id, r.data) for r in rows]


async def save_snapshot(
    conn: AsyncConnection,
    tenant_id: str,
    app_id: str,
    data: bytes,
    upto: int,
    at: datetime,
    *,
    draft_revision: int,
) -> None:
    """Store the compacted state up to update `upto` and drop the folded update bodies."""
    exists = (
        await conn.execute(
            sa.select(snapshots.c.upto).where(snapshots.c.app_id == app_id).with_for_update()
        )
    ).first()
    values: dict[str, Any] = dict(data=data, upto=upto, updated_at=at)
    if exists:
        if exists.upto > upto:
            return  # another node folded further already
        await conn.execute(snapshots.update().where(snapshots.c.app_id == app_id).values(**values))
    else:
        await conn.execute(
            snapshots.insert().values(
                app_id=app_id, tenant_id=tenant_id, draft_revision=draft_revision, **values
            )
        )
    await conn.execute(
        updates.update()
        .where(updates.c.app_id == app_id, updates.c.id <= upto, updates.c.data.is_not(None))
        .values(data=None)
    )


async def history(conn: AsyncConnection, tenant_id: str, app_id: str, limit: int) -> list[Change]:
    """The newest changes first."""
    rows = (
        await conn.execute(
            sa.select(
                updates.c.id,
                updates.c.author,
                updates.c.size,
                updates.c.summary,
                updates.c.created_at,
            )
            .where(updates.c.tenant_id == tenant_id, updates.c.app_id == app_id)
            .order_by(updates.c.id.desc())
            .limit(limit)
        )
    ).all()
    return [Change(r.id, r.author, r.size, list(r.summary), r.created_at) for r in rows]


async def snapshot_meta(conn: AsyncConnection, app_id: str) -> tuple[int, int] | None:
    """(upto, draft_revision) of the room's snapshot row, None for a room never opened."""
    row = (
        await conn.execute(
            sa.select(snapshots.c.upto, snapshots.c.draft_revision).where(
                snapshots.c.app_id == app_id
            )
        )
    ).first()
    return (int(row.upto), int(row.draft_revision)) if row else None


async def seed_snapshot(
    conn: AsyncConnection,
    tenant_id: str,
    app_id: str,
    data: bytes,
    at: datetime,
    draft_revision: int,
) -> bool:
    """Create the first snapshot of a room; False if one exists (another node seeded it)."""
    if (
        await conn.execute(sa.select(snapshots.c.upto).where(snapshots.c.app_id == app_id))
    ).first():
        return False
    await conn.execute(
        snapshots.insert().values(
            app_id=app_id,
            tenant_id=tenant_id,
            data=data,
            upto=0,
            updated_at=at,
            draft_revision=draft_revision,
        )
    )
    return True


async def settle_state(conn: AsyncConnection, app_id: str) -> tuple[int, int] | None:
    """(last logged update, last update the REST draft reflects) of a draft; None when it was
    never co-edited (its REST draft is then the whole truth)."""
    row = (
        await conn.execute(sa.select(snapshots.c.settled_upto).where(snapshots.c.app_id == app_id))
    ).first()
    if row is None:
        return None
    last = (
        await conn.execute(sa.select(sa.func.max(updates.c.id)).where(updates.c.app_id == app_id))
    ).scalar_one_or_none()
    return int(last or 0), int(row.settled_upto)


async def set_settled(conn: AsyncConnection, app_id: str, upto: int, draft_revision: int) -> None:
    """Record, with the draft write itself, that the REST draft reflects the log up to `upto`."""
    await conn.execute(
        snapshots.update()
        .where(snapshots.c.app_id == app_id)
        .values(
            settled_upto=sa.func.max(snapshots.c.settled_upto, upto)
            if conn.dialect.name == "sqlite"
            else sa.func.greatest(snapshots.c.settled_upto, upto),
            draft_revision=draft_revision,
        )
    )
