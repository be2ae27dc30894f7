"""API tokens: opaque bearer secrets, stored only as SHA-256 hashes.

Tokens carry 256 bits of randomness, so a fast hash is the right tool (unlike passwords,
which get argon2). The plain token is shown once, at creation.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from plinth.db import Database, Timestamp, platform_metadata, utcnow
from plinth.errors import Unauthenticated
from plinth.events import Event, EventBus
from plinth.governance.principal import PLATFORM_ADMIN, Principal
from plinth.ids import new_id
from plinth.recent import Recent

if TYPE_CHECKING:
    from plinth.governance.audit import Audit

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
# How long a token's row is trusted without asking the database again. A revocation on this
# node drops it at once, and other nodes hear of it through the cluster relay; this bound
# covers what no event reaches (sibling worker processes without Redis, a revocation made by
# a CLI process, a lost relay message): a revoked token is refused everywhere within it.
TRUST_SECONDS = 1.0
REVOKED = "token.revoked"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class IssuedToken:
    id: str
    token: str  # the secret: shown once, never stored
    name: str
    role: str
    tenant_id: str | None


@dataclass(frozen=True)
class _Known:
    """What authentication needs of a valid token's row."""

    id: str
    role: str
    tenant_id: str | None
    name: str
    expires_at: datetime | None
    touched_at: datetime | None

    def expired(self, now: datetime) -> bool:
        return self.expires_at is not None and self.expires_at <= now

    def principal(self) -> Principal:
        return Principal(
            id=f"token:{self.id}",
            kind="token",
            roles=frozenset({self.role}),
            tenant_id=self.tenant_id,
            name=self.name,
        )


class TokenService:
    def __init__(self, db: Database, events: EventBus | None = None) -> None:
        self.db = db
        self.events = events
        self._known: Recent[str, _Known] = Recent(TRUST_SECONDS)  # by token hash
        self._touched: dict[str, datetime] = {}  # token id -> last_used_at written here
        if events is not None:
            events.subscribe(REVOKED, self._on_revoked, cluster=True)

    async def _on_revoked(self, event: Event) -> None:
        self.forget(event.data.get("id"))

    def forget(self, token_id: str | None = None) -> None:
        """Stop trusting cached rows: of one token, or all of them."""
        if token_id is None:
            self._known.forget()
        else:
            self._known.forget_where(lambda known: known.id == token_id)

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
        audit: Audit | None = None,
    ) -> IssuedToken:
        """Create a token; `token` presets the secret (e.g. PLINTH_ADMIN_TOKEN). With `audit`,
        its `token.issued` entry commits with it (or the token is not issued)."""
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
                await self._insert(own, row, audit)
        else:
            await self._insert(conn, row, audit)
        return IssuedToken(token_id, secret, name, role, tenant_id)

    @staticmethod
    async def _insert(conn: AsyncConnection, row: dict[str, Any], audit: Audit | None) -> None:
        await conn.execute(api_tokens.insert().values(**row))
        if audit is not None:
            await audit.write(
                conn, "token.issued", f"token:{row['id']}", role=row["role"], name=row["name"]
            )

    async def ensure_admin(
        self, preset: str | None, audit: Audit | None = None
    ) -> IssuedToken | None:
        """On start: make sure a platform admin token exists; return it if new. With `audit`,
        a token generated here (none preset) commits with its `token.issued` entry."""
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
            return await self.issue("admin", PLATFORM_ADMIN, conn=conn, audit=audit)

    async def rotate_named_admin(self, name: str, audit: Audit | None = None) -> IssuedToken:
        """Issue a platform admin token called `name`, revoking earlier ones of that name.
        With `audit`, the revocations' and the issue's entries commit with them."""
        async with self.db.transaction() as conn:
            earlier = sa.and_(
                api_tokens.c.name == name,
                api_tokens.c.role == PLATFORM_ADMIN,
                api_tokens.c.tenant_id.is_(None),
                api_tokens.c.revoked_at.is_(None),
            )
            revoked = (await conn.execute(sa.select(api_tokens.c.id).where(earlier))).all()
            await conn.execute(api_tokens.update().where(earlier).values(revoked_at=utcnow()))
            if audit is not None:
                for row in revoked:
                    await audit.write(conn, REVOKED, f"token:{row.id}")
            issued = await self.issue(name, PLATFORM_ADMIN, conn=conn, audit=audit)
        # Which ones it revoked other nodes are not told: they forget them all.
        await self._revoked(None, recorded=audit is not None)
        return issued

    async def authenticate(self, token: str) -> Principal:
        """The principal behind a bearer token, or Unauthenticated.

        Steady state, no database round trip: the row is trusted for TRUST_SECONDS."""
        digest = hash_token(token)
        known = await self._known.get(digest, lambda: self._read(digest))
        now = utcnow()
        if known.expired(now):
            raise Unauthenticated("The bearer token has expired")
        touched = max(known.touched_at, self._touched.get(known.id), key=_or_min)
        if touched is None or touched + _TOUCH_EVERY < now:
            if len(self._touched) >= 10_000:
                self._touched.clear()
            self._touched[known.id] = now  # before the write: one request writes, not all
            async with self.db.transaction() as conn:
                await conn.execute(
                    api_tokens.update().where(api_tokens.c.id == known.id).values(last_used_at=now)
                )
        return known.principal()

    def known(self, token: str) -> Principal | None:
        """The principal behind `token` if this process trusts its row now (as `authenticate`
        would, without reading it: read within TRUST_SECONDS, not expired), else None. A hint
        for work started ahead of a request, never an authentication: the request itself still
        calls `authenticate`. A token in use is read again every TRUST_SECONDS by its own
        requests, so it is trusted most of the time; a revoked one no longer once they do."""
        known = self._known.peek(hash_token(token))
        if known is None or known.expired(utcnow()):
            return None
        return known.principal()

    async def _read(self, digest: str) -> _Known:
        async with self.db.statement() as conn:
            row = (
                await conn.execute(api_tokens.select().where(api_tokens.c.token_hash == digest))
            ).first()
        if row is None or row.revoked_at is not None:
            raise Unauthenticated("The bearer token is not valid")
        return _Known(
            row.id,
            row.role,
            row.tenant_id,
            row.subject or row.name,
            row.expires_at,
            row.last_used_at,
        )

    async def revoke(
        self, token_id: str, *, tenant_id: str | None = None, audit: Audit | None = None
    ) -> bool:
        """Revoke a token (of `tenant_id` only, when given); False if none was active. With
        `audit`, its `token.revoked` entry commits with the revocation (or neither happens)."""
        query = api_tokens.update().where(
            api_tokens.c.id == token_id, api_tokens.c.revoked_at.is_(None)
        )
        if tenant_id is not None:
            query = query.where(api_tokens.c.tenant_id == tenant_id)
        async with self.db.transaction() as conn:
            result = await conn.execute(query.values(revoked_at=utcnow()))
            if result.rowcount and audit is not None:
                await audit.write(conn, REVOKED, f"token:{token_id}")
        await self._revoked(token_id, recorded=audit is not None)
        return bool(result.rowcount)

    async def _revoked(self, token_id: str | None, *, recorded: bool = False) -> None:
        """Stop trusting a revoked token here at once, and on every other node (`recorded`:
        the revocation's entry is in the ledger already; the ledger lets the event pass)."""
        self.forget(token_id)
        if self.events is not None:
            event = Event(REVOKED, None, {"id": token_id}, effects_done=recorded)
            await self.events.publish(event)

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


def _or_min(moment: datetime | None) -> datetime:
    return moment if moment is not None else datetime.min.replace(tzinfo=UTC)
