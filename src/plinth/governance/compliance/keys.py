"""Field-encryption keys: master key -> tenant key -> subject key -> field value.

Envelope encryption with the vault's master key (`plinth.envelope`, the one scheme of the
platform). Each data subject has its own key, wrapped by the tenant key; destroying it
(erasure) leaves every copy of that subject's encrypted fields unreadable, backups included,
while the rest of the tenant's data stays readable (crypto-shredding). Rotating the tenant key
re-wraps subject keys only, so no record is rewritten; rotating the master key (the vault's
`rotate_master`) re-wraps tenant keys through `rewrap_master`.

Subjects are named by `ref`: an HMAC under a per-tenant secret salt, so the key table never
holds an e-mail address or an id in clear.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from plinth import envelope
from plinth.db import Database, utcnow
from plinth.errors import Unavailable
from plinth.governance.compliance import store

PREFIX = "enc1."  # stored form of an encrypted field: enc1.<ref>.<base64url(nonce||ct)>
CACHE_SECONDS = 60.0  # other nodes forget an erased subject's key within this time


def _master_id(key: bytes) -> str:
    return hashlib.sha256(b"plinth-master-id:" + key).hexdigest()[:16]


def _kek_aad(tenant_id: str) -> bytes:
    return f"{tenant_id}\x00field-kek".encode()


def _salt_aad(tenant_id: str) -> bytes:
    return f"{tenant_id}\x00subject-salt".encode()


def _subject_aad(tenant_id: str, ref: str) -> bytes:
    return f"{tenant_id}\x00subject\x00{ref}".encode()


def is_sealed(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(PREFIX)


def ref_of(value: str) -> str:
    """The subject ref a sealed value names."""
    return value[len(PREFIX) :].split(".", 1)[0]


class FieldKeys:
    """The keyring of field encryption for every tenant (keys cached briefly, unwrapped)."""

    def __init__(self, db: Database, master: Callable[[], bytes]) -> None:
        self.db = db
        self._master = master
        self._tenant: dict[str, tuple[float, int, bytes, bytes]] = {}  # id -> (at, v, kek, salt)
        self._subjects: dict[tuple[str, str], tuple[float, bytes]] = {}

    def forget(self, tenant_id: str) -> None:
        """Drop cached keys of a tenant (after erasure or rotation)."""
        self._tenant.pop(tenant_id, None)
        self._subjects = {k: v for k, v in self._subjects.items() if k[0] != tenant_id}

    def derive(self, label: bytes) -> bytes:
        """A platform key for another purpose (e.g. sealing list cursors), from the master."""
        return hmac.new(self._master(), b"plinth-derive:" + label, hashlib.sha256).digest()

    # -- the tenant key ---------------------------------------------------------------------

    async def _tenant_key(self, tenant_id: str) -> tuple[int, bytes, bytes]:
        hit = self._tenant.get(tenant_id)
        if hit is not None and time.monotonic() - hit[0] < CACHE_SECONDS:
            return hit[1], hit[2], hit[3]
        async with self.db.read() as conn:
            row = await self._active(conn, tenant_id)
        if row is None:
            try:
                async with self.db.transaction() as conn:
                    await self._create_tenant_key(conn, tenant_id, 1, envelope.new_key())
            except IntegrityError:
                pass  # created concurrently: read theirs
            async with self.db.read() as conn:
                row = await self._active(conn, tenant_id)
            assert row is not None
        master = self._master()
        kek = self._open(master, row.wrapped, _kek_aad(tenant_id))
        salt = self._open(master, row.salt, _salt_aad(tenant_id))
        self._tenant[tenant_id] = (time.monotonic(), row.version, kek, salt)
        return row.version, kek, salt

    @staticmethod
    async def _active(conn: AsyncConnection, tenant_id: str) -> Any:
        t = store.tenant_keys
        return (
            await conn.execute(sa.select(t).where(t.c.tenant_id == tenant_id, t.c.active.is_(True)))
        ).first()

    async def _create_tenant_key(
        self, conn: AsyncConnection, tenant_id: str, version: int, salt: bytes
    ) -> bytes:
        master = self._master()
        kek = envelope.new_key()
        await conn.execute(
            store.tenant_keys.insert().values(
                tenant_id=tenant_id,
                version=version,
                wrapped=envelope.seal(master, kek, _kek_aad(tenant_id)),
                salt=envelope.seal(master, salt, _salt_aad(tenant_id)),
                master_id=_master_id(master),
                active=True,
                created_at=utcnow(),
            )
        )
        return kek

    @staticmethod
    def _open(key: bytes, blob: bytes, aad: bytes) -> bytes:
        try:
            return envelope.open_sealed(key, blob, aad)
        except envelope.InvalidTag as exc:
            raise Unavailable(
                "A field-encryption key does not open with the configured "
                "master key; was the master key changed without rotating?"
            ) from exc

    # -- subjects ---------------------------------------------------------------------------

    async def ref(self, tenant_id: str, subject: str) -> str:
        """The opaque name of a subject (`v:<value>` or `r:<record id>`) in this tenant."""
        _, _, salt = await self._tenant_key(tenant_id)
        return hmac.new(salt, subject.encode(), hashlib.sha256).hexdigest()[:40]

    async def subject_key(self, tenant_id: str, ref: str, *, create: bool) -> bytes | None:
        """The subject's key (made on first use if `create`); None once destroyed.

        Reads may be served from the cache (an erased subject stays readable on another node for
        at most CACHE_SECONDS). Sealing (`create`) never is: it checks the key row still exists,
        so no node seals new data with a key another node destroyed, and it inserts a new key
        only while the tenant key wrapping it is still the active one.
        """
        hit = self._subjects.get((tenant_id, ref))
        if not create and hit is not None and time.monotonic() - hit[0] < CACHE_SECONDS:
            return hit[1]
        t = store.subject_keys
        for _ in range(3):
            async with self.db.read() as conn:
                row = (
                    await conn.execute(
                        sa.select(t).where(t.c.tenant_id == tenant_id, t.c.ref == ref)
                    )
                ).first()
            if row is not None:
                if hit is not None:  # the key of a subject never changes, only its wrapping
                    key = hit[1]
                else:
                    kek = await self._kek(tenant_id, row.key_version)
                    key = self._open(kek, row.wrapped, _subject_aad(tenant_id, ref))
                break
            if not create:
                return None
            key = envelope.new_key()
            try:
                made = await self._insert_subject(tenant_id, ref, key)
            except IntegrityError:  # made concurrently by another write: use theirs
                continue
            if made:
                break
            self.forget(tenant_id)  # the cached tenant key was rotated away: use the new one
        else:
            raise Unavailable(
                "The field-encryption key of a subject could not be made while "
                "the tenant key was rotating; retry the write"
            )
        if len(self._subjects) > 100_000:
            self._subjects.clear()
        self._subjects[(tenant_id, ref)] = (time.monotonic(), key)
        return key

    async def _insert_subject(self, tenant_id: str, ref: str, key: bytes) -> bool:
        """Store a new subject key wrapped by the tenant key this node holds, if that is still
        the active one (False if not). The tenant key row is locked (PostgreSQL FOR SHARE;
        SQLite writers are serialized anyway), so a rotation either waits for this insert and
        re-wraps the new row, or commits first and this insert sees the key inactive."""
        version, kek, _ = await self._tenant_key(tenant_id)
        tk = store.tenant_keys
        async with self.db.transaction() as conn:
            active = (
                await conn.execute(
                    sa.select(tk.c.version)
                    .where(
                        tk.c.tenant_id == tenant_id, tk.c.version == version, tk.c.active.is_(True)
                    )
                    .with_for_update(read=True)
                )
            ).first()
            if active is None:
                return False
            await conn.execute(
                store.subject_keys.insert().values(
                    tenant_id=tenant_id,
                    ref=ref,
                    key_version=version,
                    wrapped=envelope.seal(kek, key, _subject_aad(tenant_id, ref)),
                    created_at=utcnow(),
                )
            )
        return True

    async def _kek(self, tenant_id: str, version: int) -> bytes:
        """The unwrapped tenant key of a version (an old one is kept while a subject uses it)."""
        active, kek, _ = await self._tenant_key(tenant_id)
        if active == version:
            return kek
        self.forget(tenant_id)  # rotated meanwhile: read the new wrapping
        active, kek, _ = await self._tenant_key(tenant_id)
        if active == version:
            return kek
        tk = store.tenant_keys
        async with self.db.read() as conn:
            row = (
                await conn.execute(
                    sa.select(tk).where(tk.c.tenant_id == tenant_id, tk.c.version == version)
                )
            ).first()
        if row is None:
            raise Unavailable("A subject key is wrapped by a tenant key that no longer exists")
        return self._open(self._master(), row.wrapped, _kek_aad(tenant_id))

    async def destroy(self, tenant_id: str, refs: Iterable[str]) -> int:
        """Destroy subject keys: what they sealed can never be read again. Returns how many."""
        refs = sorted(set(refs))
        if not refs:
            return 0
        t = store.subject_keys
        async with self.db.transaction() as conn:
            result = await conn.execute(
                t.delete().where(t.c.tenant_id == tenant_id, t.c.ref.in_(refs))
            )
        for ref in refs:
            self._subjects.pop((tenant_id, ref), None)
        return int(result.rowcount or 0)

    # -- values -----------------------------------------------------------------------------

    async def seal(self, tenant_id: str, ref: str, plaintext: bytes, aad: bytes) -> str:
        key = await self.subject_key(tenant_id, ref, create=True)
        assert key is not None
        blob = envelope.seal(key, plaintext, aad)
        return f"{PREFIX}{ref}.{base64.urlsafe_b64encode(blob).decode()}"

    async def open(self, tenant_id: str, value: str, aad: bytes) -> bytes | None:
        """The plaintext of a sealed value; None when its subject's key was destroyed."""
        ref, _, body = value[len(PREFIX) :].partition(".")
        key = await self.subject_key(tenant_id, ref, create=False)
        if key is None:
            return None
        try:
            return envelope.open_sealed(key, base64.urlsafe_b64decode(body.encode()), aad)
        except (envelope.InvalidTag, ValueError) as exc:
            raise Unavailable(
                "An encrypted field failed its integrity check (was it copied from another record?)"
            ) from exc

    # -- rotation ---------------------------------------------------------------------------

    async def rotate(
        self,
        tenant_id: str,
        also: Callable[[AsyncConnection, dict[str, int]], Awaitable[None]] | None = None,
    ) -> dict[str, int]:
        """A new tenant key; every subject key re-wrapped with it, the old one destroyed.
        `also` runs in the rotation's transaction with what it did (its ledger entry)."""
        async with self.db.transaction() as conn:
            t, s = store.tenant_keys, store.subject_keys
            master = self._master()
            # Locking the tenant key rows serializes rotation with subject-key inserts
            # (`_insert_subject`) and with other rotations on PostgreSQL; SQLite writers are
            # serialized by BEGIN IMMEDIATE.
            rows = (
                await conn.execute(sa.select(t).where(t.c.tenant_id == tenant_id).with_for_update())
            ).all()
            old = {r.version: self._open(master, r.wrapped, _kek_aad(tenant_id)) for r in rows}
            active = next((r for r in rows if r.active), None)
            salt = (
                self._open(master, active.salt, _salt_aad(tenant_id))
                if active
                else envelope.new_key()
            )  # the salt names subjects: it never changes
            version = max(old, default=0) + 1
            await conn.execute(t.update().where(t.c.tenant_id == tenant_id).values(active=False))
            kek = await self._create_tenant_key(conn, tenant_id, version, salt)
            moved = 0
            for row in (await conn.execute(sa.select(s).where(s.c.tenant_id == tenant_id))).all():
                if row.key_version not in old:  # unreadable already: never block rotation
                    continue
                aad = _subject_aad(tenant_id, row.ref)
                key = self._open(old[row.key_version], row.wrapped, aad)
                await conn.execute(
                    s.update()
                    .where(s.c.tenant_id == tenant_id, s.c.ref == row.ref)
                    .values(key_version=version, wrapped=envelope.seal(kek, key, aad))
                )
                moved += 1
            # An old tenant key goes only once no subject key is wrapped by it.
            await conn.execute(
                t.delete().where(
                    t.c.tenant_id == tenant_id,
                    t.c.version != version,
                    ~sa.exists().where(s.c.tenant_id == tenant_id, s.c.key_version == t.c.version),
                )
            )
            done = {
                "version": version,
                "previous": active.version if active else 0,
                "subject_keys": moved,
            }
            if also is not None:
                await also(conn, done)
        self.forget(tenant_id)
        return done

    async def rewrap_master(self, conn: AsyncConnection, old: bytes, new: bytes) -> int:
        """Re-wrap every tenant key with a new master key (inside the vault's rotation)."""
        t = store.tenant_keys
        rows = (await conn.execute(sa.select(t))).all()
        for row in rows:
            kek = self._open(old, row.wrapped, _kek_aad(row.tenant_id))
            salt = self._open(old, row.salt, _salt_aad(row.tenant_id))
            await conn.execute(
                t.update()
                .where(t.c.tenant_id == row.tenant_id, t.c.version == row.version)
                .values(
                    wrapped=envelope.seal(new, kek, _kek_aad(row.tenant_id)),
                    salt=envelope.seal(new, salt, _salt_aad(row.tenant_id)),
                    master_id=_master_id(new),
                )
            )
        self._tenant.clear()
        return len(rows)
