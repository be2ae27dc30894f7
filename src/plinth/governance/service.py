"""The governance layer's composition: identity, the Cedar authorizer and the audit ledger."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from plinth.db import Database, Query, utcnow
from plinth.events import Event, EventBus
from plinth.governance import kinds as _kinds  # noqa: F401
from plinth.governance.access import Decision, Resource
from plinth.governance.anchor import anchor_of
from plinth.governance.audit import AuditEntry, AuditLedger
from plinth.governance.directory import UserDirectory
from plinth.governance.identity import IdentityService, signing_key
from plinth.governance.kinds import policy as _policy_kind  # noqa: F401  (registers itself)
from plinth.governance.oidc import OIDCLogin
from plinth.governance.policy import CedarAuthorizer
from plinth.governance.principal import Principal
from plinth.integration.egress import EgressPolicy
from plinth.metadata.models import Version
from plinth.metadata.store import apps, as_version, versions
from plinth.settings import Settings
from plinth.tenancy.models import Tenant

StopHook = Callable[[], Awaitable[None]]


# The active version of each of a tenant's apps, whole (policy sets and the records' compile).
ACTIVE_VERSIONS = Query(
    sa.select(apps.c.slug, versions)
    .join(
        versions,
        sa.and_(versions.c.app_id == apps.c.id, versions.c.number == apps.c.active_version),
    )
    .where(apps.c.tenant_id == sa.bindparam("tenant"))
)


class Governance:
    """Holds identity, policy and audit for one platform; wires them to the event bus."""

    def __init__(
        self,
        settings: Settings,
        db: Database,
        events: EventBus,
        master_key: Callable[[], bytes],
        on_stop: Callable[[StopHook], None],
    ) -> None:
        """`master_key`: the vault's master key, read when first needed (the ledger's key is
        derived from it); `on_stop`: where the ledger's drain and the anchoring stop go."""
        self.settings = settings
        self.db = db
        self._on_stop = on_stop
        self.audit = AuditLedger(
            db,
            master_key,
            anchor_of(settings.audit_anchor) if settings.audit_anchor else None,
        )
        self.identity = IdentityService(db, signing_key(settings.master_key, settings.data_dir))
        self._events = events
        self.directory = UserDirectory(db, self._sessions_ended)
        # Calls to a tenant's provider go through the same SSRF guard as connectors.
        self.oidc = OIDCLogin(self.identity._key, EgressPolicy(settings.egress_allow))
        self._anchoring: asyncio.Task[None] | None = None
        self.authorizer = CedarAuthorizer(settings.app_cache, on_denied=self._on_denied)
        # Told the active versions read to load a tenant's policies (by app slug), so the
        # first request to a cold tenant reads them once, not again to compile its app.
        self.on_load: list[Callable[[str, dict[str, Version]], None]] = []
        self.audit.subscribe(events)
        # Policy sets follow the active version: publish, rollback and delete swap them.
        # On other nodes (relayed) only the cached policy set changes; the audit stays here.
        events.subscribe("app.published", self._on_activated, cluster=True)
        events.subscribe("app.rolled_back", self._on_activated, cluster=True)
        events.subscribe("app.deleted", self._on_deleted, cluster=True)
        events.subscribe("identity.sessions_ended", self._on_sessions_ended, cluster=True)

    async def start(self) -> None:
        """Seal legacy ledgers. Policy sets are not loaded here: each tenant's are loaded
        when it is first resolved (`ready`), so start-up does not grow with the tenants."""
        self._on_stop(self.audit.drain)
        await self.audit.seal_legacy()  # ledgers from before the keyed chain: checkpoint now
        # Sessions ended within an access token's lifetime still refuse those tokens here.
        since = utcnow() - self.identity.access_ttl
        for user_id, at in (await self.directory.sessions_ended_since(since)).items():
            self.identity.sessions_ended(user_id, at)

    async def ready(self, tenant: Tenant) -> None:
        """Load the policy sets of the tenant's active app versions, unless cached."""
        while not self.authorizer.loaded(tenant.id):
            since = self.authorizer.changes(tenant.id)
            # One statement on the driver's connection: one round trip, no SQLAlchemy per run.
            found = await self.db.fetch(ACTIVE_VERSIONS, {"tenant": tenant.id})
            rows = [SimpleNamespace(**r) for r in found]
            if self.authorizer.load(tenant.id, {r.slug: r.body for r in rows}, since):
                for hook in self.on_load:
                    hook(tenant.id, {r.slug: as_version(r) for r in rows})
                return

    def start_anchoring(self) -> None:
        """Export the ledger's newest checkpoints to the anchor periodically (worker nodes)."""
        if self.audit.anchor is None or self._anchoring is not None:
            return
        self._anchoring = asyncio.create_task(
            self.audit.anchor_every(self.settings.audit_anchor_every)
        )

        async def stop() -> None:
            assert self._anchoring is not None
            self._anchoring.cancel()
            await asyncio.gather(self._anchoring, return_exceptions=True)
            self._anchoring = None
            await self.audit.export_anchor()  # what was appended since the last export

        self._on_stop(stop)

    async def _on_activated(self, event: Event) -> None:
        async with self.db.read() as conn:
            bodies = await _bodies(conn, event)
        assert event.tenant_id is not None
        body = bodies.get(event.data["version"])
        if body is None:  # relayed from a node of another deployment sharing the channel
            return
        self.authorizer.install(event.tenant_id, event.data["app"], body)
        if event.remote or event.effects_done:  # its policy.changed committed with it
            return
        change = _policy_change(event, bodies)
        if change is not None:
            await self.audit.append(event.tenant_id, change)

    async def effect(
        self, conn: AsyncConnection, tenant_id: str, events: Sequence[Event]
    ) -> list[Event]:
        """The ledger entries of changes to apps (created, published, rolled back, deleted,
        a draft written), in the change's transaction: an activation's `policy.changed`
        right after its own entry. The ledger refusing them refuses the change (`Unrecorded`)."""
        entries: list[AuditEntry] = []
        for event in events:
            entries.append(self.audit.entry(event))
            if event.topic in ("app.published", "app.rolled_back"):
                change = _policy_change(event, await _bodies(conn, event))
                if change is not None:
                    entries.append(change)
        await self.audit.write_now(conn, tenant_id or None, entries)
        return []

    async def _sessions_ended(self, tenant_id: str, user_id: str) -> None:
        # The bus carries it to every node (not audited itself: the administration route
        # records what the person did).
        # The moment travels with it: a node hearing of it later must still accept a token
        # the user was issued after it (a demoted user's new session).
        at = utcnow().timestamp()
        event = Event("identity.sessions_ended", tenant_id, {"user_id": user_id, "at": at})
        await self._events.publish(event)

    async def _on_sessions_ended(self, event: Event) -> None:
        at = event.data.get("at")
        when = datetime.fromtimestamp(float(at), UTC) if at is not None else utcnow()
        self.identity.sessions_ended(str(event.data["user_id"]), when)

    async def _on_deleted(self, event: Event) -> None:
        if event.tenant_id:
            self.authorizer.forget(event.tenant_id, event.data.get("app", ""))

    def _on_denied(
        self, principal: Principal, action: str, resource: Resource, decision: Decision
    ) -> None:
        # Denials are recorded in the tenant the caller tried to reach.
        self.audit.append_soon(
            resource.tenant_id or principal.tenant_id,
            AuditEntry(
                actor=principal.audit_name(),
                action=f"denied.{action}",
                resource=f"{resource.kind}:{resource.id}",
                outcome="denied",
                data={"principal": principal.id, "reasons": list(decision.reasons)},
            ),
        )

    async def sign_out(self, tenant_id: str, refresh_token: str) -> None:
        """Revoke a refresh token and refuse the access tokens issued to its user until now."""
        user_id = await self.identity.revoke_refresh(refresh_token, tenant_id)
        if user_id is not None:
            await self.directory.end_access(tenant_id, user_id)

    async def record(
        self,
        tenant_id: str | None,
        actor: str | None,
        action: str,
        resource: str | None = None,
        outcome: str = "ok",
        **data: Any,
    ) -> None:
        """Append one audit event after the fact, group-committed: sign-ins and sign-outs
        (frequent, and nothing an administrator changed). A change records its entry in its
        own transaction instead (`audit.by(...).write`), so it is never committed without."""
        await self.audit.append(tenant_id, AuditEntry(actor, action, resource, outcome, data))


def _policy_change(event: Event, bodies: dict[Any, Any]) -> AuditEntry | None:
    """An activation's `policy.changed` entry, naming the policy documents it changed (None
    when it changed none): `bodies` holds the new version's and the previous one's."""
    new = _cedar_of(bodies.get(event.data["version"], {}))
    old = _cedar_of(bodies.get(event.data.get("previous"), {}))
    changed = sorted(n for n in new.keys() | old.keys() if new.get(n) != old.get(n))
    if not changed:
        return None
    data = {"policies": changed, "version": event.data["version"], "via": event.topic}
    return AuditEntry(event.data.get("by"), "policy.changed", event.data["app"], data=data)


async def _bodies(conn: AsyncConnection, event: Event) -> dict[int, dict[str, Any]]:
    """The definitions of the versions an activation (`app.published`, `app.rolled_back`)
    names: the one now active and the one before it, by number."""
    numbers = [n for n in (event.data["version"], event.data.get("previous")) if n]
    query = sa.select(versions.c.number, versions.c.body).where(
        versions.c.app_id == event.data["app_id"], versions.c.number.in_(numbers)
    )
    return {number: body for number, body in (await conn.execute(query)).all()}


def _cedar_of(definition: dict[str, Any]) -> dict[str, str]:
    return {name: doc.get("cedar", "") for name, doc in (definition.get("policies") or {}).items()}
