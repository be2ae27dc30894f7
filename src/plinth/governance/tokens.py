"""API tokens: opaque bearer secrets, stored only as SHA-256 hashes.

Tokens carry 256 bits of randomness, so a fast hash is the right tool (unlike passwords,
which get argon2). The plain token is shown once, at creation.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from plinth.db import Database, Timestamp, platform_metadata, utcnow
from plinth.errors import Unauthenticated
from plinth.governance.principal import PLATFORM_ADMIN, Principal
from plinth.ids import new_id

api_tokens = sa.Table(
    "api_tokens",
    platform_metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("prefix", sa.String(16), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("tenant_id", sa.String(32), nullable=True),
    sa.Column("role", sa.String(40), nullable=False),
    sa.Column("subject", sa.String(200), nullable=True),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("last_used_at", Timestamp),
    sa.Column("expires_at", Timestamp),
    sa.Column("revoked_at", Timestamp),
)

TOKEN_PREFIX = "plt_"
_TOUCH_EVERY = timedelta(seconds=60)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class IssuedToken:
    id: str
    token: str  # the secret: shown once, never stored
    name: str
    role: str
    tenant_id: str | None


class TokenService:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def issue(
        self,
        name: str,
        role: str,
        *,
        tenant_id: str | None = None,
        subject: str | None = None,
        token: str | None = None,
        expires_at: datetime | None = None,
        conn: AsyncConnection | None = None,
    ) -> IssuedToken:
        """Create a token; `token` presets the secret (e.g. PLINTH_ADMIN_TOKEN)."""
        secret = token or TOKEN_PREFIX + secrets.token_urlsafe(32)
        token_id = new_id()
        row = dict(
            id=token_id,
            token_hash=hash_token(secret),
            prefix=secret[:8],
            name=name,
            tenant_id=tenant_id,
            role=role,
            subject=subject,
            created_at=utcnow(),
            expires_at=expires_at,
        )
        if conn is None:
            async with self.db.transaction() as own:
                await own.execute(api_tokens.insert().values(**row))
        else:
            await conn.execute(api_tokens.insert().values(**row))
        return IssuedToken(token_id, secret, name, role, tenant_id)

    async def ensure_admin(self, preset: str | None) -> IssuedToken | None:
        """On start: make sure a platform admin token exists; return it if new."""
        async with self.db.transaction() as conn:
            if preset:
                found = (
                    await conn.execute(
                        sa.select(api_tokens.c.id).where(
                            api_tokens.c.token_hash == hash_token(preset)
                        )
                    )
                ).first()
                if found:
                    return None
                return await self.issue("admin", PLATFORM_ADMIN, token=preset, conn=conn)
            existing = (
                await conn.execute(
                    sa.select(api_tokens.c.id).where(
                        api_tokens.c.role == PLATFORM_ADMIN, api_tokens.c.revoked_at.is_(None)
                    )
                )
            ).first()
            if existing:
                return None
            return await self.issue("admin", PLATFORM_ADMIN, conn=conn)

    async def rotate_named_admin(self, name: str) -> IssuedToken:
        """Issue a platform admin token called `name`, revoking earlier ones of that name."""
        async with self.db.transaction() as conn:
            await conn.execute(
                api_tokens.update()
                .where(
                    api_tokens.c.name == name,
                    api_tokens.c.role == PLATFORM_ADMIN,
                    api_tokens.c.tenant_id.is_(None),
                    api_tokens.c.revoked_at.is_(None),
                )
                .values(revoked_at=utcnow())
            )
            return await self.issue(name, PLATFORM_ADMIN, conn=conn)

    async def authenticate(self, token: str) -> Principal:
        """The principal behind a bearer token, or Unauthenticated."""
        digest = hash_token(token)
        async with self.db.read() as conn:
            row = (
                await conn.execute(api_tokens.select().where(api_tokens.c.token_hash == digest))
            ).first()
        now = utcnow()
        if row is None or row.revoked_at is not None:
            raise Unauthenticated("The bearer token is not valid")
        if row.expires_at is not None and row.expires_at <= now:
            raise Unauthenticated("The bearer token has expired")
        if row.last_used_at is None or row.last_used_at + _TOUCH_EVERY < now:
            async with self.db.transaction() as conn:
                await conn.execute(
                    api_tokens.update().where(api_tokens.c.id == row.id).values(last_used_at=now)
                )
        return Principal(
            id=f"token:{row.id}",
            kind="token",
            roles=frozenset({row.role}),
            tenant_id=row.tenant_id,
            name=row.subject or row.name,
        )

    async def revoke(self, token_id: str, *, tenant_id: str | None = None) -> bool:
        """Revoke a token (of `tenant_id` only, when given); False if none was active."""
        query = api_tokens.update().where(
            api_tokens.c.id == token_id, api_tokens.c.revoked_at.is_(None)
        )
        if tenant_id is not None:
            query = query.where(api_tokens.c.tenant_id == tenant_id)
        async with self.db.transaction() as conn:
            result = await conn.execute(query.values(revoked_at=utcnow()))
        return bool(result.rowcount)

    async def list(self, tenant_id: str, *, include_revoked: bool = False) -> list[dict[str, Any]]:
        """The tokens of a tenant, newest first, without their secrets."""
        query = api_tokens.select().where(api_tokens.c.tenant_id == tenant_id)
        if not include_revoked:
            query = query.where(api_tokens.c.revoked_at.is_(None))
        async with self.db.read() as conn:
            rows = (await conn.execute(query.order_by(api_tokens.c.created_at.desc()))).all()
        return [
            {
                "id": r.id,
                "name": r.name,
                "role": r.role,
                "prefix": r.prefix,
                "created_at": _iso(r.created_at),
                "last_used_at": _iso(r.last_used_at),
                "expires_at": _iso(r.expires_at),
                "revoked_at": _iso(r.revoked_at),
            }
            for r in rows
        ]


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None
