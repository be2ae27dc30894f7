"""Tenant service: the functions other layers call."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from sqlalchemy.exc import IntegrityError

from plinth.db import Database, utcnow
from plinth.errors import Conflict, NotFound
from plinth.ids import check_slug, new_id
from plinth.tenancy import store
from plinth.tenancy.models import Tenant


class TenantService:
    def __init__(self, db: Database) -> None:
        self.db = db

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
        return tenant

    async def get(self, slug: str) -> Tenant:
        """The tenant named `slug`, or NotFound."""
        async with self.db.read() as conn:
            tenant = await store.by_slug(conn, slug)
        if tenant is None:
            raise NotFound(f"No tenant named {slug!r}", path="tenant")
        return tenant

    async def find(self, slug: str) -> Tenant | None:
        async with self.db.read() as conn:
            return await store.by_slug(conn, slug)

    async def update_settings(self, slug: str, key: str, value: Any) -> Tenant:
        """Set one key of a tenant's settings (e.g. its compliance profile), atomically."""
        async with self.db.transaction() as conn:
            tenant = await store.by_slug(conn, slug)
            if tenant is None:
                raise NotFound(f"No tenant named {slug!r}", path="tenant")
            settings = {**tenant.settings, key: value}
            await store.update_settings(conn, tenant.id, settings)
        return replace(tenant, settings=settings)

    async def list(self, ids: set[str] | None = None) -> list[Tenant]:
        """All tenants, or those whose id is in `ids`."""
        async with self.db.read() as conn:
            return await store.all_(conn, ids)
