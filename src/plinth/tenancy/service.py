"""Tenant service: the functions other layers call."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from plinth.db import Database, utcnow
from plinth.errors import Conflict, NotFound
from plinth.events import Event, EventBus
from plinth.ids import check_slug, new_id
from plinth.recent import Recent
from plinth.tenancy import store
from plinth.tenancy.models import Tenant

# How long a tenant read from the database is used without asking again. A change made in
# this process drops it at once, and every other process hears of it through the relays (the
# cluster's, the sibling processes', the change log a CLI process writes to); the bound covers
# what no event reaches (a Redis restart losing a message). At 1 s, a node serving thousands
# of tenants read most of them again on nearly every request.
TRUST_SECONDS = 30.0
log = logging.getLogger(__name__)
CHANGED = "tenant.changed"


class TenantService:
    def __init__(self, db: Database, events: EventBus | None = None) -> None:
        self.db = db
        self.events = events
        self._known: Recent[str, Tenant | None] = Recent(TRUST_SECONDS)  # by slug
        self._on_resolve: list[Callable[[Tenant], Awaitable[None]]] = []
        self._on_request: list[Callable[[Tenant, str], None]] = []
        if events is not None:
            events.subscribe(CHANGED, self._on_changed, cluster=True)

    async def _on_changed(self, event: Event) -> None:
        self._known.forget(event.data.get("slug", ""))

    async def _changed(self, slug: str) -> None:
        self._known.forget(slug)
        if self.events is not None:
            await self.events.publish(Event(CHANGED, None, {"slug": slug}))

    def on_resolve(self, hook: Callable[[Tenant], Awaitable[None]]) -> None:
        """Call `hook(tenant)` whenever a tenant is looked up (create, get, find, list by
        id): how per-tenant caches (policy sets) are loaded on first use, not at start."""
        self._on_resolve.append(hook)

    def on_request(self, hook: Callable[[Tenant, str], None]) -> None:
        """Call `hook(tenant, bearer)` when a request with the bearer token `bearer`, reading an
        app of a tenant the gateway has not seen lately, is about to be served: a hook starts,
        without waiting, what that request will wait on (opening the tenant's file), so it
        overlaps the request's other work. Nothing is authenticated yet: a hook decides
        whether the token is one it trusts."""
        self._on_request.append(hook)

    def requested(self, tenant: Tenant, bearer: str) -> None:
        """Run the `on_request` hooks. They only start work early: one that fails leaves the
        request to meet the same fault where it would have without the hook."""
        for hook in self._on_request:
            try:
                hook(tenant, bearer)
            except Exception:  # noqa: BLE001 - see above; the request reports it
                log.debug("on_request hook failed for tenant %s", tenant.id, exc_info=True)

    async def _resolved(self, tenant: Tenant | None) -> Tenant | None:
        if tenant is not None:
            for hook in self._on_resolve:
                await hook(tenant)
        return tenant

    async def create(
        self,
        slug: str,
        name: str | None = None,
        *,
        region: str = "default",
        settings: dict[str, Any] | None = None,
    ) -> Tenant:
        """Create a tenant; its slug must be new."""
        check_slug(slug, "Tenant")
        tenant = Tenant(
            id=new_id(),
            slug=slug,
            name=name or slug,
            region=region,
            created_at=utcnow(),
            settings=settings or {},
        )
        try:
            async with self.db.transaction() as conn:
                if await store.by_slug(conn, slug):
                    raise Conflict(f"Tenant {slug!r} already exists", path="slug")
                await store.insert(conn, tenant)
        except IntegrityError as exc:
            raise Conflict(f"Tenant {slug!r} already exists", path="slug") from exc
        await self._changed(slug)  # anyone who asked for it before knew it as missing
        await self._resolved(tenant)
        return tenant

    async def get(self, slug: str) -> Tenant:
        """The tenant named `slug`, or NotFound."""
        async with self.db.read() as conn:
            tenant = await store.by_slug(conn, slug)
        if tenant is None:
            raise NotFound(f"No tenant named {slug!r}", path="tenant")
        await self._resolved(tenant)
        return tenant

    async def find(self, slug: str) -> Tenant | None:
        """The tenant named `slug`, or None; steady state without a database round trip."""
        return await self._resolved(await self.lookup(slug))

    async def lookup(self, slug: str) -> Tenant | None:
        """`find` without the first-use hooks: for a caller that runs `resolved(tenant)`
        alongside reads of its own (a cold tenant's reads then overlap)."""
        return await self._known.get(slug, lambda: self._read(slug))

    async def resolved(self, tenant: Tenant) -> None:
        """Run the first-use hooks (policy sets …) for a tenant `lookup` returned."""
        await self._resolved(tenant)

    async def _read(self, slug: str) -> Tenant | None:
        return await store.find(self.db, slug)

    async def update_settings(
        self,
        slug: str,
        key: str,
        value: Any,
        also: Callable[[AsyncConnection, Tenant], Awaitable[None]] | None = None,
    ) -> Tenant:
        """Set one key of a tenant's settings (e.g. its compliance profile), atomically;
        `also` runs in the same transaction (the change's ledger entry)."""
        async with self.db.transaction() as conn:
            tenant = await store.by_slug(conn, slug)
            if tenant is None:
                raise NotFound(f"No tenant named {slug!r}", path="tenant")
            settings = {**tenant.settings, key: value}
            await store.update_settings(conn, tenant.id, settings)
            if also is not None:
                await also(conn, tenant)
        await self._changed(slug)
        updated = replace(tenant, settings=settings)
        await self._resolved(updated)
        return updated

    async def list(self, ids: set[str] | None = None) -> list[Tenant]:
        """All tenants, or those whose id is in `ids` (only these count as resolved: a
        listing of every tenant loads nothing per tenant)."""
        async with self.db.read() as conn:
            found = await store.all_(conn, ids)
        if ids is not None:
            for tenant in found:
                await self._resolved(tenant)
        return found
