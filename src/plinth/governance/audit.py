"""The audit ledger: append-only per-tenant hash chain, serialised per tenant.

Each event stores SHA-256(prev_hash + canonical event). Appends take a per-tenant lock
(PostgreSQL advisory xact lock; SQLite's BEGIN IMMEDIATE already serialises writers), and a
batch shares one transaction. Triggers refuse UPDATE/DELETE, so history cannot be rewritten
through the platform; `verify` finds rows changed behind its back.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from plinth.db import Database, utcnow
from plinth.events import Event, EventBus
from plinth.governance.store import audit_events

PLATFORM_KEY = "_platform"
GENESIS = "0" * 64
# Topics that land in the ledger; other layers' events join by pattern, unchanged.
AUDITED_TOPICS = (
    "app.*",
    "draft.*",
    "record.*",
    "policy.*",
    "plugin.*",
    "connector.*",
    "workflow.*",
    "task.*",
    "token.*",
    "auth.*",
    "compliance.*",
)


def _iso(at: datetime) -> str:
    return at.isoformat() if at.tzinfo else at.isoformat() + "+00:00"


def event_hash(
    prev: str,
    tenant_key: str,
    n: int,
    at: datetime,
    actor: str | None,
    action: str,
    resource: str | None,
    outcome: str,
    data: Any,
) -> str:
    """SHA-256 over the previous hash and the canonical JSON of the event."""
    body = json.dumps(
        [tenant_key, n, _iso(at), actor, action, resource, outcome, data],
        sort_keys=True,
        separators=(",", ":"),
        default=str,
        ensure_ascii=False,
    )
    return hashlib.sha256((prev + body).encode()).hexdigest()


def value_hash(value: Any) -> str | None:
    """Hash of a record's values: the ledger proves what changed without storing it."""
    if value is None:
        return None
    raw = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(raw.encode()).hexdigest()


@dataclass(frozen=True)
class AuditEntry:
    actor: str | None
    action: str
    resource: str | None = None
    outcome: str = "ok"
    data: dict[str, Any] | None = None


@dataclass(frozen=True)
class VerifyReport:
    ok: bool
    checked: int
    broken_at: int | None = None
    reason: str = ""


class AuditLedger:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._pending: set[asyncio.Task[Any]] = set()
        self._queues: dict[str, list[tuple[AuditEntry, asyncio.Future[None]]]] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def append(self, tenant_id: str | None, entry: AuditEntry) -> None:
        """Append one event; returns once it is committed.

        Group commit: appends that arrive while the tenant's previous batch is being written
        wait for it, then go in together in one transaction (in arrival order).
        """
        key = tenant_id or PLATFORM_KEY
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queues.setdefault(key, []).append((entry, done))
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            batch = self._queues.pop(key, [])
            if batch:
                try:
                    await self.append_many(tenant_id, [e for e, _ in batch])
                except BaseException as exc:
                    for _, fut in batch:
                        if not fut.done():
                            fut.set_exception(exc)
                    raise
                for _, fut in batch:
                    if not fut.done():
                        fut.set_result(None)
        await done

    async def append_many(self, tenant_id: str | None, entries: list[AuditEntry]) -> None:
        """Append a batch in one transaction under the tenant's lock."""
        key = tenant_id or PLATFORM_KEY
        async with self.db.transaction() as conn:
            await self._lock(conn, key)
            last = (
                await conn.execute(
                    sa.select(audit_events.c.n, audit_events.c.hash)
                    .where(audit_events.c.tenant_key == key)
                    .order_by(audit_events.c.n.desc())
                    .limit(1)
                )
            ).first()
            n, prev = (last.n, last.hash) if last else (0, GENESIS)
            rows = []
            for e in entries:
                n += 1
                at = utcnow()
                data = e.data or {}
                digest = event_hash(
                    prev, key, n, at, e.actor, e.action, e.resource, e.outcome, data
                )
                rows.append(
                    dict(
                        tenant_key=key,
                        n=n,
                        at=at,
                        actor=e.actor,
                        action=e.action,
                        resource=e.resource,
                        outcome=e.outcome,
                        data=data,
                        prev_hash=prev,
                        hash=digest,
                    )
                )
                prev = digest
            await conn.execute(audit_events.insert(), rows)

    async def _lock(self, conn: AsyncConnection, key: str) -> None:
        if self.db.dialect == "postgresql":
            # Per-tenant: writers of different tenants never wait on each other.
            await conn.execute(
                sa.text("SELECT pg_advisory_xact_lock(:k)"),
                {"k": zlib.crc32(f"audit:{key}".encode()) - 2**31},
            )

    def append_soon(self, tenant_id: str | None, entry: AuditEntry) -> None:
        """Append from sync code (denials): scheduled on the running loop, awaited by drain."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        task = loop.create_task(self.append(tenant_id, entry))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def drain(self) -> None:
        """Wait for scheduled appends (tests, shutdown)."""
        while self._pending:
            await asyncio.gather(*list(self._pending), return_exceptions=True)

    # -- events -----------------------------------------------------------------------------

    def subscribe(self, events: EventBus) -> None:
        """Record every audited topic published on the bus."""
        for pattern in AUDITED_TOPICS:
            events.subscribe(pattern, self._on_event)

    async def _on_event(self, event: Event) -> None:
        data = dict(event.data)
        # Data writes: who and what, with hashes of before/after, never the values.
        for side in ("before", "after", "record", "values"):
            if side in data:
                data[f"{side}_sha256"] = value_hash(data.pop(side))
        actor = data.get("by") or data.get("actor")
        resource = "/".join(str(data[k]) for k in ("app", "entity", "id") if data.get(k))
        await self.append(
            event.tenant_id,
            AuditEntry(
                actor=str(actor) if actor else None,
                action=event.topic,
                resource=resource or None,
                data=data,
            ),
        )

    # -- reading ----------------------------------------------------------------------------

    async def list(
        self,
        tenant_id: str | None,
        *,
        actor: str | None = None,
        action: str | None = None,
        resource: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        after: int = 0,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        """Events of a tenant in chain order, filtered, starting after cursor `after`."""
        q = sa.select(audit_events).where(
            audit_events.c.tenant_key == (tenant_id or PLATFORM_KEY), audit_events.c.n > after
        )
        if actor:
            q = q.where(audit_events.c.actor == actor)
        if action:
            q = q.where(audit_events.c.action.like(action.replace("*", "%")))
        if resource:
            q = q.where(audit_events.c.resource.like(resource.replace("*", "%")))
        if since:
            q = q.where(audit_events.c.at >= since)
        if until:
            q = q.where(audit_events.c.at < until)
        q = q.order_by(audit_events.c.n).limit(limit)
        async with self.db.read() as conn:
            rows = (await conn.execute(q)).mappings().all()
        return [_public(r) for r in rows]

    async def verify(self, tenant_id: str | None, batch: int = 5000) -> VerifyReport:
        """Walk the chain; report the first event whose hash or link does not hold."""
        key = tenant_id or PLATFORM_KEY
        prev, expected_n, checked = GENESIS, 1, 0
        async for row in self._walk(key, batch):
            if row.n != expected_n:
                return VerifyReport(False, checked, expected_n, "event missing from the chain")
            if row.prev_hash != prev:
                return VerifyReport(False, checked, row.n, "link to previous event broken")
            digest = event_hash(
                prev, key, row.n, row.at, row.actor, row.action, row.resource, row.outcome, row.data
            )
            if digest != row.hash:
                return VerifyReport(False, checked, row.n, "event content changed")
            prev, expected_n, checked = row.hash, expected_n + 1, checked + 1
        return VerifyReport(True, checked)

    async def _walk(self, key: str, batch: int) -> AsyncIterator[Any]:
        after = 0
        while True:
            async with self.db.read() as conn:
                rows = (
                    await conn.execute(
                        sa.select(audit_events)
                        .where(audit_events.c.tenant_key == key, audit_events.c.n > after)
                        .order_by(audit_events.c.n)
                        .limit(batch)
                    )
                ).all()
            if not rows:
                return
            for row in rows:
                yield row
            after = rows[-1].n


def _public(row: Any) -> dict[str, Any]:
    return {
        "n": row["n"],
        "at": _iso(row["at"]),
        "actor": row["actor"],
        "action": row["action"],
        "resource": row["resource"],
        "outcome": row["outcome"],
        "data": row["data"],
        "prev_hash": row["prev_hash"],
        "hash": row["hash"],
    }
