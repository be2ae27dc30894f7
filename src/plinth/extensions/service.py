"""The plugin service: registry, per-tenant installation with grants, and metered calls."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import re
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from plinth.db import utcnow
from plinth.errors import (
    Conflict,
    Fault,
    NotFound,
    PlinthError,
    PreconditionFailed,
    RateLimited,
    ValidationFailed,
)
from plinth.events import Event
from plinth.extensions import build, store
from plinth.extensions import host as host_mod
from plinth.extensions import manifest as manifest_mod
from plinth.extensions.executor import PluginExecutor, default_capacity
from plinth.extensions.host import CallHost
from plinth.extensions.models import (
    CAPABILITIES,
    DEFAULT_FUEL_PER_MINUTE,
    DEFAULT_LIMITS,
    PLATFORM_MAX,
    Installation,
    Limits,
    PluginBusy,
    PluginError,
    PluginFailed,
    PluginInvalidOutput,
    PluginNestedTooDeep,
    PluginVersion,
    PointSpec,
)
from plinth.extensions.package import (
    Package,
    rotation_message,
    signed_message,
    unpack,
    verify,
)
from plinth.extensions.ports import Services
from plinth.extensions.sandbox import Outcome, artifact
from plinth.governance.access import Resource, authorize
from plinth.governance.principal import Principal
from plinth.ids import new_id
from plinth.jsonschema import Validator, compile_schema, faults
from plinth.recent import Recent
from plinth.tenancy.models import Tenant

log = logging.getLogger("plinth.extensions")
MAX_NESTING = 3  # plugin calls beneath a plugin call (each holds a worker thread meanwhile)
UI_BODIES_KEPT = 64  # UI modules kept in memory (the oldest goes first)
METERING_LINGER = 0.5  # seconds a call's metering row may wait for others to share a batch
METERING_BATCH = 500  # rows per INSERT at most (a full batch is written at once)
HOOKS_TTL = 5.0  # seconds another node's install/uninstall may take to reach this one's writes
ACTION_PATH = re.compile(r"^/api/t/[^/]+/plugins/[^/]+/actions/[^/]+$")


def ui_module_url(tenant_slug: str, name: str, sha256: str) -> str:
    """Where the portal loads a plugin's UI module: per tenant, immutable by its hash."""
    return f"/a/{tenant_slug}/-/plugins/{name}/{sha256}.js"


class PluginService:
    """What other layers call: publish, install, grant, and call plugins (`platform.plugins`)."""

    def __init__(self, platform: Services) -> None:
        self.platform = platform
        self.db = platform.db
        data_dir = Path(platform.settings.data_dir)
        self.blob_dir = data_dir / "plugins"
        # Compiled artifacts are keyed by the component's hash and the wasmtime version, so
        # every data dir on the machine can share them (compiling takes seconds).
        cache = (
            getattr(platform.settings, "plugin_cache_dir", None)
            or build.default_cache_dir() / "compiled"
        )
        settings = platform.settings
        workers = settings.plugin_workers or default_capacity()
        self.executor = PluginExecutor(
            Path(cache),
            measure_memory=bool(settings.plugin_measure_memory),
            capacity=workers,
            per_tenant=settings.plugin_tenant_workers or max(1, workers // 2),
        )
        self.cache_dir = Path(cache)
        self.fuel_per_minute = DEFAULT_FUEL_PER_MINUTE
        # The per-tenant fuel budget lives in the integration layer's rate limiter (`limits`):
        # in process memory when embedded, in Redis when scaled out, so nodes share it.
        self.budget = FuelBudget(platform)
        # Which installed plugins hook which entities, per tenant: [(name, manifest)]. Dropped
        # here on install/upgrade/uninstall; another node's change shows within the TTL. When
        # it runs out, the requests in flight wait for one read rather than each send theirs.
        self._hook_cache: Recent[str, list[tuple[str, Any]]] = Recent(HOOKS_TTL)
        # The installations calls run under, per tenant: name -> (expires, installation). Dropped
        # on every change here and on another node's install/upgrade/grant/uninstall event;
        # another node's limits change shows within HOOKS_TTL.
        self._installs: dict[str, dict[str, tuple[float, Installation]]] = {}
        platform.events.subscribe("plugin.*", self._on_plugin_event, cluster=True)
        # The UI elements each tenant's portal may load (every page load asks), the same way.
        self._ui_cache: dict[str, tuple[float, list[dict[str, Any]]]] = {}
        self._ui_bodies: dict[str, bytes] = {}  # module bodies by hash (immutable; ≤ 512 KB)
        # Published versions are immutable, so a parsed one can be kept for the process.
        self._versions: dict[tuple[str, str], PluginVersion] = {}
        # Actions' compiled schemas by (plugin, version, action, "input"|"output").
        self._validators: dict[tuple[str, str, str, str], Validator] = {}
        # Metering rows and `plugin.called` events waiting for the next batch (see `_meter`).
        self._metered: list[tuple[dict[str, Any], Event]] = []
        self._metering: asyncio.Task[None] | None = None
        self._metering_due = asyncio.Event()  # write now: a batch is full, or a reader waits
        platform.on_stop(self.stop)

    async def stop(self) -> None:
        await self.flush_metering()
        await self.executor.stop()

    def is_compiled(self, sha256: str) -> bool:
        """Whether a component's compiled artifact is on disk (its first call loads it fast)."""
        return artifact(self.cache_dir, sha256, self.executor.measure_memory)

    # -- registry ------------------------------------------------------------------------
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
        await self.platform.governance.record(
            None,
            principal.audit_name(),
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

    async def warm(self) -> None:
        """Start the worker pool with the installed plugins' components loaded, for a process
        that runs plugin calls from its start (`plinth worker`); elsewhere the pool fills from
        the first call on."""
        it = store.plugin_installs
        async with self.db.read() as conn:
            installed = (await conn.execute(sa.select(it.c.name, it.c.version).distinct())).all()
        if not installed:
            return
        components: list[tuple[str, Path]] = []
        for row in installed:
            try:
                v = await self.version(row.name, row.version)
            except NotFound:
                continue
            blob = self.blob_dir / f"{v.sha256}.wasm"
            if blob.exists():
                components.append((v.sha256, blob))
        await self.executor.warm(components)

    async def compile(self, name: str, version: str | None = None) -> bool:
        """Compile a version ahead of its first call (cached on disk); True if it compiled."""
        v = await self.version(name, version)
        return await self.executor.compile(
            v.sha256, self.blob_dir / f"{v.sha256}.wasm", _exports(v.manifest)
        )

    # -- installation --------------------------------------------------------------------
    async def _tenant(self, tenant: Tenant | str) -> Tenant:
        if isinstance(tenant, Tenant):
            return tenant
        found = await self.platform.tenants.find(tenant)
        if found is None:
            raise NotFound(f"No tenant named {tenant!r}", path="tenant")
        return found

    def _check_grant(
        self, v: PluginVersion, capabilities: list[str], hosts: list[str], what: str
    ) -> None:
        missing = [c for c in v.manifest.capabilities if c not in capabilities]
        missing_hosts = [h for h in v.manifest.http_hosts if h not in hosts]
        bad = [
            Fault(
                f"grant.capabilities.{c}",
                f"{v.name} {v.version} requests {c!r}; approve it to {what}",
                "not_granted",
            )
            for c in missing
        ]
        bad += [
            Fault(
                f"grant.http_hosts.{h}",
                f"{v.name} {v.version} requests HTTP to {h}; approve it to {what}",
                "not_granted",
            )
            for h in missing_hosts
        ]
        bad += [
            Fault("grant.capabilities", f"Unknown capability {c!r}", "unknown")
            for c in capabilities
            if c not in CAPABILITIES
        ]
        if bad:
            raise PreconditionFailed(
                f"The grant does not cover what {v.name} {v.version} "
                f"requests; {len(bad)} approval(s) missing",
                path=bad[0].path,
                faults=bad,
            )

    async def install(
        self,
        tenant: Tenant | str,
        name: str,
        principal: Principal,
        version: str | None = None,
        capabilities: list[str] | None = None,
        http_hosts: list[str] | None = None,
        pinned: bool = False,
    ) -> Installation:
        """Install a version for a tenant with the capabilities its admin approves."""
        t = await self._tenant(tenant)
        authorize(
            self.platform.authorizer,
            principal,
            "plugin.install",
            Resource("plugin", name, tenant_id=t.id),
        )
        v = await self.version(name, version)
        await asyncio.to_thread(self._verify_stored, v)
        caps, hosts = list(capabilities or []), list(http_hosts or [])
        self._check_grant(v, caps, hosts, "install")
        now = utcnow()
        async with self.db.transaction() as conn:
            it = store.plugin_installs
            if (
                await conn.execute(
                    sa.select(it.c.name).where(it.c.tenant_id == t.id, it.c.name == name)
                )
            ).first():
                raise Conflict(f"{name} is already installed; upgrade it instead", path="name")
            await conn.execute(
                it.insert().values(
                    tenant_id=t.id,
                    name=name,
                    version=v.version,
                    pinned=pinned,
                    capabilities=caps,
                    http_hosts=hosts,
                    limits={},
                    installed_at=now,
                    updated_at=now,
                )
            )
        await self._event(
            "plugin.installed",
            t,
            {
                "plugin": name,
                "version": v.version,
                "capabilities": caps,
                "http_hosts": hosts,
                "by": principal.audit_name(),
            },
        )
        return await self.installation(t, name)

    async def installation(self, tenant: Tenant | str, name: str) -> Installation:
        t = await self._tenant(tenant)
        it = store.plugin_installs
        async with self.db.read() as conn:
            row = (
                await conn.execute(sa.select(it).where(it.c.tenant_id == t.id, it.c.name == name))
            ).first()
        if row is None:
            raise NotFound(f"{name} is not installed in this tenant", path="name")
        return Installation(
            t.id,
            row.name,
            row.version,
            row.pinned,
            tuple(row.capabilities),
            tuple(row.http_hosts),
            row.limits or {},
            row.installed_at,
            row.updated_at,
        )

    async def installations(self, tenant: Tenant | str) -> list[Installation]:
        t = await self._tenant(tenant)
        it = store.plugin_installs
        async with self.db.read() as conn:
            names = [
                r.name
                for r in await conn.execute(
                    sa.select(it.c.name).where(it.c.tenant_id == t.id).order_by(it.c.name)
                )
            ]
        return [await self.installation(t, n) for n in names]

    async def actions(self, tenant: Tenant | str) -> dict[str, tuple[str, frozenset[str]]]:
        """The tenant's installed plugins: name -> (installed version, the actions it provides)."""
        found: dict[str, tuple[str, frozenset[str]]] = {}
        for inst in await self.installations(tenant):
            v = await self.version(inst.name, inst.version)
            found[inst.name] = (
                inst.version,
                frozenset(p.name for p in v.manifest.points if p.kind == "action"),
            )
        return found

    async def upgrade(
        self,
        tenant: Tenant | str,
        name: str,
        principal: Principal,
        version: str | None = None,
        capabilities: list[str] | None = None,
        http_hosts: list[str] | None = None,
    ) -> Installation:
        """Move to another version; one asking for more than the grant needs a new approval."""
        t = await self._tenant(tenant)
        authorize(
            self.platform.authorizer,
            principal,
            "plugin.install",
            Resource("plugin", name, tenant_id=t.id),
        )
        current = await self.installation(t, name)
        if current.pinned:
            raise Conflict(
                f"{name} is pinned to {current.version}; unpin it to upgrade", path="pinned"
            )
        v = await self.version(name, version)
        await asyncio.to_thread(self._verify_stored, v)
        caps = list(capabilities) if capabilities is not None else list(current.capabilities)
        hosts = list(http_hosts) if http_hosts is not None else list(current.http_hosts)
        self._check_grant(v, caps, hosts, "upgrade")
        await self._update(t, name, version=v.version, capabilities=caps, http_hosts=hosts)
        await self._event(
            "plugin.upgraded",
            t,
            {
                "plugin": name,
                "from": current.version,
                "to": v.version,
                "capabilities": caps,
                "by": principal.audit_name(),
            },
        )
        return await self.installation(t, name)

    async def grant(
        self,
        tenant: Tenant | str,
        name: str,
        principal: Principal,
        capabilities: list[str],
        http_hosts: list[str],
    ) -> Installation:
        """Replace the approval of an installed plugin; it must still cover what it requests."""
        t = await self._tenant(tenant)
        authorize(
            self.platform.authorizer,
            principal,
            "plugin.install",
            Resource("plugin", name, tenant_id=t.id),
        )
        current = await self.installation(t, name)
        v = await self.version(name, current.version)
        self._check_grant(v, capabilities, http_hosts, "keep it installed")
        await self._update(t, name, capabilities=list(capabilities), http_hosts=list(http_hosts))
        await self._event(
            "plugin.granted",
            t,
            {
                "plugin": name,
                "capabilities": capabilities,
                "http_hosts": http_hosts,
                "by": principal.audit_name(),
            },
        )
        return await self.installation(t, name)

    async def pin(
        self, tenant: Tenant | str, name: str, principal: Principal, pinned: bool = True
    ) -> Installation:
        """Pin (or unpin) the installed version so upgrades are refused."""
        t = await self._tenant(tenant)
        authorize(
            self.platform.authorizer,
            principal,
            "plugin.install",
            Resource("plugin", name, tenant_id=t.id),
        )
        await self.installation(t, name)
        await self._update(t, name, pinned=pinned)
        return await self.installation(t, name)

    async def set_limits(
        self,
        tenant: Tenant | str,
        name: str,
        point: str,
        limits: dict[str, int],
        principal: Principal,
    ) -> Installation:
        """Override a point's limits for this tenant, within the platform maxima."""
        t = await self._tenant(tenant)
        authorize(
            self.platform.authorizer,
            principal,
            "plugin.install",
            Resource("plugin", name, tenant_id=t.id),
        )
        inst = await self.installation(t, name)
        bad = []
        if point not in DEFAULT_LIMITS:
            bad.append(Fault("point", f"Unknown extension point {point!r}", "unknown"))
        top = PLATFORM_MAX.as_dict()
        for key, value in limits.items():
            if key not in top:
                bad.append(Fault(f"limits.{key}", f"Unknown limit {key!r}", "unknown"))
            elif not isinstance(value, int) or value <= 0 or value > top[key]:
                bad.append(Fault(f"limits.{key}", f"{key} must be 1..{top[key]}", "range"))
        if bad:
            raise ValidationFailed.of(bad, "limits")
        merged = {**inst.limits, point: {**inst.limits.get(point, {}), **limits}}
        await self._update(t, name, limits=merged)
        return await self.installation(t, name)

    async def uninstall(self, tenant: Tenant | str, name: str, principal: Principal) -> None:
        """Remove a plugin and its kv data from a tenant."""
        t = await self._tenant(tenant)
        authorize(
            self.platform.authorizer,
            principal,
            "plugin.install",
            Resource("plugin", name, tenant_id=t.id),
        )
        await self.installation(t, name)
        async with self.db.transaction() as conn:
            for table in (store.plugin_installs, store.plugin_kv):
                col = table.c.name if table is store.plugin_installs else table.c.plugin
                await conn.execute(table.delete().where(table.c.tenant_id == t.id, col == name))
        await self._event("plugin.uninstalled", t, {"plugin": name, "by": principal.audit_name()})

    # -- UI components (custom elements in portal pages) --------------------------------
    async def ui_components(self, tenant: Tenant | str) -> list[dict[str, Any]]:
        """The custom elements a tenant's portal may use: every component of each installed
        version whose grant approves `ui`, with its props schema and module URL."""
        t = await self._tenant(tenant)
        now = time.monotonic()
        cached = self._ui_cache.get(t.id)
        if cached is not None and cached[0] >= now:
            return cached[1]
        found = []
        for inst in await self.installations(t):
            if "ui" not in inst.capabilities:
                continue
            v = await self.version(inst.name, inst.version)
            for spec in v.manifest.components():
                sha = v.module_sha(spec.name)
                if sha is None:
                    continue
                found.append(
                    {
                        "kind": f"plugin:{v.name}/{spec.name}",
                        "plugin": v.name,
                        "version": v.version,
                        "tag": spec.name,
                        "description": spec.description,
                        "props": spec.input_schema,
                        "sha256": sha,
                        "url": ui_module_url(t.slug, v.name, sha),
                    }
                )
        self._ui_cache[t.id] = (now + HOOKS_TTL, found)
        return found

    async def ui_module(self, tenant: Tenant | str, name: str, sha256: str) -> bytes:
        """The ES module `sha256` of plugin `name` as installed in `tenant`.

        NotFound alike when the tenant does not exist, the plugin is not installed there, its
        grant lacks `ui`, or the installed version has no module of that hash: a module is
        only served to the tenants whose admin approved it. (Another node's uninstall shows
        here within HOOKS_TTL seconds, like hooks; this node's at once.)
        """
        missing = NotFound(
            f"No UI module {sha256[:12]} of an installed plugin {name!r}", path="module"
        )
        try:
            served = await self.ui_components(tenant)  # installed, `ui` approved; cached
        except NotFound:
            raise missing from None
        if not any(c["plugin"] == name and c["sha256"] == sha256 for c in served):
            raise missing
        body = self._ui_bodies.get(sha256)
        if body is None:
            blob = self.blob_dir / f"{sha256}.js"
            try:
                body = await asyncio.to_thread(blob.read_bytes)
            except FileNotFoundError:
                raise missing from None
            if len(self._ui_bodies) >= UI_BODIES_KEPT:
                self._ui_bodies.pop(next(iter(self._ui_bodies)))
            self._ui_bodies[sha256] = body
        return body

    async def _installed(self, t: Tenant, name: str) -> Installation:
        """`installation`, kept for the call path (see `_installs`)."""
        now = time.monotonic()
        found = self._installs.get(t.id, {}).get(name)
        if found is not None and found[0] > now:
            return found[1]
        inst = await self.installation(t, name)
        self._installs.setdefault(t.id, {})[name] = (now + HOOKS_TTL, inst)
        return inst

    async def _on_plugin_event(self, event: Event) -> None:
        if event.topic != "plugin.called" and event.tenant_id:
            self._installs.pop(event.tenant_id, None)

    async def _update(self, t: Tenant, name: str, **values: Any) -> None:
        self._installs.pop(t.id, None)
        it = store.plugin_installs
        async with self.db.transaction() as conn:
            await conn.execute(
                it.update()
                .where(it.c.tenant_id == t.id, it.c.name == name)
                .values(updated_at=utcnow(), **values)
            )
        self._installs.pop(t.id, None)  # and again: a call may have read the old row meanwhile

    # -- calls ---------------------------------------------------------------------------
    def early_refusal(self, tenant_id: str, method: str, path: str) -> PlinthError | None:
        """The gateway's guard (`integration.gateway.Guard`): an action call of a tenant whose
        plugin queue is full is refused before authentication, routing or its body are looked
        at. Only a 429 `plugin_tenant_busy` (or 503) with Retry-After is revealed to a caller
        not yet authenticated, as the gateway's rate limits do."""
        if method != "POST" or ACTION_PATH.match(path) is None:
            return None
        return self.executor.refusal(tenant_id)

    async def call_action(
        self,
        tenant: Tenant | str,
        plugin_name: str,
        action_name: str,
        input: dict[str, Any],
        principal: Principal,
    ) -> dict[str, Any]:
        """Run a plugin's action for a tenant and return its output (validated)."""
        t = await self._tenant(tenant)
        self.executor.refuse_early(t.id)
        inst, v = await self._prepare(t, plugin_name, principal)
        spec = v.manifest.action(action_name)
        if spec is None:
            raise NotFound(f"{plugin_name} has no action {action_name!r}", path="action")
        if spec.input_schema is not None:
            found = faults(self._validator(v, spec, "input"), input, "input")
            if found:
                raise ValidationFailed.of(found, "action input")
        outcome = await self._run(
            t, inst, v, "action", action_name, principal, (action_name, json.dumps(input))
        )
        output = self._output(outcome, v)
        if not isinstance(output, dict):
            raise PluginInvalidOutput(
                "The action returned something other than an object", path="output"
            )
        if spec.output_schema is not None:
            found = faults(self._validator(v, spec, "output"), output, "output")
            if found:
                raise PluginInvalidOutput(
                    f"The action output does not match its schema: "
                    f"{found[0].path}: {found[0].message}",
                    path=found[0].path,
                    faults=found,
                )
        return output

    def _validator(self, v: PluginVersion, spec: PointSpec, side: str) -> Validator:
        """An action's input or output schema, compiled once per version (they are immutable)."""
        key = (v.name, v.version, spec.name, side)
        found = self._validators.get(key)
        if found is None:
            schema = spec.input_schema if side == "input" else spec.output_schema
            found = self._validators[key] = compile_schema(schema or {})
        return found

    async def before_write(
        self,
        tenant: Tenant | str,
        app_slug: str,
        entity: str,
        record: dict[str, Any],
        principal: Principal,
        *,
        as_part_of_write: bool = False,
    ) -> dict[str, Any]:
        """Run every installed before-write hook on `record`: reject with paths, or amend.

        `as_part_of_write`: called by the records service inside a write the principal was
        allowed to make (`data.create`/`data.update` is the policy decision for the call). The
        tenant admin installed the hook for every write to the entity, so it runs without a
        `plugin.execute` check of the writer's own: a customer filing a claim need not be
        allowed to call plugins. Its grant, limits, fuel budget, metering and audit apply as
        for any call, and its host calls (`records.*`) are checked as the writer.
        """
        t = await self._tenant(tenant)
        current = record
        for name in await self._hooks(t, app_slug, entity):
            self.executor.refuse_early(t.id)
            inst, v = await self._prepare(t, name, principal, authorize_call=not as_part_of_write)
            outcome = await self._run(
                t,
                inst,
                v,
                "before-write",
                f"{app_slug}.{entity}",
                principal,
                (app_slug, entity, json.dumps(current)),
            )
            if outcome.tag == "err":
                err = _guest_error(outcome.payload)
                if err.get("kind") == "rejected":
                    found = [
                        Fault(str(f.get("path", "")), str(f.get("message", "")), "plugin_rejected")
                        for f in err.get("faults", [])
                    ]
                    raise ValidationFailed.of(
                        found or [Fault("", f"Rejected by {inst.name}", "plugin_rejected")],
                        "record",
                    )
            amended = self._output(outcome, v)
            if not isinstance(amended, dict):
                raise PluginInvalidOutput(
                    "A before-write hook must return the record", path="output"
                )
            current = amended
        return current

    async def records_hook(
        self,
        tenant: Tenant,
        app_slug: str,
        entity: str,
        record: dict[str, Any],
        principal: Principal,
    ) -> dict[str, Any]:
        """The records service's before-write hook: free for tenants without hook plugins."""
        if not await self._hooks(tenant, app_slug, entity):
            return record
        return await self.before_write(
            tenant, app_slug, entity, record, principal, as_part_of_write=True
        )

    async def _hooks(self, t: Tenant, app_slug: str, entity: str) -> list[str]:
        """Installed plugins with a before-write hook on app.entity (cached for HOOKS_TTL s)."""

        async def load() -> list[tuple[str, Any]]:
            found = []
            for inst in await self.installations(t):
                v = await self.version(inst.name, inst.version)
                found.append((inst.name, v.manifest))
            return found

        installed = await self._hook_cache.get(t.id, load)
        return [name for name, m in installed if m.hooks_for(app_slug, entity)]

    async def _prepare(
        self, t: Tenant, name: str, principal: Principal, authorize_call: bool = True
    ) -> tuple[Installation, PluginVersion]:
        if authorize_call:
            authorize(
                self.platform.authorizer,
                principal,
                "plugin.execute",
                Resource("plugin", name, tenant_id=t.id),
            )
        inst = await self._installed(t, name)
        v = await self.version(name, inst.version)
        # The grant is re-checked at call time: a version never runs beyond its approval.
        self._check_grant(v, list(inst.capabilities), list(inst.http_hosts), "run")
        await self.budget.check(t.id, self._budget(t))
        return inst, v

    def _budget(self, t: Tenant) -> int:
        return int(t.settings.get("plugin_fuel_per_minute", self.fuel_per_minute))

    def limits_for(self, inst: Installation, point: str) -> Limits:
        base = DEFAULT_LIMITS[point].as_dict()
        top = PLATFORM_MAX.as_dict()
        for key, value in inst.limits.get(point, {}).items():
            if key in base:
                base[key] = min(int(value), top[key])
        return Limits(**base)

    async def _run(
        self,
        t: Tenant,
        inst: Installation,
        v: PluginVersion,
        point: str,
        target: str,
        principal: Principal,
        args: tuple[Any, ...],
    ) -> Outcome:
        limits = self.limits_for(inst, point)
        if host_mod.DEPTH.get() >= MAX_NESTING:
            raise PluginNestedTooDeep(
                f"{inst.name} was called by a plugin call {MAX_NESTING} levels deep (a record "
                "write by a plugin runs before-write hooks); plugins may not nest deeper",
                extra={"limit": MAX_NESTING},
            )
        host = CallHost(self, t, inst, principal, limits)
        started = time.perf_counter()
        busy = False
        outcome: Outcome | None = None
        error: PlinthError | None = None
        cold = False
        try:
            outcome, cold = await self.executor.call(
                t.id,
                v.sha256,
                self.blob_dir / f"{v.sha256}.wasm",
                point,
                args,
                limits,
                host,
                nested=host_mod.DEPTH.get() > 0,
                reuse=v.manifest.stateless,
            )
            if outcome.tag == "err":
                err = _guest_error(outcome.payload)
                if not (point == "before-write" and err.get("kind") == "rejected"):
                    error = _guest_failure(err)
            return outcome
        except PluginBusy:
            busy = True  # never ran: nothing to meter or charge
            raise
        except PluginFailed as exc:
            error = exc
            cold = bool(getattr(exc, "cold", False))
            if not hasattr(exc, "wall_ms"):
                exc.wall_ms = (time.perf_counter() - started) * 1000  # type: ignore[attr-defined]
            raise
        finally:
            if not busy:
                await self._settle(t, v, point, target, principal, limits, outcome, error, cold)
                if error is not None and outcome is not None:
                    raise error

    async def _settle(
        self,
        t: Tenant,
        v: PluginVersion,
        point: str,
        target: str,
        principal: Principal,
        limits: Limits,
        outcome: Outcome | None,
        error: PlinthError | None,
        cold: bool,
    ) -> None:
        """Charge a call's fuel to its tenant and meter it (whatever its outcome)."""
        fuel = (
            outcome.fuel
            if outcome
            else (limits.fuel if error and error.code == "plugin_out_of_fuel" else 0)
        )
        wall = outcome.wall_ms if outcome else float(getattr(error, "wall_ms", 0.0))
        peak = outcome.peak_memory if outcome else getattr(error, "peak_memory", None)
        await self.budget.spend(t.id, self._budget(t), fuel)
        rejected = outcome is not None and outcome.tag == "err" and error is None
        result = error.code if error else ("rejected" if rejected else "ok")
        await self._meter(t, v, point, target, result, fuel, wall, peak, limits, cold, principal)

    def _output(self, outcome: Outcome, v: PluginVersion) -> Any:
        try:
            return json.loads(outcome.payload)
        except ValueError:
            raise PluginInvalidOutput(
                f"{v.name} returned output that is not JSON", path="output"
            ) from None

    async def _meter(
        self,
        t: Tenant,
        v: PluginVersion,
        point: str,
        target: str,
        outcome: str,
        fuel: int,
        wall_ms: float,
        peak_memory: int | None,
        limits: Limits,
        cold: bool,
        principal: Principal,
    ) -> None:
        """Queue the call's metering row and its `plugin.called` event for the next batch.

        Metering is batched off the call path: a call is answered without waiting for its row
        (the fuel budget, which refuses calls, is charged before). A batch takes the rows of
        METERING_LINGER seconds (fewer when METERING_BATCH fill first) and those queued while
        it is written go in the next one, each in one transaction; then their events are
        published (the audit ledger appends them). `metering` and `stop` flush first, so what
        they show is complete.
        """
        row = {
            "id": new_id(),
            "tenant_id": t.id,
            "plugin": v.name,
            "version": v.version,
            "point": point,
            "target": target,
            "outcome": outcome,
            "fuel": fuel,
            "wall_ms": wall_ms,
            "peak_memory": peak_memory,
            "memory_limit": limits.memory_bytes,
            "cold": cold,
            "at": utcnow(),
        }
        data = {
            "plugin": v.name,
            "version": v.version,
            "point": point,
            "target": target,
            "outcome": outcome,
            "fuel": fuel,
            "wall_ms": round(wall_ms, 3),
            "peak_memory": peak_memory,
            "memory_limit": limits.memory_bytes,
            "by": principal.audit_name(),
        }
        self._metered.append((row, Event("plugin.called", t.id, data)))
        if self._metering is None or self._metering.done():
            self._metering_due = asyncio.Event()
            self._metering = asyncio.get_running_loop().create_task(self._write_metering())
        if len(self._metered) >= METERING_BATCH:
            self._metering_due.set()

    async def _write_metering(self) -> None:
        # Calls in a row share a batch: the rows of the next METERING_LINGER seconds go with
        # this one (unless a batch fills first or a reader flushes), so a call costs the
        # database a row in a multi-row INSERT, not a transaction of its own.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._metering_due.wait(), METERING_LINGER)
        self._metering_due.clear()
        failures = 0
        while self._metered:
            batch = self._metered[:METERING_BATCH]
            self._metered = self._metered[METERING_BATCH:]
            try:
                async with self.db.transaction() as conn:
                    await conn.execute(store.plugin_calls.insert(), [row for row, _ in batch])
            except Exception:
                failures += 1
                if failures >= 5:  # the database is gone; the calls themselves are long done
                    log.error("dropping %d plugin metering rows", len(batch), exc_info=True)
                    continue
                log.warning("writing %d plugin metering rows failed", len(batch), exc_info=True)
                self._metered[:0] = batch
                await asyncio.sleep(0.2 * failures)
                continue
            failures = 0
            # Published together, so the audit ledger commits them as a group.
            await asyncio.gather(*(self._publish(event) for _, event in batch))

    async def _publish(self, event: Event) -> None:
        try:
            await self.platform.events.publish(event)
        except Exception:
            log.warning("publishing %s failed", event.topic, exc_info=True)

    async def flush_metering(self) -> None:
        """Wait until every call so far is metered and its event published."""
        while self._metering is not None and not self._metering.done():
            self._metering_due.set()
            await asyncio.shield(self._metering)

    async def metering(self, tenant: Tenant | str, limit: int = 100) -> dict[str, Any]:
        """Recent calls and per-plugin totals for a tenant."""
        t = await self._tenant(tenant)
        await self.flush_metering()
        c = store.plugin_calls
        async with self.db.read() as conn:
            rows = list(
                await conn.execute(
                    sa.select(c).where(c.c.tenant_id == t.id).order_by(c.c.at.desc()).limit(limit)
                )
            )
            totals = list(
                await conn.execute(
                    sa.select(
                        c.c.plugin,
                        sa.func.count().label("calls"),
                        sa.func.sum(c.c.fuel).label("fuel"),
                        sa.func.sum(c.c.wall_ms).label("wall_ms"),
                        sa.func.max(c.c.peak_memory).label("peak_memory"),
                    )
                    .where(c.c.tenant_id == t.id)
                    .group_by(c.c.plugin)
                    .order_by(c.c.plugin)
                )
            )
        return {
            "calls": [
                {
                    "plugin": r.plugin,
                    "version": r.version,
                    "point": r.point,
                    "target": r.target,
                    "outcome": r.outcome,
                    "fuel": r.fuel,
                    "wall_ms": r.wall_ms,
                    "peak_memory": r.peak_memory,
                    "memory_limit": r.memory_limit,
                    "cold": r.cold,
                    "at": r.at.isoformat(),
                }
                for r in rows
            ],
            "totals": [
                {
                    "plugin": r.plugin,
                    "calls": r.calls,
                    "fuel": int(r.fuel or 0),
                    "wall_ms": float(r.wall_ms or 0),
                    "max_peak_memory": r.peak_memory,
                }
                for r in totals
            ],
        }

    async def _event(self, topic: str, t: Tenant, data: dict[str, Any]) -> None:
        if topic != "plugin.called":
            self._hook_cache.forget(t.id)  # installed, upgraded, granted or uninstalled
            self._ui_cache.pop(t.id, None)
        await self.platform.events.publish(Event(topic, t.id, data))


class FuelBudget:
    """Fuel a tenant may burn per minute, on the platform's rate limiter (`platform.quotas`).

    A call is allowed while the tenant's window has fuel left; afterwards it is charged what
    it really burnt (capped at what is left, so the window saturates and the next call is
    refused with 429 until the sliding window frees fuel).
    """

    NAMESPACE = "plugin-fuel"

    def __init__(self, platform: Services) -> None:
        self.platform = platform  # `platform.quotas` is looked up per call (built after us)

    @property
    def limiter(self) -> Any:
        return self.platform.quotas.limiter

    def _item(self, budget: int) -> Any:
        from limits import RateLimitItemPerMinute

        return RateLimitItemPerMinute(max(1, budget), namespace=self.NAMESPACE)

    async def check(self, tenant_id: str, budget: int) -> None:
        item = self._item(budget)
        limiter = self.limiter
        if await limiter.test(item, tenant_id):
            return
        stats = await limiter.get_window_stats(item, tenant_id)
        retry = max(1, math.ceil(stats.reset_time - time.time()))
        raise RateLimited(
            f"This tenant used its plugin fuel budget ({budget} per minute)",
            headers={"Retry-After": str(retry)},
            extra={"budget": budget, "remaining": stats.remaining},
        )

    async def spend(self, tenant_id: str, budget: int, fuel: int) -> None:
        item = self._item(budget)
        limiter = self.limiter
        if fuel <= 0 or await limiter.hit(item, tenant_id, cost=fuel):
            return  # the window had room for all of it: one storage call (Redis round trip)
        for _ in range(3):  # another node may have spent meanwhile: re-read what is left
            remaining = (await limiter.get_window_stats(item, tenant_id)).remaining
            charge = min(fuel, remaining)
            if charge <= 0 or await limiter.hit(item, tenant_id, cost=charge):
                return


def _exports(manifest: Any) -> list[str]:
    """The component exports a manifest's extension points call."""
    kinds = {p.kind for p in manifest.points}
    return [k for k in ("action", "before-write") if k in kinds]


def _guest_error(payload: str) -> dict[str, Any]:
    try:
        err = json.loads(payload)
    except ValueError:
        return {"kind": "exception", "message": payload[:500]}
    return err if isinstance(err, dict) else {"kind": "exception", "message": str(err)[:500]}


def _guest_failure(err: dict[str, Any]) -> PluginFailed:
    from plinth.extensions.models import PluginOutOfMemory

    message = str(err.get("message", ""))[:500]
    if "MemoryError" in message:
        return PluginOutOfMemory("The plugin ran out of memory", extra={"guest": message})
    if err.get("kind") == "unknown_action":
        return PluginError(message, path="action")
    if err.get("kind") == "capability":
        return PluginError(f"A capability call failed: {message}", path="capability")
    if "RecursionError" in message:
        return PluginError("The plugin recursed too deeply", extra={"guest": message})
    return PluginError(f"The plugin raised: {message}")
