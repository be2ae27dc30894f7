"""Users per tenant: argon2 passwords, short-lived JWT access tokens and refresh tokens."""

from __future__ import annotations

import functools
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jwt
import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import VerificationError

from plinth.db import Database, utcnow
from plinth.errors import Conflict, Unauthenticated
from plinth.governance.principal import Principal
from plinth.governance.store import refresh_tokens, users
from plinth.governance.tokens import hash_token
from plinth.ids import new_id

if TYPE_CHECKING:
    from plinth.governance.audit import Audit

ACCESS_TTL = timedelta(minutes=15)
REFRESH_TTL = timedelta(days=14)
BUILTIN_ROLES = ("owner", "designer", "analyst", "viewer")
_hasher = PasswordHasher()


@functools.cache
def _dummy_hash() -> str:
    """Verifying unknown users against a dummy hash keeps login time independent of existence.

    Made on first login rather than at import: hashing takes ~0.3 s, which every CLI call paid.
    """
    return _hasher.hash("plinth-dummy-password")


@dataclass(frozen=True)
class User:
    id: str
    tenant_id: str
    username: str
    roles: list[str]
    groups: list[str] = field(default_factory=list)
    attrs: dict[str, Any] = field(default_factory=dict)

    def principal(self) -> Principal:
        return Principal(
            id=f"user:{self.id}",
            kind="user",
            roles=frozenset(self.roles),
            tenant_id=self.tenant_id,
            name=self.username,
            attrs={**self.attrs, "groups": list(self.groups)},
        )


@dataclass(frozen=True)
class Session:
    access_token: str
    refresh_token: str
    expires_in: int
    token_type: str = "Bearer"


def _user(row: Any) -> User:
    return User(
        row.id, row.tenant_id, row.username, list(row.roles), list(row.groups), dict(row.attrs)
    )


def signing_key(master_key: str | None, data_dir: Path) -> str:
    """The JWT signing key: the master key, else a random one kept in the data dir."""
    if master_key:
        return master_key
    path = data_dir / "jwt-signing.key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(48))
        path.chmod(0o600)
    return path.read_text().strip()


class IdentityService:
    def __init__(self, db: Database, key: str, access_ttl: timedelta = ACCESS_TTL) -> None:
        self.db = db
        self._key = key
        self.access_ttl = access_ttl
        # user id -> when an administrator ended their sessions; access tokens issued before
        # are refused. Kept in memory (no database round trip per request), filled at start
        # and by cluster events; entries older than an access token's lifetime are moot.
        self._ended: dict[str, float] = {}

    def sessions_ended(self, user_id: str, at: datetime) -> None:
        """Refuse the user's access tokens issued before `at`."""
        self._ended[user_id] = at.timestamp()
        horizon = utcnow().timestamp() - self.access_ttl.total_seconds()
        for uid in [u for u, t in self._ended.items() if t < horizon]:
            del self._ended[uid]

    async def create_user(
        self,
        tenant_id: str,
        username: str,
        password: str | None,
        *,
        roles: list[str],
        groups: list[str] | None = None,
        attrs: dict[str, Any] | None = None,
        oidc_subject: str | None = None,
        audit: Audit | None = None,
    ) -> User:
        """Add a user to a tenant (Conflict if the username is taken there). With `audit`,
        its `user.created` entry commits with it (without a password: invited)."""
        row = dict(
            id=new_id(),
            tenant_id=tenant_id,
            username=username,
            password_hash=_hasher.hash(password) if password else None,
            roles=list(roles),
            groups=list(groups or []),
            attrs=dict(attrs or {}),
            oidc_subject=oidc_subject,
            disabled=False,
            created_at=utcnow(),
        )
        async with self.db.transaction() as conn:
            taken = (
                await conn.execute(
                    sa.select(users.c.id).where(
                        users.c.tenant_id == tenant_id, users.c.username == username
                    )
                )
            ).first()
            if taken:
                raise Conflict(f"User {username!r} already exists", path="username")
            await conn.execute(users.insert().values(**row))
            if audit is not None:
                await audit.write(
                    conn,
                    "user.created",
                    f"user:{row['id']}",
                    username=username,
                    roles=list(roles),
                    groups=list(groups or []),
                    invited=password is None,
                )
        return User(
            str(row["id"]), tenant_id, username, list(roles), list(groups or []), dict(attrs or {})
        )

    async def get_user(self, tenant_id: str, user_id: str) -> User | None:
        async with self.db.read() as conn:
            row = (
                await conn.execute(
                    users.select().where(
                        users.c.tenant_id == tenant_id,
                        users.c.id == user_id,
                        users.c.disabled.is_(False),
                    )
                )
            ).first()
        return _user(row) if row else None

    async def find_user(self, tenant_id: str, username: str) -> User | None:
        """The enabled user of a tenant with this username, if any."""
        async with self.db.read() as conn:
            row = (
                await conn.execute(
                    users.select().where(
                        users.c.tenant_id == tenant_id,
                        users.c.username == username,
                        users.c.disabled.is_(False),
                    )
                )
            ).first()
        return _user(row) if row else None

    async def upsert_oidc_user(
        self, tenant_id: str, subject: str, username: str, roles: list[str], attrs: dict[str, Any]
    ) -> User:
        """The user behind an OIDC subject, created or refreshed from the provider's claims."""
        async with self.db.transaction() as conn:
            row = (
                await conn.execute(
                    users.select().where(
                        users.c.tenant_id == tenant_id, users.c.oidc_subject == subject
                    )
                )
            ).first()
            if row is None:
                # Never linked by name: whoever controls an account at the provider must not
                # take over a password user who happens to have that name.
                taken = await conn.execute(
                    sa.select(users.c.id).where(
                        users.c.tenant_id == tenant_id, users.c.username == username
                    )
                )
                if taken.first() is not None:
                    raise Conflict(
                        f"A user named {username!r} already exists in this tenant; "
                        "ask an administrator",
                        path="username",
                    )
                uid = new_id()
                await conn.execute(
                    users.insert().values(
                        id=uid,
                        tenant_id=tenant_id,
                        username=username,
                        password_hash=None,
                        roles=roles,
                        groups=[],
                        attrs=attrs,
                        oidc_subject=subject,
                        disabled=False,
                        created_at=utcnow(),
                    )
                )
                return User(uid, tenant_id, username, roles, [], attrs)
            if row.disabled:  # an administrator's "disabled" holds whatever the provider says
                raise Unauthenticated("This account is disabled in this tenant")
            await conn.execute(
                users.update()
                .where(users.c.id == row.id)
                .values(roles=roles, attrs={**row.attrs, **attrs})
            )
            return User(
                row.id, tenant_id, row.username, roles, list(row.groups), {**row.attrs, **attrs}
            )

    async def login(self, tenant_id: str, username: str, password: str) -> Session:
        """Check the password; issue an access + refresh token pair."""
        async with self.db.read() as conn:
            row = (
                await conn.execute(
                    users.select().where(
                        users.c.tenant_id == tenant_id, users.c.username == username
                    )
                )
            ).first()
        try:
            known = row.password_hash if row and row.password_hash else None
            _hasher.verify(known or _dummy_hash(), password)
        except VerificationError:
            row = None
        if row is None or row.disabled or not row.password_hash:
            raise Unauthenticated("Wrong username or password")
        return await self.session_for(_user(row))

    async def session_for(self, user: User) -> Session:
        """Issue a fresh access token and a refresh token for `user`."""
        refresh = "plr_" + secrets.token_urlsafe(32)
        async with self.db.transaction() as conn:
            await conn.execute(
                refresh_tokens.insert().values(
                    id=new_id(),
                    token_hash=hash_token(refresh),
                    user_id=user.id,
                    tenant_id=user.tenant_id,
                    created_at=utcnow(),
                    expires_at=utcnow() + REFRESH_TTL,
                )
            )
        return Session(self.access_token(user), refresh, int(self.access_ttl.total_seconds()))

    def access_token(self, user: User) -> str:
        now = utcnow()
        claims = {
            "sub": user.id,
            "tid": user.tenant_id,
            "name": user.username,
            "roles": user.roles,
            "groups": user.groups,
            "attrs": user.attrs,
            "iat": now,
            # `iat` is in whole seconds; ending sessions needs finer: a token issued in the
            # same second as a disable must not survive it.
            "ts": now.timestamp(),
            "exp": now + self.access_ttl,
            "iss": "plinth",
        }
        return jwt.encode(claims, self._key, algorithm="HS256")

    def authenticate(self, token: str) -> Principal:
        """The principal of a valid access token (signature and expiry checked)."""
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=["HS256"],
                issuer="plinth",
                options={"require": ["exp", "sub", "tid"]},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("The access token has expired") from None
        except jwt.InvalidTokenError:
            raise Unauthenticated("The bearer token is not valid") from None
        ended = self._ended.get(claims["sub"])
        if ended is not None and float(claims.get("ts", claims.get("iat", 0))) < ended:
            raise Unauthenticated("This session was ended by an administrator; sign in again")
        return User(
            claims["sub"],
            claims["tid"],
            claims.get("name", ""),
            claims.get("roles", []),
            claims.get("groups", []),
            claims.get("attrs", {}),
        ).principal()

    async def refresh(self, refresh_token: str, tenant_id: str) -> Session:
        """Rotate a refresh token of `tenant_id`: the old one is revoked, a new pair issued.

        A token of another tenant is not valid here (and is left as it was)."""
        digest = hash_token(refresh_token)
        async with self.db.transaction() as conn:
            row = (
                await conn.execute(
                    refresh_tokens.select().where(
                        refresh_tokens.c.token_hash == digest,
                        refresh_tokens.c.tenant_id == tenant_id,
                    )
                )
            ).first()
            if row is None or row.revoked_at is not None or row.expires_at <= utcnow():
                raise Unauthenticated("The refresh token is not valid")
            await conn.execute(
                refresh_tokens.update()
                .where(refresh_tokens.c.id == row.id)
                .values(revoked_at=utcnow())
            )
            urow = (
                await conn.execute(
                    users.select().where(users.c.id == row.user_id, users.c.disabled.is_(False))
                )
            ).first()
        if urow is None:
            raise Unauthenticated("The refresh token is not valid")
        return await self.session_for(_user(urow))

    async def revoke_refresh(self, refresh_token: str, tenant_id: str) -> str | None:
        """Revoke a refresh token of `tenant_id` (another tenant's is left alone); the id of
        the user whose it was, None if it was not active."""
        async with self.db.transaction() as conn:
            row = (
                await conn.execute(
                    sa.select(refresh_tokens.c.id, refresh_tokens.c.user_id).where(
                        refresh_tokens.c.token_hash == hash_token(refresh_token),
                        refresh_tokens.c.tenant_id == tenant_id,
                        refresh_tokens.c.revoked_at.is_(None),
                    )
                )
            ).first()
            if row is None:
                return None
            await conn.execute(
                refresh_tokens.update()
                .where(refresh_tokens.c.id == row.id, refresh_tokens.c.revoked_at.is_(None))
                .values(revoked_at=utcnow())
            )
        return str(row.user_id)
