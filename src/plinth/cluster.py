"""Relay the events every process must hear: through Redis pub/sub when scaled out, through a
change log in the platform database otherwise.

A publish, rollback or delete in one process changes what every process has cached (compiled
apps, policy sets, connector documents). The process that made the change publishes the event
on its bus; the relay sends it on, and each other process delivers it to its `cluster=True`
handlers only.

`Cluster` owns this process's one Redis connection (scale-out) and names the channels on it:
the relay's events, the designer's room updates; the connectors' breakers and OAuth tokens
use the same connection. Without Redis it holds none, and each layer keeps that state in
process.

- `RedisRelay` (scale-out): the cluster's `events` channel. A node that misses a message (Redis
  restart) serves the old version until its next restart or change — the relay says so in the
  log when it reconnects.
- `LogRelay` (embedded, or PostgreSQL without Redis): a row in `cluster_events`, which every
  serving process polls a few times a second with one indexed read. This is how a CLI
  `plinth app publish` reaches the server running on the same data dir within a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
from typing import Any

import sqlalchemy as sa

from plinth.db import Database, Query, platform_metadata
from plinth.events import Event, EventBus

log = logging.getLogger("plinth.cluster")

RELAYED = (
    "app.published",
    "app.rolled_back",
    "app.deleted",
    "token.revoked",  # every node stops trusting the token at once
    "identity.sessions_ended",  # every node refuses the user's older access tokens at once
    "tenant.changed",  # every node drops the tenant it cached
)

log_events = sa.Table(
    "cluster_events",
    platform_metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("node", sa.String(16), nullable=False),
    sa.Column("topic", sa.String(64), nullable=False),
    sa.Column("tenant_id", sa.String(32), nullable=True),
    sa.Column("data", sa.Text, nullable=False),  # JSON
    sa.Column("at", sa.Float, nullable=False, index=True),
)
# What was logged after a listener's cursor, in order, a bounded batch at a time (prebuilt: a
# poll with nothing new is one indexed read without a transaction, on SQLite's platform file
# on the loop's thread; a burst is read in batches).
CATCH_UP_BATCH = 500
_SINCE = Query(
    sa.select(log_events)
    .where(log_events.c.seq > sa.bindparam("cursor", type_=sa.Integer))
    .order_by(log_events.c.seq)
    .limit(CATCH_UP_BATCH)
)


class Cluster:
    """The Redis connection of this process and its channels; `redis` is None without one."""

    def __init__(self, redis_url: str | None, name: str = "plinth") -> None:
        self.name = name
        self.redis: Any = None
        if redis_url:
            import redis.asyncio as aioredis

            self.redis = aioredis.from_url(redis_url)

    def channel(self, topic: str) -> str:
        """The pub/sub channel of `topic` ("events", "designer") for this cluster."""
        return f"{self.name}:{topic}"

    async def close(self) -> None:
        if self.redis is not None:
            await self.redis.aclose()


class RedisRelay:
    def __init__(self, bus: EventBus, cluster: Cluster) -> None:
        assert cluster.redis is not None, "the Redis relay needs the cluster's Redis"
        self.bus = bus
        self.redis: Any = cluster.redis
        self.channel = cluster.channel("events")
        self.node = secrets.token_hex(8)
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()

    async def start(self) -> None:
        self.bus.relays.append(self.send)
        self._task = asyncio.create_task(self._listen(), name="plinth-cluster-relay")
        await asyncio.wait_for(self._ready.wait(), 10)

    async def stop(self) -> None:
        if self.send in self.bus.relays:
            self.bus.relays.remove(self.send)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

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


class LogRelay:
    """The change log: relayed events are rows of `cluster_events`, polled by listeners."""

    KEEP_SECONDS = 3600.0  # a listener further behind than this restarts anyway

    def __init__(self, bus: EventBus, db: Database, poll: float = 0.25) -> None:
        self.bus = bus
        self.db = db
        self.poll = poll
        self.node = secrets.token_hex(8)
        self._cursor = 0
        self._task: asyncio.Task[None] | None = None

    async def start(self, *, listen: bool) -> None:
        """Send this process's events; `listen`: also deliver other processes' (a server)."""
        self.bus.relays.append(self.send)
        if listen:
            async with self.db.read() as conn:
                self._cursor = (
                    await conn.execute(sa.select(sa.func.max(log_events.c.seq)))
                ).scalar() or 0
            self._task = asyncio.create_task(self._listen(), name="plinth-cluster-log")

    async def stop(self) -> None:
        if self.send in self.bus.relays:
            self.bus.relays.remove(self.send)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def send(self, event: Event) -> None:
        if event.topic not in RELAYED or event.remote:
            return
        now = time.time()
        async with self.db.transaction() as conn:
            await conn.execute(
                log_events.insert().values(
                    node=self.node,
                    topic=event.topic,
                    tenant_id=event.tenant_id,
                    data=json.dumps(event.data, default=str),
                    at=now,
                )
            )
            await conn.execute(log_events.delete().where(log_events.c.at < now - self.KEEP_SECONDS))

    async def _listen(self) -> None:
        while True:
            await asyncio.sleep(self.poll)
            try:
                await self.catch_up()
            except asyncio.CancelledError:
                raise
            except Exception:  # the database away for a moment: the next poll catches up
                log.warning("reading the cluster change log failed", exc_info=True)

    async def catch_up(self) -> int:
        """Deliver the events other processes logged since the last look; how many."""
        seen = 0
        while True:
            rows = await self.db.fetch(_SINCE, {"cursor": self._cursor})
            for row in rows:
                self._cursor = row["seq"]
                if row["node"] == self.node or row["topic"] not in RELAYED:
                    continue
                data = dict(json.loads(row["data"]) or {})
                await self.bus.deliver(Event(row["topic"], row["tenant_id"], data, remote=True))
            seen += len(rows)
            if len(rows) < CATCH_UP_BATCH:
                return seen
