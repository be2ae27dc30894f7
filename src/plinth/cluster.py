"""Scale-out: relay the events every node must hear through Redis pub/sub.

A publish, rollback or delete on one node changes what every node has cached (compiled apps,
policy sets, connector documents). The node that made the change publishes the event on its
bus; this relay sends it to the cluster's channel, and each other node delivers it to its
`cluster=True` handlers only. A node that misses a message (Redis restart) serves the old
version until its next restart or change — the relay says so in the log when it reconnects.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from typing import Any

from plinth.events import Event, EventBus

log = logging.getLogger("plinth.cluster")

RELAYED = (
    "app.published",
    "app.rolled_back",
    "app.deleted",
    "token.revoked",  # every node stops trusting the token at once
    "tenant.changed",  # every node drops the tenant it cached
)


class RedisRelay:
    def __init__(self, bus: EventBus, redis_url: str, cluster: str = "plinth") -> None:
        import redis.asyncio as redis

        self.bus = bus
        self.redis: Any = redis.from_url(redis_url)
        self.channel = f"{cluster}:events"
        self.node = secrets.token_hex(8)
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()

    async def start(self) -> None:
        self.bus.relay = self.send
        self._task = asyncio.create_task(self._listen(), name="plinth-cluster-relay")
        await asyncio.wait_for(self._ready.wait(), 10)

    async def stop(self) -> None:
        self.bus.relay = None
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.redis.aclose()

    async def send(self, event: Event) -> None:
        if event.topic not in RELAYED or event.remote:
            return
        message = {
            "node": self.node,
            "topic": event.topic,
            "tenant_id": event.tenant_id,
            "data": event.data,
        }
        await self.redis.publish(self.channel, json.dumps(message, default=str))

    async def _listen(self) -> None:
        first = True
        while True:
            try:
                pubsub = self.redis.pubsub()
                await pubsub.subscribe(self.channel)
                if not first:
                    log.warning(
                        "cluster relay reconnected; changes made meanwhile on other "
                        "nodes reach this one at their next publish"
                    )
                first = False
                self._ready.set()
                async for message in pubsub.listen():
                    if message.get("type") == "message":
                        await self._deliver(message["data"])
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("cluster relay lost Redis; retrying in 1 s")
                await asyncio.sleep(1)

    async def _deliver(self, raw: bytes) -> None:
        try:
            message = json.loads(raw)
        except ValueError:
            log.warning("ignored a malformed cluster message")
            return
        if message.get("node") == self.node or message.get("topic") not in RELAYED:
            return
        await self.bus.deliver(
            Event(
                message["topic"],
                message.get("tenant_id"),
                dict(message.get("data") or {}),
                remote=True,
            )
        )
