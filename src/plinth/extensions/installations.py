"""Installations: a tenant's installed plugin versions, the capabilities and HTTP hosts its
admin granted them, per-point limits, and the UI components the grants let the portal load."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from plinth.db import utcnow
from plinth.errors import (
    Conflict,
    Fault,
    NotFound,
    PreconditionFailed,
    ValidationFailed,
)
from plinth.events import Event, take_effects
from plinth.extensions import store
from plinth.extensions.models import (
    CAPABILITIES,
    DEFAULT_LIMITS,
    PLATFORM_MAX,
    Installation,
    PluginVersion,
)
from plinth.extensions.registry import Registry
from plinth.governance.access import Resource, authorize
from plinth.governance.principal import Principal
from plinth.recent import Recent
from plinth.tenancy.models import Tenant

UI_BODIES_KEPT = 64  # UI modules kept in memory (the oldest goes first)
HOOKS_TTL = 5.0  # seconds another node's install/uninstall may take to reach this one's writes


def ui_module_url(tenant_slug: str, name: str, sha256: str) -> str:
    """Where the portal loads a plugin's UI module: per tenant, immutable by its hash."""
    return f"/a/{tenant_slug}/-/plugins/{name}/{sha256}.js"


class Installations(Registry):
    """Install, upgrade, grant, pin, limit and uninstall plugins per tenant, and serve the UI
    components their grants approve."""

    _hook_cache: Recent[str, list[tuple[str, Any]]]
    _installs: dict[str, dict[str, tuple[float, Installation]]]
    _ui_cache: dict[str, tuple[float, list[dict[str, Any]]]]
    _ui_bodies: dict[str, bytes]

    async def _tenant(self, tenant: Tenant | str) -> Tenant:
        if isinstance(tenant, Tenant):
            return tenant
        found = await self.platform.tenants.find(tenant)
        if found is None:
            raise NotFound(f"No tenant named {tenant!r}", path="tenant")
        return found

    async def _administered(self, tenant: Tenant | str, name: str, principal: Principal) -> Tenant:
        """The tenant, once `principal` may administer plugin `name` there (`plugin.install`:
        installing, upgrading, granting, pinning, limits, uninstalling)."""
        t = await self._tenant(tenant)
        authorize(
            self.platform.authorizer,
            principal,
            "plugin.install",
            Resource("plugin", name, tenant_id=t.id),
        )
        return t

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
        t = await self._administered(tenant, name, principal)
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
            installed = {
                "plugin": name,
                "version": v.version,
                "capabilities": caps,
                "http_hosts": hosts,
                "by": principal.audit_name(),
            }
            events = await self._recorded(conn, "plugin.installed", t, installed)
        await self._told(t, events)
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
        t = await self._administered(tenant, name, principal)
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
        upgraded = {
            "plugin": name,
            "from": current.version,
            "to": v.version,
            "capabilities": caps,
            "by": principal.audit_name(),
        }
        await self._update(
            t,
            name,
            ("plugin.upgraded", upgraded),
            version=v.version,
            capabilities=caps,
            http_hosts=hosts,
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
        t = await self._administered(tenant, name, principal)
        current = await self.installation(t, name)
        v = await self.version(name, current.version)
        self._check_grant(v, capabilities, http_hosts, "keep it installed")
        granted = {
            "plugin": name,
            "capabilities": capabilities,
            "http_hosts": http_hosts,
            "by": principal.audit_name(),
        }
        await self._update(
            t,
            name,
            ("plugin.granted", granted),
            capabilities=list(capabilities),
            http_hosts=list(http_hosts),
        )
        return await self.installation(t, name)

    async def pin(
        self, tenant: Tenant | str, name: str, principal: Principal, pinned: bool = True
    ) -> Installation:
        """Pin (or unpin) the installed version so upgrades are refused."""
        t = await self._administered(tenant, name, principal)
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
        t = await self._administered(tenant, name, principal)
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
        t = await self._administered(tenant, name, principal)
        await self.installation(t, name)
        async with self.db.transaction() as conn:
            for table in (store.plugin_installs, store.plugin_kv):
                col = table.c.name if table is store.plugin_installs else table.c.plugin
                await conn.execute(table.delete().where(table.c.tenant_id == t.id, col == name))
            uninstalled = {"plugin": name, "by": principal.audit_name()}
            events = await self._recorded(conn, "plugin.uninstalled", t, uninstalled)
        await self._told(t, events)

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

    async def _update(
        self,
        t: Tenant,
        name: str,
        event: tuple[str, dict[str, Any]] | None = None,
        **values: Any,
    ) -> None:
        """Change the installation's row; `event` (topic, data): its event, recorded with it."""
        self._installs.pop(t.id, None)
        it = store.plugin_installs
        events: list[Event] = []
        async with self.db.transaction() as conn:
            await conn.execute(
                it.update()
                .where(it.c.tenant_id == t.id, it.c.name == name)
                .values(updated_at=utcnow(), **values)
            )
            if event is not None:
                topic, data = event
                events = await self._recorded(conn, topic, t, data)
        self._installs.pop(t.id, None)  # and again: a call may have read the old row meanwhile
        if event is not None:
            await self._told(t, events)

    async def _recorded(
        self, conn: AsyncConnection, topic: str, t: Tenant, data: dict[str, Any]
    ) -> list[Event]:
        """An installation's event, its ledger entry written in `conn`, the change's own
        transaction (a grant of capabilities is never committed unrecorded): what `_told`
        publishes once that commits."""
        ledger = self.platform.governance.audit
        return await take_effects([ledger.recorded], conn, [Event(topic, t.id, data)])

    async def _told(self, t: Tenant, events: list[Event]) -> None:
        """Publish an installation's committed change: this node's caches of the tenant's
        plugins are dropped at once, other nodes' when they hear it."""
        self._hook_cache.forget(t.id)  # installed, upgraded, granted or uninstalled
        self._ui_cache.pop(t.id, None)
        for event in events:
            await self.platform.events.publish(event)
