"""The worker processes of one `plinth serve --workers N` tell each other what changed.

Without Redis there is no cluster relay, yet N processes hold the same caches (compiled apps,
policy sets, trusted tokens, tenants). Each binds a Unix datagram socket in a directory the
parent made for them and sends the events `plinth.cluster` relays (`RELAYED`) to every other
socket there; the receivers deliver them to their `cluster=True` handlers, as for events from
another node, and acknowledge. The publisher waits for the acknowledgements (up to
`ACK_SECONDS`) before its request answers, so the next request, whichever process takes it,
finds the change. Nothing is queued for a process that is not listening (it starts with empty
caches anyway).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
from pathlib import Path
from typing import Any

from plinth.cluster import RELAYED
from plinth.events import Event, EventBus

log = logging.getLogger("plinth.siblings")

MAX_DATAGRAM = 64 * 1024
ACK_SECONDS = 1.0  # a sibling that has not acknowledged by then is busy or gone


class SiblingRelay:
    def __init__(self, bus: EventBus, directory: Path) -> None:
        self.bus = bus
        self.directory = directory
        self.path = directory / f"{os.getpid()}.sock"
        self._sock: socket.socket | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._serial = 0
        self._waiting: dict[int, tuple[set[str], asyncio.Future[None]]] = {}

    async def start(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.setblocking(False)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        sock.bind(str(self.path))
        self._sock = sock
        asyncio.get_running_loop().add_reader(sock.fileno(), self._readable)
        self.bus.relays.append(self.send)

    async def stop(self) -> None:
        if self.send in self.bus.relays:
            self.bus.relays.remove(self.send)
        if self._sock is not None:
            asyncio.get_running_loop().remove_reader(self._sock.fileno())
            self._sock.close()
            self._sock = None
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    async def send(self, event: Event) -> None:
        if event.topic not in RELAYED or event.remote or self._sock is None:
            return
        self._serial += 1
        serial = self._serial
        payload = json.dumps(
            {
                "topic": event.topic,
                "tenant_id": event.tenant_id,
                "data": event.data,
                "serial": serial,
                "from": str(self.path),
            },
            default=str,
        ).encode()
        if len(payload) > MAX_DATAGRAM:
            log.warning("event %s too large to relay to sibling processes", event.topic)
            return
        sent: set[str] = set()
        for peer in self.directory.glob("*.sock"):
            if peer == self.path:
                continue
            try:
                self._sock.sendto(payload, str(peer))
                sent.add(str(peer))
            except (ConnectionRefusedError, FileNotFoundError):
                continue  # a process that exited (its socket file may linger)
            except OSError:
                log.warning("could not relay %s to %s", event.topic, peer.name)
        if not sent:
            return
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting[serial] = (sent, done)
        try:
            await asyncio.wait_for(done, ACK_SECONDS)
        except TimeoutError:
            log.warning("a sibling process did not acknowledge %s in time", event.topic)
        finally:
            self._waiting.pop(serial, None)

    def _readable(self) -> None:
        assert self._sock is not None
        while True:
            try:
                raw = self._sock.recv(MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                return
            self._deliver(raw)

    def _deliver(self, raw: bytes) -> None:
        try:
            message: dict[str, Any] = json.loads(raw)
        except ValueError:
            return
        if "ack" in message:
            waiting = self._waiting.get(message["ack"])
            if waiting is not None:
                waiting[0].discard(str(message.get("by")))
                if not waiting[0] and not waiting[1].done():
                    waiting[1].set_result(None)
            return
        if message.get("topic") not in RELAYED:
            return
        event = Event(
            message["topic"], message.get("tenant_id"), dict(message.get("data") or {}), True
        )
        task = asyncio.get_running_loop().create_task(
            self._handle(event, message.get("serial"), message.get("from"))
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _handle(self, event: Event, serial: Any, sender: Any) -> None:
        try:
            await self.bus.deliver(event)
        finally:
            if self._sock is not None and isinstance(sender, str):
                ack = json.dumps({"ack": serial, "by": str(self.path)}).encode()
                with contextlib.suppress(OSError):
                    self._sock.sendto(ack, sender)
