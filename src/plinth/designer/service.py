"""The designer's rooms on this node (`room.Room`: one CRDT document per app draft), the bridge
that sends REST reads and writes of a co-edited draft through its room, and the relay of
logged updates, presence and settles to the other nodes (Redis).

Each update is checked here first (role, size, rate, the connection's CPU budget) before its
room accepts it; `room` tells what happens to it then."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import random
import time
from typing import Any

from plinth.cluster import Cluster
from plinth.db import Database
from plinth.designer import protocol as p
from plinth.designer import store
from plinth.designer.connection import ACK, SLOW, Connection, Limits
from plinth.designer.room import Room, compact_app
from plinth.errors import Fault
from plinth.events import Event, EventBus
from plinth.metadata.models import Draft
from plinth.metadata.service import AlsoWrite, Change, MetadataService
from plinth.tenancy.models import Tenant

log = logging.getLogger("plinth.designer")


class DesignerService:
    """Rooms of this node, the REST bridge and the cross-node relay."""

    def __init__(
        self,
        db: Database,
        events: EventBus,
        metadata: MetadataService,
        cluster: Cluster | None = None,
        limits: Limits | None = None,
    ) -> None:
        self.db = db
        self.events = events
        self.metadata = metadata
        self.limits = limits or Limits()
        self.rooms: dict[str, Room] = {}
        self.node = base64.urlsafe_b64encode(random.randbytes(9)).decode()
        self._creating: dict[str, asyncio.Lock] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._redis: Any = cluster.redis if cluster is not None else None
        self.channel = cluster.channel("designer") if cluster is not None else ""
        self._pubsub: Any = None
        self._started = False
        events.subscribe("draft.updated", self._on_draft_updated)
        metadata.draft_log = self  # the REST draft is derived from the rooms' logs

    # -- the metadata service's DraftLog ------------------------------------------------------

    async def settle(self, tenant: Tenant, slug: str) -> None:
        """Bring the REST draft up to every logged update (a no-op when it already is)."""
        app = await self.metadata.get_app(tenant, slug)
        async with self.db.read() as conn:
            state = await store.settle_state(conn, app.id)
        if state is None or state[0] <= state[1]:
            return
        room = await self.room(tenant, slug)
        await room.settle()

    async def write(
        self,
        tenant: Tenant,
        slug: str,
        change: Change,
        by: str | None,
        if_revision: int | None,
        also: AlsoWrite | None = None,
    ) -> Draft:
        """A REST write of the draft, through its room (directly when never co-edited)."""
        key = f"{tenant.id}/{slug}"
        if key not in self.rooms:
            app = await self.metadata.get_app(tenant, slug)
            async with self.db.read() as conn:
                never_opened = await store.snapshot_meta(conn, app.id) is None
            if never_opened:  # no log yet: the REST draft is the whole truth
                return await self.metadata.write_draft(
                    tenant, slug, change, by, if_revision, through_log=False, also=also
                )
        room = await self.room(tenant, slug)
        return await room.write(change, by, if_revision, also)

    def spawn(self, coro: Any) -> asyncio.Task[Any]:
        """Run a background task that stop() waits for."""
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("designer task failed", exc_info=task.exception())

    async def _ensure_started(self) -> None:
        if self._started:
            return
        self._started = True
        if self._redis is not None:
            self._pubsub = self._redis.pubsub()
            await self._pubsub.subscribe(self.channel)
            self.spawn(self._listen())
        self.spawn(self._housekeeping())

    async def room(self, tenant: Tenant, slug: str) -> Room:
        """The loaded room of an app draft; loading happens once, under its creation lock."""
        await self._ensure_started()
        key = f"{tenant.id}/{slug}"
        room = self.rooms.get(key)
        if room is not None:
            return room
        lock = self._creating.setdefault(key, asyncio.Lock())
        async with lock:
            room = self.rooms.get(key)
            if room is None:
                app = await self.metadata.get_app(tenant, slug)
                room = Room(self, tenant, slug, app.id)
                await room.load()
                self.rooms[key] = room
                await self.relay(room, "sv", room.doc.get_state())
        return room

    async def _on_draft_updated(self, event: Event) -> None:
        key = f"{event.tenant_id}/{event.data.get('app')}"
        room = self.rooms.get(key)
        if room is not None:
            await room.sync_from_draft()

    async def history(self, tenant: Tenant, slug: str, limit: int = 100) -> list[store.Change]:
        """Who changed what, newest first."""
        app = await self.metadata.get_app(tenant, slug)
        async with self.db.read() as conn:
            return await store.history(conn, tenant.id, app.id, limit)

    # -- connections --------------------------------------------------------------------------

    async def join(self, room: Room, conn: Connection) -> None:
        """Greet a new connection: our state vector, then everyone's presence."""
        room.conns.add(conn)
        room.idle_since = None
        conn.cpu_debt, conn.cpu_last = room.cpu_debts.pop(
            conn.principal.id, (0.0, time.monotonic())
        )
        conn.max_queue_bytes = self.limits.max_send_queue_bytes
        conn.push(p.sync_message(p.STEP1, room.doc.get_state()))
        conn.push(room.presence_snapshot())

    async def receive(self, room: Room, conn: Connection, data: bytes) -> None:
        """Handle one client message; raises ProtocolError/ValueError to close the connection."""
        msg = p.parse(data)
        if msg.type == p.AWARENESS:
            await room.presence_update(conn, msg.payload)
            return
        if msg.kind == p.STEP1:
            conn.answer(room.doc.get_update(msg.payload))
            return
        update = msg.payload
        if update == p.EMPTY_UPDATE:
            return
        if not conn.can_edit:
            await self.refuse(room, conn)  # a viewer keeps no diverged copy
            return
        if len(update) > self.limits.max_update_bytes:
            raise p.ProtocolError(f"an update is at most {self.limits.max_update_bytes} bytes")
        if room.size + len(update) > self.limits.max_doc_bytes:
            raise p.ProtocolError("the draft document is at its size limit")
        if not conn.allow(self.limits):
            raise RateLimitedError("too many updates per second")
        if not conn.cpu_left(self.limits):
            await self.refuse(room, conn)
            raise CpuBudgetError(self._cpu_reason(conn))
        started = time.thread_time()
        try:
            p.screen_update(update)  # before pycrdt sees it: some inputs crash its decoder
        finally:
            conn.cpu_debt += time.thread_time() - started
        await room.accept(conn, update, conn.principal.audit_name())
        if not conn.cpu_left(self.limits):
            raise CpuBudgetError(self._cpu_reason(conn))

    async def refuse(self, room: Room, conn: Connection) -> None:
        """Resync a client whose update was not applied, so it sees the room's state."""
        conn.refused += 1
        conn.push(p.sync_message(p.STEP2, room.doc.get_update()))
        await conn.drained()  # a refusal may close the socket next: the state goes first

    def _cpu_reason(self, conn: Connection) -> str:
        return (
            f"updates cost too much CPU ({conn.cpu_debt * 1000:.0f} ms pending; the "
            f"budget is {self.limits.cpu_per_second * 1000:.0f} ms per second)"
        )

    # -- relay (Redis pub/sub) ----------------------------------------------------------------

    @property
    def relaying(self) -> bool:
        """Whether other nodes listen (a Redis relay is configured)."""
        return self._redis is not None

    async def relay(self, room: Room, kind: str, payload: bytes) -> None:
        """Tell other nodes; a no-op without Redis."""
        if self._redis is None:
            return
        message = json.dumps(
            {
                "node": self.node,
                "room": f"{room.tenant.id}/{room.slug}",
                "kind": kind,
                "data": base64.b64encode(payload).decode(),
            }
        )
        try:
            await self._redis.publish(self.channel, message)
        except Exception:
            log.warning("designer relay failed; peers catch up from the log", exc_info=True)

    async def _listen(self) -> None:
        while True:
            try:
                message = await self._pubsub.get_message(
                    ignore_subscribe_messages=True, timeout=1.0
                )
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("designer relay read failed", exc_info=True)
                await asyncio.sleep(1.0)
                continue
            if message is None:
                continue
            try:
                body = json.loads(message["data"])
                if body["node"] == self.node:
                    continue
                room = self.rooms.get(body["room"])
                if room is None:
                    continue
                data = base64.b64decode(body["data"])
                if body["kind"] == "update":
                    await room.apply_remote(data)
                elif body["kind"] == "awareness":
                    await room.presence_remote(data)
                elif body["kind"] == "sv":
                    # A peer's state vector: send what it lacks, and ask for what we lack.
                    missing = room.doc.get_update(data)
                    if missing != p.EMPTY_UPDATE:
                        await self.relay(room, "update", missing)
            except Exception:
                log.warning("bad designer relay message", exc_info=True)

    async def _housekeeping(self) -> None:
        """Periodic state-vector exchange, catch-up, presence renewal and idle compaction."""
        while True:
            await asyncio.sleep(self.limits.sync_interval_seconds)
            now = time.monotonic()
            for key, room in list(self.rooms.items()):
                try:
                    await room.catch_up()
                    await self.relay(room, "sv", room.doc.get_state())
                    await room.broadcast_server_state()
                    idle = (
                        room.idle_since is not None
                        and now - room.idle_since > self.limits.idle_compact_seconds
                    )
                    if idle:
                        await room.compact()
                        self.rooms.pop(key, None)
                except Exception:
                    log.warning("designer housekeeping failed for %s", key, exc_info=True)

    async def stop(self) -> None:
        """Finish pending writes, compact open rooms, close the relay."""
        for room in list(self.rooms.values()):
            try:
                await room.flush()
            except Exception:
                log.warning("final log write of %s failed", room.slug, exc_info=True)
            if room._settle is not None:
                room._settle.cancel()
                try:  # the log already holds every update; this keeps REST in step too
                    await room.settle()
                except Exception:
                    log.warning("final settle of %s failed", room.slug, exc_info=True)
        pending = list(self._tasks)
        for task in list(pending):
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        self.events.unsubscribe(self._on_draft_updated)
        if self._pubsub is not None:  # the connection itself is the cluster's
            await self._pubsub.aclose()


class RateLimitedError(ValueError):
    """A connection sent updates faster than allowed."""


class CpuBudgetError(RateLimitedError):
    """A connection's updates cost more CPU to apply than its budget allows."""


__all__ = [
    "ACK",
    "SLOW",
    "Connection",
    "DesignerService",
    "Fault",
    "Limits",
    "Room",
    "compact_app",
]
