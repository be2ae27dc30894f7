"""The webhook engine: deliveries out (subscribed to record.* and workflow.* events) and
receipts in (signature verified, replay refused, `webhook.received` published).

Each delivery is a row (the delivery log); attempts run in background tasks with exponential
backoff, and a delivery can be redelivered on request. A scaled-out deployment would move the
attempts to the workflows queue; the row and the signing stay the same.
"""

from __future__ import annotations

import asyncio
import fnmatch
import json
import logging
import random
import time
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import httpx
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from plinth.db import utcnow
from plinth.errors import Conflict, NotFound, PayloadTooLarge
from plinth.events import Event
from plinth.ids import new_id
from plinth.integration import signing, store
from plinth.integration.models import Delivery
from plinth.tenancy.models import Tenant

if TYPE_CHECKING:
    from plinth.integration.service import ConnectorService

log = logging.getLogger("plinth.integration.webhooks")
TOPICS = ("record.*", "workflow.*")


class Webhooks:
    def __init__(self, service: ConnectorService) -> None:
        self.service = service
        self.db = service.db
        self._tasks: set[asyncio.Task[None]] = set()
        for pattern in TOPICS:
            service.events.subscribe(pattern, self._on_event)

    # -- out ----------------------------------------------------------------------------------

    async def _on_event(self, event: Event) -> None:
        if event.tenant_id is None:
            return
        for app, name, doc in await self.service.subscribers(event.tenant_id):
            if event.data.get("app") not in (None, app):
                continue  # an app's webhooks hear that app's events only
            patterns = doc.get("events") or ["record.*"]
            if any(fnmatch.fnmatchcase(event.topic, p) for p in patterns):
                await self.enqueue(event.tenant_id, app, name, doc, event.topic, event.data)

    async def enqueue(self, tenant_id: str, app: str, connector: str, doc: dict[str, Any],
                      topic: str, data: dict[str, Any]) -> str:
        """Log a delivery and start sending it in the background; returns its id."""
        delivery_id = new_id()
        now = utcnow()
        payload = json.dumps({"id": delivery_id, "topic": topic, "app": app,
                              "created_at": now.isoformat(), "data": data},
                             separators=(",", ":"), default=str)
        async with self.db.transaction() as conn:
            await conn.execute(store.deliveries.insert().values(
                id=delivery_id, tenant_id=tenant_id, app=app, connector=connector, topic=topic,
                url=doc["url"], payload=payload, status="pending", attempts=0,
                created_at=now, updated_at=now))
        task = asyncio.create_task(self._deliver(tenant_id, delivery_id, doc))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return delivery_id

    async def _deliver(self, tenant_id: str, delivery_id: str, doc: dict[str, Any],
                       max_attempts: int | None = None) -> None:
        attempts = max_attempts or int(doc.get("max_attempts", 5))
        backoff = float(doc.get("backoff_seconds", 1.0))
        for attempt in range(attempts):
            if await self._attempt(tenant_id, delivery_id, doc, final=attempt == attempts - 1):
                return
            if attempt < attempts - 1:
                await asyncio.sleep(backoff * (2 ** attempt) * (0.5 + random.random() / 2))

    async def _attempt(self, tenant_id: str, delivery_id: str, doc: dict[str, Any],
                       final: bool) -> bool:
        delivery = await self.get(tenant_id, delivery_id)
        secret = await self.service.vault.reveal(tenant_id, doc["secret"]["secret"],
                                                 f"webhook_out:{delivery.app}/"
                                                 f"{delivery.connector}")
        body = delivery.payload.encode()
        headers = {"Content-Type": "application/json",
                   signing.SIGNATURE: signing.signature(secret, int(time.time()), delivery_id,
                                                        body),
                   signing.DELIVERY: delivery_id, signing.TOPIC: delivery.topic}
        status: int | None = None
        error: str | None = None
        try:
            response = await self.service.http.post(
                delivery.url, content=body, headers=headers,
                timeout=float(doc.get("timeout_seconds", 10)))
            status = response.status_code
            ok = 200 <= status < 300
            if not ok:
                error = f"subscriber answered {status}"
        except httpx.HTTPError as exc:
            ok = False
            error = f"{type(exc).__name__}"
        async with self.db.transaction() as conn:
            await conn.execute(store.deliveries.update().where(
                store.deliveries.c.tenant_id == tenant_id, store.deliveries.c.id == delivery_id
            ).values(attempts=store.deliveries.c.attempts + 1, last_status=status,
                     last_error=None if ok else error, updated_at=utcnow(),
                     status="delivered" if ok else ("failed" if final else "pending")))
        if ok or final:
            await self.service.events.publish(Event(
                "webhook.delivered" if ok else "webhook.failed", tenant_id,
                {"delivery": delivery_id, "app": delivery.app,
                 "connector": delivery.connector, "topic": delivery.topic, "status": status}))
        return ok

    async def redeliver(self, tenant: Tenant, app: str, connector: str,
                        delivery_id: str) -> Delivery:
        """Send a logged delivery again (one attempt, freshly signed); returns its new state."""
        delivery = await self.get(tenant.id, delivery_id)
        if delivery.app != app or delivery.connector != connector:
            raise NotFound(f"No delivery {delivery_id!r} for this connector", path="delivery")
        doc = await self.service.document(tenant, app, connector, kind="webhook_out")
        doc = {**doc, "url": delivery.url}
        await self._attempt(tenant.id, delivery_id, doc, final=True)
        return await self.get(tenant.id, delivery_id)

    async def get(self, tenant_id: str, delivery_id: str) -> Delivery:
        async with self.db.read() as conn:
            row = (await conn.execute(sa.select(store.deliveries).where(
                store.deliveries.c.tenant_id == tenant_id,
                store.deliveries.c.id == delivery_id))).first()
        if row is None:
            raise NotFound(f"No delivery {delivery_id!r}", path="delivery")
        return Delivery(**row._mapping)

    async def log(self, tenant_id: str, app: str, connector: str,
                  limit: int = 100) -> list[Delivery]:
        """The latest deliveries of a connector, newest first."""
        async with self.db.read() as conn:
            rows = (await conn.execute(sa.select(store.deliveries).where(
                store.deliveries.c.tenant_id == tenant_id, store.deliveries.c.app == app,
                store.deliveries.c.connector == connector,
            ).order_by(store.deliveries.c.created_at.desc()).limit(limit))).all()
        return [Delivery(**r._mapping) for r in rows]

    async def drain(self) -> None:
        """Wait until every delivery in flight has finished (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*list(self._tasks), return_exceptions=True)

    # -- in -----------------------------------------------------------------------------------

    async def receive(self, tenant: Tenant, app: str, connector: str,
                      headers: dict[str, str], body: bytes) -> str:
        """Verify a delivery, refuse a replay, publish `webhook.received`; returns its id."""
        doc = await self.service.document(tenant, app, connector, kind="webhook_in")
        limit = int(doc.get("max_body_bytes", 1_048_576))
        if len(body) > limit:
            raise PayloadTooLarge(f"A webhook body is at most {limit} bytes")
        tolerance = int(doc.get("tolerance_seconds", 300))
        secret = await self.service.vault.reveal(tenant.id, doc["secret"]["secret"],
                                                 f"webhook_in:{app}/{connector}")
        delivery_id = headers.get(signing.DELIVERY.lower())
        signing.verify(secret, headers.get(signing.SIGNATURE.lower()), delivery_id, body,
                       tolerance)
        assert delivery_id is not None
        endpoint = f"{app}/{connector}"
        now = utcnow()
        try:
            async with self.db.transaction() as conn:
                # Receipts older than the window cannot be replayed anyway (the timestamp
                # check refuses them), so they are pruned as new ones arrive.
                await conn.execute(store.receipts.delete().where(
                    store.receipts.c.tenant_id == tenant.id,
                    store.receipts.c.endpoint == endpoint,
                    store.receipts.c.received_at < now - timedelta(seconds=2 * tolerance)))
                await conn.execute(store.receipts.insert().values(
                    tenant_id=tenant.id, endpoint=endpoint, delivery_id=delivery_id[:100],
                    received_at=now))
        except IntegrityError as exc:
            raise Conflict(f"Delivery {delivery_id!r} was already received; a replay is "
                           "refused", path=signing.DELIVERY, extra={"code": "replay"}) from exc
        try:
            payload: Any = json.loads(body) if body else None
        except ValueError:
            payload = body.decode("utf-8", "replace")
        await self.service.events.publish(Event("webhook.received", tenant.id, {
            "app": app, "connector": connector, "delivery": delivery_id,
            "topic": headers.get(signing.TOPIC.lower()), "payload": payload}))
        return delivery_id
