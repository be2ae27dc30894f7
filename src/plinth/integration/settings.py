"""Gateway settings per tenant and per app (limits, quotas, CORS, time limit), and custom
domains, cached in process for a few seconds so the gateway only looks things up.

Not the process's settings (`plinth/settings.py`, from the environment and CLI flags, passed
down at start): these are data, stored per tenant and changed through the API."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from plinth.db import Database, Query, utcnow
from plinth.errors import BadRequest, Conflict, Fault, ValidationFailed
from plinth.integration import store
from plinth.jsonschema import compile_schema, faults
from plinth.recent import Recent
from plinth.tenancy.service import TenantService

_WINDOW_PROPS: dict[str, Any] = {
    "per_second": {"type": ["integer", "null"], "minimum": 1},
    "per_day": {"type": ["integer", "null"], "minimum": 1},
}
_WINDOWS: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": _WINDOW_PROPS,
}
TENANT_SCHEMA = compile_schema(
    {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "limits": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    **_WINDOW_PROPS,
                    "api_key": _WINDOWS,
                    "max_concurrent": {"type": "integer", "minimum": 1},
                },
            },
            "quotas": {
                "type": "object",
                "additionalProperties": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {**_WINDOW_PROPS, "max": {"type": "integer", "minimum": 0}},
                },
            },
            "timeout_seconds": {"type": "number", "exclusiveMinimum": 0, "maximum": 600},
        },
    }
)
APP_SCHEMA = compile_schema(
    {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "limits": _WINDOWS,
            "timeout_seconds": {"type": "number", "exclusiveMinimum": 0, "maximum": 600},
            "cors": {
                "type": "object",
                "additionalProperties": False,
                "required": ["origins"],
                "properties": {
                    "origins": {"type": "array", "items": {"type": "string"}},
                    "methods": {"type": "array", "items": {"type": "string"}},
                    "headers": {"type": "array", "items": {"type": "string"}},
                    "credentials": {"type": "boolean"},
                    "max_age": {"type": "integer", "minimum": 0},
                },
            },
        },
    }
)
TTL_SECONDS = 5.0


@dataclass
class TenantGate:
    """What the gateway knows of one tenant: its id, its settings and its apps' settings."""

    id: str
    slug: str
    config: dict[str, Any]
    apps: dict[str, dict[str, Any]] = field(default_factory=dict)
    loaded_at: float = 0.0


_GATES = Query(
    sa.select(store.gateway_settings).where(
        store.gateway_settings.c.tenant_id == sa.bindparam("tenant")
    )
)


class GatewaySettings:
    """Reads and writes gateway settings; a small TTL cache serves the hot path."""

    def __init__(
        self, db: Database, tenants: TenantService, defaults: dict[str, Any] | None = None
    ) -> None:
        self.db = db
        self.tenants = tenants
        self.defaults = defaults or {
            "limits": {"per_second": 200, "max_concurrent": 64},
            "timeout_seconds": 30,
        }
        self._by_slug: Recent[str, TenantGate | None] = Recent(TTL_SECONDS)
        self._by_id: dict[str, TenantGate] = {}
        self._hosts: dict[str, tuple[str | None, float]] = {}

    async def tenant(self, slug: str, bearer: str | None = None) -> TenantGate | None:
        """The gate of tenant `slug`, or None if there is no such tenant (cached briefly; one
        read when the window closes, however many requests are waiting for it). `bearer`: the
        token of a request reading one of its apps; when the gate is read afresh, the
        tenant's `on_request` hooks are told, and may get its data ready meanwhile."""
        return await self._by_slug.get(slug, lambda: self._read(slug, bearer))

    async def _read(self, slug: str, bearer: str | None = None) -> TenantGate | None:
        row = await self.tenants.lookup(slug)
        if row is None:
            return None
        if bearer:
            self.tenants.requested(row, bearer)
        if self.db.is_sqlite:
            # Both read on the loop's thread, without a wait to overlap: run as tasks, they
            # would only put the cold tenant's request behind two more turns of a busy loop.
            found = await self._fetch(row.id, row.slug)
            await self.tenants.resolved(row)
        else:  # a cold tenant: its settings are read while its first-use hooks load the rest
            found, _ = await asyncio.gather(
                self._fetch(row.id, row.slug), self.tenants.resolved(row)
            )
        self._by_id[found.id] = found
        return found

    async def _fetch(self, tenant_id: str, slug: str) -> TenantGate:
        # One statement on the driver's connection: no transaction, no SQLAlchemy per run.
        rows = await self.db.fetch(_GATES, {"tenant": tenant_id})
        return self._gate(tenant_id, slug, rows)

    async def for_tenant_id(self, tenant_id: str) -> dict[str, Any]:
        """The effective settings of a tenant by id (quota hooks call this)."""
        gate = self._by_id.get(tenant_id)
        if gate is None or time.monotonic() - gate.loaded_at >= TTL_SECONDS:
            gate = await self._fetch(tenant_id, "")
            self._by_id[tenant_id] = gate
        return gate.config

    def _gate(self, tenant_id: str, slug: str, rows: list[dict[str, Any]]) -> TenantGate:
        config = _merge(self.defaults, {})
        apps: dict[str, dict[str, Any]] = {}
        for row in rows:
            if row["scope"] == "tenant":
                config = _merge(self.defaults, row["config"])
            elif row["scope"].startswith("app:"):
                apps[row["scope"][4:]] = row["config"]
        return TenantGate(tenant_id, slug, config, apps, time.monotonic())

    async def get(self, tenant_id: str, scope: str) -> dict[str, Any]:
        async with self.db.read() as conn:
            row = (
                await conn.execute(
                    sa.select(store.gateway_settings.c.config).where(
                        store.gateway_settings.c.tenant_id == tenant_id,
                        store.gateway_settings.c.scope == scope,
                    )
                )
            ).first()
        return dict(row.config) if row else {}

    async def put(self, tenant_id: str, scope: str, config: dict[str, Any]) -> dict[str, Any]:
        """Replace the settings of `scope` ("tenant" or "app:<slug>"), validated."""
        validator = TENANT_SCHEMA if scope == "tenant" else APP_SCHEMA
        found = faults(validator, config)
        if found:
            raise ValidationFailed.of(found, "gateway settings")
        async with self.db.transaction() as conn:
            await conn.execute(
                store.gateway_settings.delete().where(
                    store.gateway_settings.c.tenant_id == tenant_id,
                    store.gateway_settings.c.scope == scope,
                )
            )
            await conn.execute(
                store.gateway_settings.insert().values(
                    tenant_id=tenant_id, scope=scope, config=config, updated_at=utcnow()
                )
            )
        self.invalidate(tenant_id)
        return config

    def invalidate(self, tenant_id: str | None = None) -> None:
        """Forget cached settings (of one tenant, or all)."""
        if tenant_id is None:
            self._by_slug.forget()
            self._by_id.clear()
            return
        self._by_id.pop(tenant_id, None)
        self._by_slug.forget_where(lambda gate: gate is not None and gate.id == tenant_id)

    # -- custom domains -----------------------------------------------------------------------

    async def host_tenant(self, host: str) -> str | None:
        """The slug of the tenant a custom domain belongs to, if any (cached briefly)."""
        now = time.monotonic()
        cached = self._hosts.get(host)
        if cached is not None and now - cached[1] < TTL_SECONDS:
            return cached[0]
        async with self.db.read() as conn:
            row = (
                await conn.execute(
                    sa.select(store.domains.c.tenant_id).where(store.domains.c.host == host)
                )
            ).first()
        slug = None
        if row is not None:
            found = await self.tenants.list({row.tenant_id})
            slug = found[0].slug if found else None
        if len(self._hosts) > 10_000:
            self._hosts.clear()
        self._hosts[host] = (slug, now)
        return slug

    async def add_domain(self, tenant_id: str, host: str) -> str:
        """Map a custom host name to a tenant."""
        host = normalise_host(host)
        try:
            async with self.db.transaction() as conn:
                if (
                    await conn.execute(
                        sa.select(store.domains.c.host).where(store.domains.c.host == host)
                    )
                ).first():
                    raise Conflict(f"Host {host!r} is already mapped", path="host")
                await conn.execute(
                    store.domains.insert().values(
                        host=host, tenant_id=tenant_id, created_at=utcnow()
                    )
                )
        except IntegrityError as exc:
            raise Conflict(f"Host {host!r} is already mapped", path="host") from exc
        self._hosts.pop(host, None)
        return host

    async def domains(self, tenant_id: str) -> list[str]:
        async with self.db.read() as conn:
            rows = (
                await conn.execute(
                    sa.select(store.domains.c.host)
                    .where(store.domains.c.tenant_id == tenant_id)
                    .order_by(store.domains.c.host)
                )
            ).all()
        return [r.host for r in rows]

    async def remove_domain(self, tenant_id: str, host: str) -> bool:
        host = normalise_host(host)
        async with self.db.transaction() as conn:
            result = await conn.execute(
                store.domains.delete().where(
                    store.domains.c.tenant_id == tenant_id, store.domains.c.host == host
                )
            )
        self._hosts.pop(host, None)
        return bool(result.rowcount)


def normalise_host(host: str) -> str:
    host = (host or "").strip().lower().rstrip(".")
    labels = host.split(".")
    if (
        not host
        or len(host) > 253
        or len(labels) < 2
        or not all(
            label and len(label) <= 63 and label.replace("-", "").isalnum() for label in labels
        )
    ):
        raise BadRequest(
            f"{host!r} is not a host name",
            path="host",
            faults=[Fault("host", "a host name like api.example.com")],
        )
    return host


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged
