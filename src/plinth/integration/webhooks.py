"""The webhook engine: deliveries out (subscribed to record.* and workflow.* events) and
receipts in (signature verified, replay refused, handed to the receivers in the transaction
that records the receipt, `webhook.received` published).

Each delivery is a row: the delivery log and the queue at once. A worker (embedded in
`plinth serve`, or `plinth worker`) claims due rows under a lease (`FOR UPDATE SKIP LOCKED` on
PostgreSQL; SQLite's `BEGIN IMMEDIATE` serialises claims), attempts them, and either marks them
delivered, schedules a retry with exponential backoff, or, attempts exhausted, dead. Nothing
lives only in memory, so pending and retrying deliveries survive a restart; a worker that dies
mid-attempt leaves a lease that expires, and the delivery is attempted again (at least once:
receivers dedupe on the delivery id). Redelivery sends a logged delivery again on request.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import fnmatch
import json
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta
from typing import Any, Protocol

import httpx
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from plinth.db import Database, Steps, Write, utcnow
from plinth.errors import Conflict, NotFound, PayloadTooLarge, PlinthError
from plinth.events import Event, EventBus
from plinth.ids import new_id
from plinth.integration import signing, store
from plinth.integration.models import Delivery, EgressRefused
from plinth.integration.vault import Vault
from plinth.queue import Queue, backoff
from plinth.tenancy.models import Tenant
from plinth.tenancy.service import TenantService


class Connectors(Protocol):
    """What deliveries use of the connector service (which builds them)."""

    db: Database
    tenants: TenantService
    vault: Vault
    http: httpx.AsyncClient
    events: EventBus

    def resolve(self, url: str) -> str: ...

    async def document(
        self, tenant: Tenant, app_slug: str, name: str, kind: str | None = None
    ) -> dict[str, Any]: ...

    async def subscribers(
        self, tenant_id: str, conn: AsyncConnection | None = None
    ) -> list[tuple[str, str, dict[str, Any]]]: ...


log = logging.getLogger("plinth.integration.webhooks")
TOPICS = ("workflow.*",)  # from the bus; record.* arrive through the outbox (`effect`)
WAITING = ("pending", "retrying")
LEASE_SECONDS = 120.0  # > the longest attempt (timeout_seconds is at most 60)
CONCURRENCY = 8  # attempts in flight per worker: one slow subscriber does not stall the rest
# A change's deliveries as the outbox's prebuilt write (`Webhooks.plan`): the columns `_row` sets.
_DELIVERIES = Write(
    store.deliveries.insert(),
    [
        "id",
        "tenant_id",
        "app",
        "connector",
        "topic",
        "url",
        "payload",
        "status",
        "attempts",
        "created_at",
        "updated_at",
        "run_at",
    ],
)


# (the receipt's transaction, the tenant, the delivery: app, connector, delivery, topic,
# payload) -> events to publish after commit.
Receiver = Callable[[AsyncConnection, Tenant, dict[str, Any]], Awaitable[list[Event]]]


@dataclasses.dataclass
class _Outcome:
    ok: bool
    status: int | None = None
    error: str | None = None
    permanent: bool = False  # retrying cannot help (e.g. the SSRF guard refused the URL)


async def _settled() -> None:
    return None


class Webhooks:
    def __init__(self, service: Connectors) -> None:
        self.service = service
        self.db = service.db
        self.queue = Queue(self.db, store.deliveries, waiting=WAITING, lease_seconds=LEASE_SECONDS)
        self._wake = asyncio.Event()
        self._queued = False  # the outbox's effect queued deliveries since the last wake
        # Waits for this process's committed record writes to be dispatched (the outbox's).
        self.settle: Callable[[], Awaitable[None]] = _settled
        self._running: set[asyncio.Task[None]] = set()
        self._stop: asyncio.Event | None = None
        self._worker: asyncio.Task[None] | None = None
        # Who acts on a verified delivery (workflows start from it), inside the transaction
        # that records its receipt: a crash leaves both or neither, never an accepted delivery
        # that started nothing. Each returns the events to publish once that commits.
        self.receivers: list[Receiver] = []
        for pattern in TOPICS:
            service.events.subscribe(pattern, self._on_event)

    # -- out ----------------------------------------------------------------------------------

    async def _on_event(self, event: Event) -> None:
        if event.tenant_id is None or event.effects_done:  # done: queued by `effect`
            return
        rows = await self._rows(event.tenant_id, [event])
        if rows:
            async with self.db.transaction() as conn:
                await conn.execute(store.deliveries.insert(), rows)
            self._wake.set()

    async def effect(
        self, conn: AsyncConnection, tenant_id: str, events: Sequence[Event]
    ) -> list[Event]:
        """The outbox's webhook effect: a change's deliveries, queued in the dispatch
        transaction (one statement for all of them)."""
        rows = await self._rows(tenant_id, events, conn)
        if rows:
            await conn.execute(store.deliveries.insert(), rows)
            self._queued = True
        return []

    async def plan(self, tenant_id: str, events: Sequence[Event]) -> Steps:
        """The webhook effect as a prebuilt write (`outbox.Plan`)."""
        rows = await self._rows(tenant_id, events)
        if not rows:
            return []
        self._queued = True
        return [(_DELIVERIES, rows)]

    def wake(self) -> None:
        """A dispatch committed: if it queued deliveries, claim them now rather than at the
        next poll (a dispatch that queued none costs the worker nothing)."""
        if self._queued:
            self._queued = False
            self._wake.set()

    async def _rows(
        self, tenant_id: str, events: Sequence[Event], conn: AsyncConnection | None = None
    ) -> list[dict[str, Any]]:
        """The deliveries of `events`; `conn`: the effect's transaction, for what must be read
        (`Connectors.subscribers`)."""
        rows = []
        subscribers = await self.service.subscribers(tenant_id, conn)
        for event in events:
            for app, name, doc in subscribers:
                if event.data.get("app") not in (None, app):
                    continue  # an app's webhooks hear that app's events only
                patterns = doc.get("events") or ["record.*"]
                if any(fnmatch.fnmatchcase(event.topic, p) for p in patterns):
                    rows.append(_row(tenant_id, app, name, doc, event.topic, event.data))
        return rows

    async def enqueue(
        self,
        tenant_id: str,
        app: str,
        connector: str,
        doc: dict[str, Any],
        topic: str,
        data: dict[str, Any],
    ) -> str:
        """Queue a delivery (a row of the log, due now) and wake the worker; returns its id."""
        row = _row(tenant_id, app, connector, doc, topic, data)
        async with self.db.transaction() as conn:
            await conn.execute(store.deliveries.insert().values(**row))
        self._wake.set()
        return str(row["id"])

    # -- the queue ----------------------------------------------------------------------------

    async def claim(self, limit: int = CONCURRENCY) -> list[Delivery]:
        """Take up to `limit` due deliveries (or ones whose lease expired) under a lease."""
        taken = await self.queue.claim(limit)
        if taken is None:
            return []
        until = time.time() + LEASE_SECONDS
        return [
            dataclasses.replace(Delivery(**r._mapping), lease=taken.lease, locked_until=until)
            for r in taken.rows
        ]

    async def run_due(self, limit: int = CONCURRENCY) -> int:
        """Claim due deliveries and attempt them concurrently; how many were attempted."""
        claimed = await self.claim(limit)
        await asyncio.gather(*(self._process(d) for d in claimed))
        return len(claimed)

    async def work(self, stop: asyncio.Event, poll: float = 0.5) -> None:
        """Attempt deliveries as they fall due until `stop` is set (the worker loop)."""
        waits: set[asyncio.Task[Any]] = set()
        try:
            while not stop.is_set():
                free = CONCURRENCY - len(self._running)
                claimed: list[Delivery] = []
                if free > 0:
                    self._wake.clear()
                    try:
                        claimed = await self.claim(free)
                    except Exception:  # the database may be briefly away: try again later
                        log.exception("claiming webhook deliveries failed")
                for delivery in claimed:
                    task = asyncio.create_task(self._process(delivery))
                    self._running.add(task)
                    task.add_done_callback(self._running.discard)
                if claimed and len(claimed) == free:
                    continue  # a full batch: more may be due
                waits = {asyncio.create_task(stop.wait()), asyncio.create_task(self._wake.wait())}
                await asyncio.wait(
                    waits | self._running, timeout=poll, return_when=asyncio.FIRST_COMPLETED
                )
                for task in waits:
                    task.cancel()
        finally:
            for task in waits:
                task.cancel()
            await self._settle()

    async def _settle(self, grace: float = 5.0) -> None:
        # Let attempts in flight finish briefly; the rest are cancelled and their leases
        # released, so the next worker retries them at once instead of after the lease.
        if self._running:
            await asyncio.wait(set(self._running), timeout=grace)
        for task in list(self._running):
            task.cancel()
        await asyncio.gather(*list(self._running), return_exceptions=True)

    async def start_worker(self, poll: float = 0.5) -> None:
        """Run the delivery worker inside this process (`settings.embedded_worker`)."""
        self._stop = asyncio.Event()
        self._worker = asyncio.create_task(self.work(self._stop, poll))

    async def stop(self) -> None:
        """Stop the worker, if any (attempts in flight get a short grace)."""
        if self._stop is not None and self._worker is not None:
            self._stop.set()
            await self._worker
            self._worker = None

    async def drain(self, seconds: float = 30.0) -> None:
        """Attempt deliveries until none is waiting, sleeping through short backoffs (tests,
        a worker's catch-up)."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            if await self.run_due():
                continue
            async with self.db.read() as conn:
                next_at = (
                    await conn.execute(
                        sa.select(sa.func.min(store.deliveries.c.run_at)).where(
                            store.deliveries.c.status.in_(WAITING)
                        )
                    )
                ).scalar()
            if next_at is None:
                return
            await asyncio.sleep(min(max(0.0, next_at - time.time()), 0.5) or 0.01)

    async def _process(self, delivery: Delivery) -> None:
        try:
            async with self.queue.holding(delivery.lease or ""):
                doc = await self._document(delivery)
                if doc is None:
                    outcome = _Outcome(
                        False, error="the connector is no longer published", permanent=True
                    )
                else:
                    outcome = await self._send(delivery, doc)
            await self._finish(delivery, doc or {}, outcome)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await self._release(delivery)
            raise
        except Exception:  # the lease expires and the delivery is attempted again
            log.exception("webhook delivery %s failed in the engine", delivery.id)

    async def _document(self, delivery: Delivery) -> dict[str, Any] | None:
        tenants = await self.service.tenants.list({delivery.tenant_id})
        if not tenants:
            return None
        try:
            return await self.service.document(
                tenants[0], delivery.app, delivery.connector, kind="webhook_out"
            )
        except NotFound:
            return None

    async def _send(self, delivery: Delivery, doc: dict[str, Any]) -> _Outcome:
        """One signed POST of the delivery to its URL."""
        try:
            secret = await self.service.vault.reveal(
                delivery.tenant_id,
                doc["secret"]["secret"],
                f"webhook_out:{delivery.app}/{delivery.connector}",
            )
        except PlinthError as exc:
            return _Outcome(False, error=f"{exc.code}: the signing secret is unavailable")
        body = delivery.payload.encode()
        headers = {
            "Content-Type": "application/json",
            signing.SIGNATURE: signing.signature(secret, int(time.time()), delivery.id, body),
            signing.DELIVERY: delivery.id,
            signing.TOPIC: delivery.topic,
        }
        try:
            response = await self.service.http.post(
                self.service.resolve(delivery.url),
                content=body,
                headers=headers,
                timeout=float(doc.get("timeout_seconds", 10)),
            )
        except EgressRefused as exc:
            return _Outcome(False, error=exc.detail, permanent=True)
        except httpx.HTTPError as exc:
            return _Outcome(False, error=type(exc).__name__)
        status = response.status_code
        if 200 <= status < 300:
            return _Outcome(True, status)
        return _Outcome(False, status, f"subscriber answered {status}")

    async def _finish(
        self, delivery: Delivery, doc: dict[str, Any], outcome: _Outcome, retry: bool = True
    ) -> bool:
        """Record an attempt if the lease is still ours: delivered, retrying or dead."""
        attempts = delivery.attempts + 1
        max_attempts = int(doc.get("max_attempts", 5))
        dead = not outcome.ok and (outcome.permanent or not retry or attempts >= max_attempts)
        run_at: float | None = None
        if not outcome.ok and not dead:
            run_at = time.time() + backoff(attempts, float(doc.get("backoff_seconds", 1.0)), 3600)
        status = "delivered" if outcome.ok else ("dead" if dead else "retrying")
        d = store.deliveries
        async with self.db.transaction() as conn:
            result = await conn.execute(
                d.update()
                .where(
                    d.c.tenant_id == delivery.tenant_id,
                    d.c.id == delivery.id,
                    d.c.lease == delivery.lease,
                )
                .values(
                    attempts=d.c.attempts + 1,
                    last_status=outcome.status,
                    last_error=None if outcome.ok else outcome.error,
                    updated_at=utcnow(),
                    status=status,
                    run_at=run_at,
                    lease=None,
                    locked_until=None,
                )
            )
        if not result.rowcount:
            log.warning(
                "webhook delivery %s: lease lost before the attempt was recorded", delivery.id
            )
            return False
        if outcome.ok or dead:
            await self.service.events.publish(
                Event(
                    "webhook.delivered" if outcome.ok else "webhook.failed",
                    delivery.tenant_id,
                    {
                        "delivery": delivery.id,
                        "app": delivery.app,
                        "connector": delivery.connector,
                        "topic": delivery.topic,
                        "status": outcome.status,
                        "attempts": attempts,
                    },
                )
            )
        return True

    async def _release(self, delivery: Delivery) -> None:
        await self.queue.release(delivery.lease or "", [delivery.id])

    async def redeliver(
        self, tenant: Tenant, app: str, connector: str, delivery_id: str
    ) -> Delivery:
        """Send a logged delivery again (one attempt, freshly signed); returns its new state."""
        delivery = await self.get(tenant.id, delivery_id)
        if delivery.app != app or delivery.connector != connector:
            raise NotFound(f"No delivery {delivery_id!r} for this connector", path="delivery")
        doc = await self.service.document(tenant, app, connector, kind="webhook_out")
        now = time.time()
        lease = new_id()
        d = store.deliveries
        async with self.db.transaction() as conn:
            taken = await conn.execute(
                d.update()
                .where(
                    d.c.tenant_id == tenant.id,
                    d.c.id == delivery_id,
                    sa.or_(d.c.locked_until.is_(None), d.c.locked_until < now),
                )
                .values(lease=lease, locked_until=now + LEASE_SECONDS)
            )
        if not taken.rowcount:
            raise Conflict(
                f"Delivery {delivery_id!r} is being attempted right now; look at "
                "the delivery log in a moment",
                path="delivery",
            )
        delivery = dataclasses.replace(delivery, lease=lease)
        try:
            outcome = await self._send(delivery, doc)
            # A delivery still in the queue keeps its remaining retries; a dead or delivered
            # one gets this one attempt.
            await self._finish(delivery, doc, outcome, retry=delivery.status in WAITING)
        except BaseException:
            with contextlib.suppress(Exception):
                await self._release(delivery)
            raise
        return await self.get(tenant.id, delivery_id)

    async def get(self, tenant_id: str, delivery_id: str) -> Delivery:
        async with self.db.read() as conn:
            row = (
                await conn.execute(
                    sa.select(store.deliveries).where(
                        store.deliveries.c.tenant_id == tenant_id,
                        store.deliveries.c.id == delivery_id,
                    )
                )
            ).first()
        if row is None:
            raise NotFound(f"No delivery {delivery_id!r}", path="delivery")
        return Delivery(**row._mapping)

    async def log(
        self, tenant_id: str, app: str, connector: str, limit: int = 100
    ) -> list[Delivery]:
        """The latest deliveries of a connector, newest first."""
        await self.settle()
        async with self.db.read() as conn:
            rows = (
                await conn.execute(
                    sa.select(store.deliveries)
                    .where(
                        store.deliveries.c.tenant_id == tenant_id,
                        store.deliveries.c.app == app,
                        store.deliveries.c.connector == connector,
                    )
                    .order_by(store.deliveries.c.created_at.desc())
                    .limit(limit)
                )
            ).all()
        return [Delivery(**r._mapping) for r in rows]

    # -- in -----------------------------------------------------------------------------------

    async def receive(
        self, tenant: Tenant, app: str, connector: str, headers: dict[str, str], body: bytes
    ) -> str:
        """Verify a delivery, refuse a replay, publish `webhook.received`; returns its id."""
        doc = await self.service.document(tenant, app, connector, kind="webhook_in")
        limit = int(doc.get("max_body_bytes", 1_048_576))
        if len(body) > limit:
            raise PayloadTooLarge(f"A webhook body is at most {limit} bytes")
        tolerance = int(doc.get("tolerance_seconds", 300))
        secret = await self.service.vault.reveal(
            tenant.id, doc["secret"]["secret"], f"webhook_in:{app}/{connector}"
        )
        delivery_id = headers.get(signing.DELIVERY.lower())
        signing.verify(secret, headers.get(signing.SIGNATURE.lower()), delivery_id, body, tolerance)
        assert delivery_id is not None
        endpoint = f"{app}/{connector}"
        now = utcnow()
        try:
            payload: Any = json.loads(body) if body else None
        except ValueError:
            payload = body.decode("utf-8", "replace")
        received = {
            "app": app,
            "connector": connector,
            "delivery": delivery_id,
            "topic": headers.get(signing.TOPIC.lower()),
            "payload": payload,
        }
        after: list[Event] = []
        async with self.db.transaction() as conn:
            # Receipts older than the window cannot be replayed anyway (the timestamp
            # check refuses them), so they are pruned as new ones arrive.
            await conn.execute(
                store.receipts.delete().where(
                    store.receipts.c.tenant_id == tenant.id,
                    store.receipts.c.endpoint == endpoint,
                    store.receipts.c.received_at < now - timedelta(seconds=2 * tolerance),
                )
            )
            try:
                await conn.execute(
                    store.receipts.insert().values(
                        tenant_id=tenant.id,
                        endpoint=endpoint,
                        delivery_id=delivery_id[:100],
                        received_at=now,
                    )
                )
            except IntegrityError as exc:
                raise Conflict(
                    f"Delivery {delivery_id!r} was already received; a replay is refused",
                    path=signing.DELIVERY,
                    extra={"code": "replay"},
                ) from exc
            for receiver in self.receivers:
                after += await receiver(conn, tenant, received)
        self.wake()  # deliveries the receivers' starts queued
        await self.service.events.publish(Event("webhook.received", tenant.id, received))
        for event in after:
            await self.service.events.publish(event)
        return delivery_id


def _row(
    tenant_id: str, app: str, connector: str, doc: dict[str, Any], topic: str, data: dict[str, Any]
) -> dict[str, Any]:
    """A delivery, due now: the row of the log and of the queue."""
    delivery_id = new_id()
    now = utcnow()
    payload = json.dumps(
        {
            "id": delivery_id,
            "topic": topic,
            "app": app,
            "created_at": now.isoformat(),
            "data": data,
        },
        separators=(",", ":"),
        default=str,
    )
    return {
        "id": delivery_id,
        "tenant_id": tenant_id,
        "app": app,
        "connector": connector,
        "topic": topic,
        "url": doc["url"],
        "payload": payload,
        "status": "pending",
        "attempts": 0,
        "created_at": now,
        "updated_at": now,
        "run_at": time.time(),
    }
