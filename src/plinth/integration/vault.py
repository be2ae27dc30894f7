"""The secrets vault: per-tenant secrets encrypted at rest with envelope encryption.

Each tenant has a data key (AES-256-GCM) that encrypts its secrets; data keys are stored
wrapped (encrypted) by the master key, which never touches the database. Rotating the master
key rewraps the data keys; rotating a tenant's data key re-encrypts its secrets. Values are
write-only through the API: nothing here returns a value except `reveal`, which connectors
call at the moment of use, and each use is published as a `secret.used` event (name only).
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import re
import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from plinth import envelope
from plinth.db import Database, utcnow
from plinth.errors import BadRequest, Conflict, NotFound, Unavailable
from plinth.events import Event, EventBus
from plinth.integration import store
from plinth.integration.models import SecretInfo
from plinth.settings import Settings

log = logging.getLogger("plinth.integration.vault")
SECRET_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,99}$")
MAX_SECRET_BYTES = 64 * 1024


def master_id(key: bytes) -> str:
    """A fingerprint naming a master key without revealing it."""
    return hashlib.sha256(b"plinth-master-id:" + key).hexdigest()[:16]


def parse_master_key(text: str) -> bytes:
    """A master key from its base64 form (32 bytes)."""
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (ValueError, TypeError) as exc:
        raise BadRequest("The master key is not valid base64", path="master_key") from exc
    if len(key) != 32:
        raise BadRequest(
            "The master key must be 32 bytes (base64 of 32 random bytes)", path="master_key"
        )
    return key


def load_master_key(settings: Settings) -> bytes:
    """The master key from settings; embedded mode generates one into data_dir once."""
    if settings.master_key:
        return parse_master_key(settings.master_key)
    if settings.redis_url:
        raise Unavailable("Scaled-out nodes share one master key: set PLINTH_MASTER_KEY")
    path = Path(settings.data_dir) / "master.key"
    if path.exists():
        return parse_master_key(path.read_text())
    path.parent.mkdir(parents=True, exist_ok=True)
    key = AESGCM.generate_key(bit_length=256)
    # Written whole to a file of our own (O_EXCL + 0600 from the first byte: never
    # world-readable), then linked into place, which fails if it exists: processes starting
    # together on a fresh data_dir (`plinth worker`s) all end up with the one key that won.
    # On disk before it is in place: a crash right after must not leave an empty key file.
    # A filesystem without hard links (some network and container mounts) gets the key
    # written in place, O_EXCL, as before.
    mine = path.with_name(f".master.key.{os.getpid()}.{secrets.token_hex(4)}")
    try:
        _write_key(mine, key)
        try:
            os.link(mine, path)
        except FileExistsError:
            raise
        except OSError:
            _write_key(path, key)
    except FileExistsError:
        return parse_master_key(path.read_text())
    finally:
        mine.unlink(missing_ok=True)
    log.warning(
        "generated a master key at %s (mode 0600); back it up: secrets are unreadable without it",
        path,
    )
    return key


def _write_key(path: Path, key: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(base64.b64encode(key).decode())
        out.flush()
        os.fsync(out.fileno())


class Vault:
    """Encrypted per-tenant secrets. `reveal` is the only way a value comes back out."""

    def __init__(self, settings: Settings, db: Database, events: EventBus) -> None:
        self.settings = settings
        self.db = db
        self.events = events
        self._master: bytes | None = None
        # Other keyrings wrapped by the same master key (field encryption) re-wrap their keys
        # in the rotation's transaction: (conn, old master, new master) -> keys moved.
        self.rewrap_hooks: list[Callable[[AsyncConnection, bytes, bytes], Awaitable[int]]] = []

    @property
    def master(self) -> bytes:
        if self._master is None:
            self._master = load_master_key(self.settings)
        return self._master

    # -- data keys --------------------------------------------------------------------------

    def _wrap(self, data_key: bytes, tenant_id: str, master: bytes | None = None) -> bytes:
        return envelope.seal(master or self.master, data_key, tenant_id.encode())

    def _unwrap(self, wrapped: bytes, tenant_id: str, master: bytes | None = None) -> bytes:
        try:
            return envelope.open_sealed(master or self.master, wrapped, tenant_id.encode())
        except InvalidTag as exc:
            raise Unavailable(
                "A data key does not open with the configured master key; "
                "was the master key changed without rotating?"
            ) from exc

    async def _active_key(
        self, conn: AsyncConnection, tenant_id: str, create: bool = False
    ) -> tuple[int, bytes] | None:
        row = (
            await conn.execute(
                sa.select(store.data_keys).where(
                    store.data_keys.c.tenant_id == tenant_id, store.data_keys.c.active.is_(True)
                )
            )
        ).first()
        if row is not None:
            return row.version, self._unwrap(row.wrapped, tenant_id)
        if not create:
            return None
        return 1, await self._new_key(conn, tenant_id, 1)

    async def _new_key(self, conn: AsyncConnection, tenant_id: str, version: int) -> bytes:
        key = AESGCM.generate_key(bit_length=256)
        await conn.execute(
            store.data_keys.insert().values(
                tenant_id=tenant_id,
                version=version,
                wrapped=self._wrap(key, tenant_id),
                master_id=master_id(self.master),
                active=True,
                created_at=utcnow(),
            )
        )
        return key

    async def _key(self, conn: AsyncConnection, tenant_id: str, version: int) -> bytes:
        row = (
            await conn.execute(
                sa.select(store.data_keys.c.wrapped).where(
                    store.data_keys.c.tenant_id == tenant_id, store.data_keys.c.version == version
                )
            )
        ).first()
        if row is None:
            raise Unavailable("A secret's data key is missing")
        return self._unwrap(row.wrapped, tenant_id)

    # -- secrets ----------------------------------------------------------------------------

    async def put(self, tenant_id: str, name: str, value: str, by: str | None = None) -> SecretInfo:
        """Store (or replace) a secret. The value is encrypted before it reaches the database."""
        check_name(name)
        if not isinstance(value, str) or not value:
            raise BadRequest("A secret value is a non-empty string", path="value")
        if len(value.encode()) > MAX_SECRET_BYTES:
            raise BadRequest(f"A secret is at most {MAX_SECRET_BYTES} bytes", path="value")
        now = utcnow()
        try:
            created = await self._write(tenant_id, name, value, by, now)
        except IntegrityError as exc:  # a concurrent first write of this tenant or name
            raise Conflict(f"Secret {name!r} was written concurrently; retry", path="name") from exc
        await self.events.publish(Event("secret.written", tenant_id, {"name": name, "by": by}))
        return created

    async def _write(
        self, tenant_id: str, name: str, value: str, by: str | None, now: Any
    ) -> SecretInfo:
        async with self.db.transaction() as conn:
            active = await self._active_key(conn, tenant_id, create=True)
            assert active is not None
            version, key = active
            nonce = os.urandom(12)
            ciphertext = AESGCM(key).encrypt(nonce, value.encode(), _aad(tenant_id, name))
            old = (
                await conn.execute(
                    sa.select(store.secrets.c.created_at).where(
                        store.secrets.c.tenant_id == tenant_id, store.secrets.c.name == name
                    )
                )
            ).first()
            values = dict(
                key_version=version,
                nonce=nonce,
                ciphertext=ciphertext,
                updated_by=by,
                updated_at=now,
            )
            if old is None:
                await conn.execute(
                    store.secrets.insert().values(
                        tenant_id=tenant_id, name=name, created_at=now, **values
                    )
                )
                created = now
            else:
                await conn.execute(
                    store.secrets.update()
                    .where(store.secrets.c.tenant_id == tenant_id, store.secrets.c.name == name)
                    .values(**values)
                )
                created = old.created_at
        return SecretInfo(name, version, created, now, by)

    async def list(self, tenant_id: str) -> list[SecretInfo]:
        """The tenant's secrets, without values."""
        async with self.db.read() as conn:
            rows = (
                await conn.execute(
                    sa.select(
                        store.secrets.c.name,
                        store.secrets.c.key_version,
                        store.secrets.c.created_at,
                        store.secrets.c.updated_at,
                        store.secrets.c.updated_by,
                    )
                    .where(store.secrets.c.tenant_id == tenant_id)
                    .order_by(store.secrets.c.name)
                )
            ).all()
        return [
            SecretInfo(r.name, r.key_version, r.created_at, r.updated_at, r.updated_by)
            for r in rows
        ]

    async def delete(self, tenant_id: str, name: str, by: str | None = None) -> None:
        """Forget a secret."""
        async with self.db.transaction() as conn:
            result = await conn.execute(
                store.secrets.delete().where(
                    store.secrets.c.tenant_id == tenant_id, store.secrets.c.name == name
                )
            )
        if not result.rowcount:
            raise NotFound(f"No secret named {name!r}", path="name")
        await self.events.publish(Event("secret.deleted", tenant_id, {"name": name, "by": by}))

    async def reveal(self, tenant_id: str, name: str, purpose: str) -> str:
        """The plain value, for use at once (never to return or log); the use is audited."""
        async with self.db.read() as conn:
            row = (
                await conn.execute(
                    sa.select(store.secrets).where(
                        store.secrets.c.tenant_id == tenant_id, store.secrets.c.name == name
                    )
                )
            ).first()
            if row is None:
                raise NotFound(f"No secret named {name!r} in this tenant", path=f"secret.{name}")
            key = await self._key(conn, tenant_id, row.key_version)
        try:
            value = AESGCM(key).decrypt(row.nonce, row.ciphertext, _aad(tenant_id, name))
        except InvalidTag as exc:
            raise Unavailable(f"Secret {name!r} failed its integrity check") from exc
        await self.events.publish(
            Event("secret.used", tenant_id, {"name": name, "purpose": purpose})
        )
        return value.decode()

    # -- rotation ---------------------------------------------------------------------------

    async def rotate_tenant_key(self, tenant_id: str, by: str | None = None) -> int:
        """A new data key for the tenant; every secret is re-encrypted with it, in one go."""
        async with self.db.transaction() as conn:
            active = await self._active_key(conn, tenant_id)
            keys = {}
            for row in (
                await conn.execute(
                    sa.select(store.data_keys).where(store.data_keys.c.tenant_id == tenant_id)
                )
            ).all():
                keys[row.version] = self._unwrap(row.wrapped, tenant_id)
            version = (max(keys) if keys else 0) + 1
            await conn.execute(
                store.data_keys.update()
                .where(store.data_keys.c.tenant_id == tenant_id)
                .values(active=False)
            )
            new_key = await self._new_key(conn, tenant_id, version)
            rows = (
                await conn.execute(
                    sa.select(store.secrets).where(store.secrets.c.tenant_id == tenant_id)
                )
            ).all()
            for row in rows:
                aad = _aad(tenant_id, row.name)
                plain = AESGCM(keys[row.key_version]).decrypt(row.nonce, row.ciphertext, aad)
                nonce = os.urandom(12)
                await conn.execute(
                    store.secrets.update()
                    .where(store.secrets.c.tenant_id == tenant_id, store.secrets.c.name == row.name)
                    .values(
                        key_version=version,
                        nonce=nonce,
                        ciphertext=AESGCM(new_key).encrypt(nonce, plain, aad),
                    )
                )
            # Old keys encrypt nothing any more: drop them so a leaked old key opens nothing.
            await conn.execute(
                store.data_keys.delete().where(
                    store.data_keys.c.tenant_id == tenant_id, store.data_keys.c.version != version
                )
            )
        await self.events.publish(
            Event(
                "vault.key_rotated",
                tenant_id,
                {
                    "version": version,
                    "previous": active[0] if active else None,
                    "secrets": len(rows),
                    "by": by,
                },
            )
        )
        return version

    async def rotate_master(self, new_master: bytes, by: str | None = None) -> int:
        """Rewrap every data key with `new_master`; then run with that key. Returns keys moved."""
        if len(new_master) != 32:
            raise BadRequest("The new master key must be 32 bytes", path="master_key")
        async with self.db.transaction() as conn:
            rows = (await conn.execute(sa.select(store.data_keys))).all()
            for row in rows:
                key = self._unwrap(row.wrapped, row.tenant_id)
                await conn.execute(
                    store.data_keys.update()
                    .where(
                        store.data_keys.c.tenant_id == row.tenant_id,
                        store.data_keys.c.version == row.version,
                    )
                    .values(
                        wrapped=self._wrap(key, row.tenant_id, new_master),
                        master_id=master_id(new_master),
                    )
                )
            for hook in self.rewrap_hooks:
                await hook(conn, self.master, new_master)
        self._master = new_master
        await self.events.publish(
            Event("vault.master_rotated", None, {"data_keys": len(rows), "by": by})
        )
        return len(rows)


def check_name(name: str) -> str:
    if not isinstance(name, str) or not SECRET_NAME.match(name):
        raise BadRequest(
            "A secret name is 1-100 letters, digits, '_', '.' or '-', starting with a letter",
            path="name",
        )
    return name


def _aad(tenant_id: str, name: str) -> bytes:
    # Binding ciphertext to tenant and name: a row copied elsewhere fails to decrypt.
    return f"{tenant_id}\x00{name}".encode()
