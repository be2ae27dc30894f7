"""Administering a tenant's users: list, edit, disable, sessions, invites and password resets.

`IdentityService` signs people in; this is what an administrator does to their records. A
portal user and an IDE user are the same row, so everything here applies to both.

Invites and resets are one-time tokens (stored as SHA-256 hashes): a person who holds one
sets their own password, so an administrator never has to know or send one.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from argon2 import PasswordHasher
from sqlalchemy.ext.asyncio import AsyncConnection

from plinth.db import Database, utcnow
from plinth.errors import NotFound, Unauthenticated
from plinth.governance.store import password_tokens, refresh_tokens, users
from plinth.governance.tokens import hash_token
from plinth.ids import new_id

if TYPE_CHECKING:
    from plinth.governance.audit import Audit

PASSWORD_TOKEN_TTL = timedelta(hours=24)
PASSWORD_TOKEN_PREFIX = "pli_"
_hasher = PasswordHasher()


@dataclass(frozen=True)
class UserRecord:
    """A user as an administrator sees it (never the password hash)."""

    id: str
    username: str
    roles: list[str]
    groups: list[str]
    attrs: dict[str, Any]
    disabled: bool
    has_password: bool
    oidc: bool
    created_at: datetime

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "username": self.username,
            "roles": self.roles,
            "groups": self.groups,
            "attrs": self.attrs,
            "disabled": self.disabled,
            "has_password": self.has_password,
            "oidc": self.oidc,
            "created_at": self.created_at.isoformat(),
        }


@dataclass(frozen=True)
class PasswordToken:
    """A one-time secret that lets its holder set the password of one user."""

    token: str
    user_id: str
    purpose: str
    expires_at: datetime


def _record(row: Any) -> UserRecord:
    return UserRecord(
        id=row.id,
        username=row.username,
        roles=list(row.roles),
        groups=list(row.groups),
        attrs=dict(row.attrs),
        disabled=bool(row.disabled),
        has_password=row.password_hash is not None,
        oidc=row.oidc_subject is not None,
        created_at=row.created_at,
    )


def _carried(user: UserRecord) -> tuple[Any, ...]:
    """What an access token carries of the user (a change must not outlive it in one)."""
    return (user.roles, user.groups, user.attrs)


def _actions(before: UserRecord, after: UserRecord) -> list[tuple[str, dict[str, Any]]]:
    """What a person did, as ledger actions: disable/enable apart from attribute edits."""
    out: list[tuple[str, dict[str, Any]]] = []
    if before.disabled != after.disabled:
        out.append(("user.disabled" if after.disabled else "user.enabled", {}))
    changed = {
        key: getattr(after, key)
        for key in ("roles", "groups", "attrs")
        if getattr(before, key) != getattr(after, key)
    }
    if changed:
        out.append(("user.updated", {"changed": sorted(changed), **changed}))
    return out


def _json_member(column: Any, value: str) -> Any:
    """`value` is an element of the JSON list in `column` (portable: the list's text holds
    the value's own JSON encoding, quotes included, so `ops` never matches `devops`)."""
    pattern = json.dumps(value).replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return sa.cast(column, sa.Text).like(f"%{pattern}%", escape="\\")


class UserDirectory:
    """The users of every tenant, for administrators (every query carries the tenant)."""

    def __init__(
        self, db: Database, on_sessions_ended: Callable[[str, str], Awaitable[None]]
    ) -> None:
        """`on_sessions_ended(tenant_id, user_id)`: after a commit that ended a user's
        sessions, so access tokens already issued stop working too (on every node)."""
        self.db = db
        self._ended = on_sessions_ended

    async def list(
        self,
        tenant_id: str,
        *,
        q: str | None = None,
        role: str | None = None,
        group: str | None = None,
        disabled: bool | None = None,
        after: str | None = None,
        limit: int = 50,
    ) -> list[UserRecord]:
        """Users ordered by username, filtered, starting after username `after`."""
        query = users.select().where(users.c.tenant_id == tenant_id)
        if q:
            like = q.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            query = query.where(sa.func.lower(users.c.username).like(f"%{like}%", escape="\\"))
        if role:
            query = query.where(_json_member(users.c.roles, role))
        if group:
            query = query.where(_json_member(users.c.groups, group))
        if disabled is not None:
            query = query.where(users.c.disabled.is_(disabled))
        if after:
            query = query.where(users.c.username > after)
        query = query.order_by(users.c.username).limit(limit)
        async with self.db.read() as conn:
            rows = (await conn.execute(query)).all()
        return [_record(r) for r in rows]

    async def get(self, tenant_id: str, user_id: str) -> UserRecord:
        """One user of the tenant (NotFound otherwise, also for another tenant's user)."""
        async with self.db.read() as conn:
            row = await self._row(conn, tenant_id, user_id)
        return _record(row)

    async def _row(self, conn: AsyncConnection, tenant_id: str, user_id: str) -> Any:
        row = (
            await conn.execute(
                users.select().where(users.c.tenant_id == tenant_id, users.c.id == user_id)
            )
        ).first()
        if row is None:
            raise NotFound(f"No user {user_id!r} in this tenant", path="user_id")
        return row

    async def update(
        self, tenant_id: str, user_id: str, changes: dict[str, Any], audit: Audit | None = None
    ) -> tuple[UserRecord, UserRecord]:
        """Apply `changes` (roles, groups, attrs, disabled); the user before and after.

        Disabling revokes every refresh token in the same transaction, so no session outlives
        the change by more than an access token's lifetime. With `audit`, the entries naming
        what was done (`user.disabled`, `user.updated` …) commit with the change."""
        allowed = {
            k: v for k, v in changes.items() if k in ("roles", "groups", "attrs", "disabled")
        }
        async with self.db.transaction() as conn:
            before = _record(await self._row(conn, tenant_id, user_id))
            if allowed:
                await conn.execute(
                    users.update()
                    .where(users.c.tenant_id == tenant_id, users.c.id == user_id)
                    .values(**allowed)
                )
            after = _record(await self._row(conn, tenant_id, user_id))
            ended = bool(allowed.get("disabled")) or _carried(before) != _carried(after)
            if allowed.get("disabled"):
                await self._revoke(conn, tenant_id, user_id)
            elif ended:
                await self._end_access(conn, tenant_id, user_id)
            if audit is not None:
                for action, data in _actions(before, after):
                    resource = f"user:{user_id}"
                    await audit.write(conn, action, resource, username=after.username, **data)
        if ended:
            await self._ended(tenant_id, user_id)
        return before, after

    async def revoke_sessions(
        self, tenant_id: str, user_id: str, audit: Audit | None = None
    ) -> int:
        """Revoke every active refresh token of the user; how many were active."""
        async with self.db.transaction() as conn:
            await self._row(conn, tenant_id, user_id)
            revoked = await self._revoke(conn, tenant_id, user_id)
            if audit is not None:
                await audit.write(conn, "user.sessions_revoked", f"user:{user_id}", revoked=revoked)
        await self._ended(tenant_id, user_id)
        return revoked

    async def end_access(self, tenant_id: str, user_id: str) -> None:
        """Refuse the user's access tokens issued until now, on every node (at sign-out: the
        page's token must not outlive it; the user's other sessions refresh theirs)."""
        async with self.db.transaction() as conn:
            await self._end_access(conn, tenant_id, user_id)
        await self._ended(tenant_id, user_id)

    async def _end_access(self, conn: AsyncConnection, tenant_id: str, user_id: str) -> None:
        """Refuse the user's access tokens issued until now (their refresh tokens still work:
        a refresh issues a token with what the user holds now)."""
        await conn.execute(
            users.update()
            .where(users.c.tenant_id == tenant_id, users.c.id == user_id)
            .values(sessions_ended_at=utcnow())
        )

    async def _revoke(self, conn: AsyncConnection, tenant_id: str, user_id: str) -> int:
        await self._end_access(conn, tenant_id, user_id)
        result = await conn.execute(
            refresh_tokens.update()
            .where(
                refresh_tokens.c.tenant_id == tenant_id,
                refresh_tokens.c.user_id == user_id,
                refresh_tokens.c.revoked_at.is_(None),
            )
            .values(revoked_at=utcnow())
        )
        return int(result.rowcount or 0)

    async def password_token(
        self, tenant_id: str, user_id: str, purpose: str, audit: Audit | None = None
    ) -> PasswordToken:
        """A fresh one-time token for the user (earlier unused ones stop working).

        A reset also revokes the user's sessions: whoever asked for it suspects the password.
        With `audit`, a reset's `user.password_reset` entry commits with it (an invite's
        token is told of by its user's `user.created`)."""
        secret = PASSWORD_TOKEN_PREFIX + secrets.token_urlsafe(32)
        now = utcnow()
        async with self.db.transaction() as conn:
            await self._row(conn, tenant_id, user_id)
            await conn.execute(
                password_tokens.update()
                .where(
                    password_tokens.c.tenant_id == tenant_id,
                    password_tokens.c.user_id == user_id,
                    password_tokens.c.used_at.is_(None),
                )
                .values(used_at=now)
            )
            await conn.execute(
                password_tokens.insert().values(
                    id=new_id(),
                    token_hash=hash_token(secret),
                    user_id=user_id,
                    tenant_id=tenant_id,
                    purpose=purpose,
                    created_at=now,
                    expires_at=now + PASSWORD_TOKEN_TTL,
                )
            )
            if purpose == "reset":
                await self._revoke(conn, tenant_id, user_id)
                if audit is not None:
                    await audit.write(conn, "user.password_reset", f"user:{user_id}")
        if purpose == "reset":
            await self._ended(tenant_id, user_id)
        return PasswordToken(secret, user_id, purpose, now + PASSWORD_TOKEN_TTL)

    async def set_password(
        self, tenant_id: str, token: str, password: str, audit: Audit | None = None
    ) -> UserRecord:
        """Spend a one-time token: set the password of its user (Unauthenticated if the token
        is unknown, of another tenant, used or expired). Revokes the user's other sessions.
        With `audit`, the user's `user.password_set` entry commits with it."""
        password_hash = _hasher.hash(password)
        async with self.db.transaction() as conn:
            row = (
                await conn.execute(
                    password_tokens.select().where(
                        password_tokens.c.token_hash == hash_token(token),
                        password_tokens.c.tenant_id == tenant_id,
                    )
                )
            ).first()
            if row is None or row.used_at is not None or row.expires_at <= utcnow():
                raise Unauthenticated("This link is not valid any more; ask for a new one")
            spent = await conn.execute(
                password_tokens.update()
                .where(password_tokens.c.id == row.id, password_tokens.c.used_at.is_(None))
                .values(used_at=utcnow())
            )
            if spent.rowcount != 1:  # a concurrent request spent it first
                raise Unauthenticated("This link is not valid any more; ask for a new one")
            await conn.execute(
                users.update()
                .where(users.c.tenant_id == tenant_id, users.c.id == row.user_id)
                .values(password_hash=password_hash)
            )
            await self._revoke(conn, tenant_id, row.user_id)
            user = _record(await self._row(conn, tenant_id, row.user_id))
            if audit is not None:  # the person holding the link sets their own password
                done = audit.as_actor(user.username)
                await done.write(conn, "user.password_set", f"user:{user.id}")
        await self._ended(tenant_id, user.id)
        return user

    async def sessions_ended_since(self, since: datetime) -> dict[str, datetime]:
        """Users whose sessions were ended after `since` (their access tokens may be alive)."""
        async with self.db.read() as conn:
            rows = await conn.execute(
                sa.select(users.c.id, users.c.sessions_ended_at).where(
                    users.c.sessions_ended_at > since
                )
            )
            return {row.id: row.sessions_ended_at for row in rows}

    async def groups(self, tenant_id: str) -> dict[str, int]:
        """Every group named by a user of the tenant, with its member count."""
        async with self.db.read() as conn:
            rows = (
                await conn.execute(sa.select(users.c.groups).where(users.c.tenant_id == tenant_id))
            ).all()
        counts: dict[str, int] = {}
        for row in rows:
            for name in row.groups:
                counts[name] = counts.get(name, 0) + 1
        return dict(sorted(counts.items()))

    async def role_names(self, tenant_id: str) -> set[str]:
        """Every role held by a user of the tenant."""
        async with self.db.read() as conn:
            rows = (
                await conn.execute(sa.select(users.c.roles).where(users.c.tenant_id == tenant_id))
            ).all()
        return {name for row in rows for name in row.roles}

    async def ensure_member(
        self, tenant_id: str, user_id: str, group: str, member: bool, audit: Audit | None = None
    ) -> bool:
        """Put the user in `group` or take them out; False if nothing changed. With `audit`,
        its `group.member_added` or `group.member_removed` entry commits with the change."""
        async with self.db.transaction() as conn:
            row = await self._row(conn, tenant_id, user_id)
            groups = list(row.groups)
            if (group in groups) == member:
                return False
            groups = [*groups, group] if member else [g for g in groups if g != group]
            await conn.execute(
                users.update()
                .where(users.c.tenant_id == tenant_id, users.c.id == user_id)
                .values(groups=groups)
            )
            await self._end_access(conn, tenant_id, user_id)  # tokens carry the groups
            if audit is not None:
                action = "group.member_added" if member else "group.member_removed"
                await audit.write(conn, action, f"user:{user_id}", group=group)
        await self._ended(tenant_id, user_id)
        return True


__all__ = ["PasswordToken", "UserDirectory", "UserRecord"]
