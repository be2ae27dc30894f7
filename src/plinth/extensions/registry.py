"""The plugin registry: published versions (immutable, hashed, compiled and linked before
they are recorded) and the signing key each plugin name is pinned to."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from plinth.db import Database, utcnow
from plinth.errors import (
    Conflict,
    Fault,
    NotFound,
    PreconditionFailed,
    ValidationFailed,
)
from plinth.extensions import manifest as manifest_mod
from plinth.extensions import store
from plinth.extensions.executor import PluginExecutor
from plinth.extensions.models import (
    PluginVersion,
)
from plinth.extensions.package import (
    Package,
    rotation_message,
    signed_message,
    unpack,
    verify,
)
from plinth.extensions.ports import Services
from plinth.governance.access import Resource, authorize
from plinth.governance.principal import Principal
from plinth.ids import new_id


class Registry:
    """Publish plugin versions and read them back; a parsed version is kept for the process."""

    platform: Services
    db: Database
    blob_dir: Path
    executor: PluginExecutor
    _versions: dict[tuple[str, str], PluginVersion]

    async def publish(self, data: bytes, principal: Principal) -> PluginVersion:
        """Store a package version (platform admins publish); the hash is computed here."""
        authorize(self.platform.authorizer, principal, "plugin.publish", Resource("plugin", "*"))
        package = await asyncio.to_thread(unpack, data)
        return await self.publish_package(package, principal)

    async def publish_package(self, package: Package, principal: Principal) -> PluginVersion:
        """Store an unpacked package (the demo publishes its build without zipping it)."""
        authorize(self.platform.authorizer, principal, "plugin.publish", Resource("plugin", "*"))
        m = package.manifest
        if package.signature and package.public_key:
            message = signed_message(
                m.name, m.version, package.sha256, package.manifest_text, package.module_hashes()
            )
            if not verify(package.public_key, package.signature, message):
                raise ValidationFailed.of(
                    [
                        Fault(
                            "signature.json",
                            "The signature does not verify for this package",
                            "signature",
                        )
                    ]
                )
        # The component is compiled and linked (in a worker) before anything is recorded: a
        # package that would fail its first call is refused now, with wasmtime's reason.
        self.blob_dir.mkdir(parents=True, exist_ok=True)
        blob = self.blob_dir / f"{package.sha256}.wasm"
        if not blob.exists():
            tmp = blob.with_suffix(f".{new_id()}.tmp")
            await asyncio.to_thread(tmp.write_bytes, package.wasm)
            tmp.replace(blob)
        await self.executor.compile(package.sha256, blob, _exports(m))
        now = utcnow()
        async with self.db.transaction() as conn:
            t = store.plugin_versions
            exists = (
                await conn.execute(
                    sa.select(t.c.version).where(t.c.name == m.name, t.c.version == m.version)
                )
            ).first()
            if exists:
                raise Conflict(
                    f"{m.name} {m.version} is already published; versions are "
                    "immutable, publish a new version",
                    path="version",
                )
            other = (
                await conn.execute(sa.select(t.c.publisher).where(t.c.name == m.name).limit(1))
            ).first()
            if other is not None and other.publisher != m.publisher:
                raise Conflict(
                    f"{m.name} belongs to publisher {other.publisher!r}", path="publisher"
                )
            await self._check_key(conn, m.name, package.public_key, principal, now)
            # UI modules sit next to the component, by their own hash (served immutable).
            modules = {}
            for path, digest in package.module_hashes().items():
                body = package.modules[path]
                modules[path] = {"sha256": digest, "size": len(body)}
                js = self.blob_dir / f"{digest}.js"
                if not js.exists():
                    tmp = js.with_suffix(f".{new_id()}.tmp")
                    await asyncio.to_thread(tmp.write_bytes, body)
                    tmp.replace(js)
            await conn.execute(
                t.insert().values(
                    name=m.name,
                    version=m.version,
                    publisher=m.publisher,
                    sha256=package.sha256,
                    size=len(package.wasm),
                    manifest=package.manifest_text,
                    signature=package.signature,
                    public_key=package.public_key,
                    published_at=now,
                    modules=modules or None,
                )
            )
            await self.platform.governance.audit.by(None, principal.audit_name()).write(
                conn,
                "plugin.published",
                f"plugin:{m.name}",
                version=m.version,
                publisher=m.publisher,
                sha256=package.sha256,
                signed=bool(package.signature),
            )
        return PluginVersion(
            m.name,
            m.version,
            m.publisher,
            package.sha256,
            len(package.wasm),
            m,
            bool(package.signature),
            now,
            modules,
        )

    async def _check_key(
        self, conn: Any, name: str, public_key: str | None, principal: Principal, now: Any
    ) -> None:
        """The first signed version pins its key; every later version must be signed by it."""
        k = store.plugin_keys
        pinned = (await conn.execute(sa.select(k.c.public_key).where(k.c.name == name))).first()
        if pinned is None:
            if public_key is not None:
                await conn.execute(
                    k.insert().values(
                        name=name,
                        public_key=public_key,
                        pinned_at=now,
                        pinned_by=principal.audit_name(),
                    )
                )
            return
        if public_key != pinned.public_key:
            why = "is unsigned" if public_key is None else "is signed with another key"
            raise ValidationFailed.of(
                [
                    Fault(
                        "signature.json",
                        f"{name} is pinned to key {pinned.public_key[:16]}…; this version "
                        f"{why}. Sign it with the pinned key, or rotate the key first "
                        f"(PUT /api/plugins/{name}/key)",
                        "signature_key",
                    )
                ],
                "package",
            )

    async def signing_key(self, name: str) -> dict[str, Any] | None:
        """The key a plugin's versions must be signed with (None: no signed version yet)."""
        k = store.plugin_keys
        async with self.db.read() as conn:
            row = (await conn.execute(sa.select(k).where(k.c.name == name))).first()
        if row is None:
            return None
        return {
            "name": row.name,
            "public_key": row.public_key,
            "pinned_at": row.pinned_at.isoformat(),
            "pinned_by": row.pinned_by,
        }

    async def rotate_key(
        self, name: str, public_key: str, proof: str, reason: str, principal: Principal
    ) -> dict[str, Any]:
        """Pin another signing key for a plugin name: platform admins only, audited, and the
        new key must sign `rotation_message` (so nobody pins a key no one holds)."""
        authorize(self.platform.authorizer, principal, "plugin.publish", Resource("plugin", name))
        if not verify(public_key, proof, rotation_message(name, public_key)):
            raise ValidationFailed.of(
                [Fault("signature", "The new key's signature of the rotation does not verify")],
                "key rotation",
            )
        if not await self.versions(name):
            raise NotFound(f"No published plugin {name}", path="name")
        k = store.plugin_keys
        now = utcnow()
        audit = self.platform.governance.audit.by(None, principal.audit_name())
        async with self.db.transaction() as conn:
            old = (await conn.execute(sa.select(k.c.public_key).where(k.c.name == name))).first()
            values = {
                "public_key": public_key,
                "pinned_at": now,
                "pinned_by": principal.audit_name(),
            }
            if old is None:
                await conn.execute(k.insert().values(name=name, **values))
            else:
                await conn.execute(k.update().where(k.c.name == name).values(**values))
            await audit.write(  # with the key it records, or neither is kept
                conn,
                "plugin.key_rotated",
                f"plugin:{name}",
                old_key=old.public_key if old else None,
                new_key=public_key,
                reason=reason[:500],
            )
        found = await self.signing_key(name)
        assert found is not None
        return found

    async def versions(self, name: str | None = None) -> list[PluginVersion]:
        """Published versions, newest first per plugin."""
        t = store.plugin_versions
        query = sa.select(t).order_by(t.c.name, t.c.published_at.desc())
        if name is not None:
            query = query.where(t.c.name == name)
        async with self.db.read() as conn:
            return [self._version(r) for r in await conn.execute(query)]

    async def version(self, name: str, version: str | None = None) -> PluginVersion:
        """One published version (the latest when `version` is None)."""
        if version is not None and (name, version) in self._versions:
            return self._versions[(name, version)]
        found = await self.versions(name)
        if version is not None:
            found = [v for v in found if v.version == version]
        if not found:
            what = f"{name} {version}" if version else name
            raise NotFound(f"No published plugin {what}", path="version" if version else "name")
        chosen = max(found, key=lambda v: v.published_at) if version is None else found[0]
        self._versions[(name, chosen.version)] = chosen
        return chosen

    def version_of(self, row: Any) -> PluginVersion:
        """A stored plugin version row, parsed (and kept: published versions are immutable)."""
        return self._version(row)

    def _version(self, row: Any) -> PluginVersion:
        manifest = manifest_mod.parse(row.manifest)
        v = PluginVersion(
            row.name,
            row.version,
            row.publisher,
            row.sha256,
            row.size,
            manifest,
            bool(row.signature),
            row.published_at,
            dict(row.modules or {}),
        )
        object.__setattr__(v, "_signature", (row.signature, row.public_key, row.manifest))
        return v

    def _verify_stored(self, v: PluginVersion) -> None:
        """On install: the stored bytes still hash to the published hash, the signature holds."""
        import hashlib

        blob = self.blob_dir / f"{v.sha256}.wasm"
        if not blob.exists() or hashlib.sha256(blob.read_bytes()).hexdigest() != v.sha256:
            raise PreconditionFailed(
                "The stored component does not match its published hash", path="sha256"
            )
        signature, public_key, manifest_text = getattr(v, "_signature", (None, None, ""))
        for entry in v.modules.values():
            js = self.blob_dir / f"{entry['sha256']}.js"
            if not js.exists() or hashlib.sha256(js.read_bytes()).hexdigest() != entry["sha256"]:
                raise PreconditionFailed(
                    "A stored UI module does not match its published hash", path="modules"
                )
        hashes = {path: entry["sha256"] for path, entry in v.modules.items()}
        if (
            signature
            and public_key
            and not verify(
                public_key,
                signature,
                signed_message(v.name, v.version, v.sha256, manifest_text, hashes),
            )
        ):
            raise PreconditionFailed("The publisher signature does not verify", path="signature")

    async def compile(self, name: str, version: str | None = None) -> bool:
        """Compile a version ahead of its first call (cached on disk); True if it compiled."""
        v = await self.version(name, version)
        return await self.executor.compile(
            v.sha256, self.blob_dir / f"{v.sha256}.wasm", _exports(v.manifest)
        )


def _exports(manifest: Any) -> list[str]:
    """The component exports a manifest's extension points call."""
    kinds = {p.kind for p in manifest.points}
    return [k for k in ("action", "before-write") if k in kinds]
