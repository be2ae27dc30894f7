"""A room's fan-out: at once while it takes a small share of the CPU, merged beyond that."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import httpx
from pycrdt import Doc, Map

from plinth.designer import protocol as p
from plinth.designer.service import Connection, Room
from tests.conftest import ADMIN_TOKEN
from tests.designer.conftest import Served
from tests.designer.test_sync import setup_app
from tests.designer.yclient import YClient, eventually


def names(doc: Doc) -> set[str]:
    """The field names of the document's entity."""
    entities = doc.get("entities", type=Map)
    return {f["name"] for e in entities.to_py().values() for f in e["fields"].values()}


class Editor:
    """A local copy of the room's document that makes one update per call."""

    def __init__(self, room: Room) -> None:
        self.doc: Doc = Doc()
        self.doc.apply_update(room.doc.get_update())
        self.made = 0

    def update(self) -> bytes:
        before = self.doc.get_state()
        entities = self.doc.get("entities", type=Map)
        fields = entities[next(iter(entities))]["fields"]
        self.made += 1
        fields[f"fld_fan{self.made}"] = Map({"name": f"fan{self.made}", "pos": 99})
        return self.doc.get_update(before)


class Listener:
    """A connection in the room whose socket runs `on_send` and applies what it gets."""

    def __init__(self, room: Room, on_send: Callable[[], None]) -> None:
        self.doc: Doc = Doc()
        self.doc.apply_update(room.doc.get_update())
        self.times: list[float] = []  # when each update message was sent
        self.on_send = on_send
        principal = next(iter(room.conns)).principal
        self.conn = Connection(principal, True, self.send, self.close)

    async def send(self, message: bytes) -> None:
        msg = p.parse(message)
        if msg.type == p.SYNC and msg.kind == p.UPDATE:
            self.on_send()
            self.doc.apply_update(msg.payload)
            self.times.append(time.perf_counter())

    async def close(self, _code: int, _reason: str) -> None:
        pass


async def join(served: Served, room: Room, on_send: Callable[[], None]) -> Listener:
    listener = Listener(room, on_send)
    await served.platform.designer.join(room, listener.conn)
    return listener


async def test_a_fan_out_slowed_by_other_work_does_not_hold_back_the_next(
    served: Served, http: httpx.AsyncClient
) -> None:
    """What paces a room's fan-outs is the CPU they use: one that took long in wall time
    because the process was not running (here: a send blocked for 60 ms without using the
    CPU) does not make the room wait before sending the next update."""
    await setup_app(http)
    async with YClient(served.sync_url("acme", "claims"), ADMIN_TOKEN) as first:
        await asyncio.wait_for(first.synced.wait(), 5)
        room = next(iter(served.platform.designer.rooms.values()))
        stalls = [0.06]

        def blocked() -> None:
            if stalls:
                time.sleep(stalls.pop())

        listener = await join(served, room, blocked)
        editor = Editor(room)
        await room.accept(None, editor.update(), "test")
        await asyncio.sleep(0)  # the fan-out runs at the next turn of the loop
        assert len(listener.times) == 1
        await room.accept(None, editor.update(), "test")
        await eventually(lambda: len(listener.times) == 2)
        assert listener.times[1] - listener.times[0] < 0.03  # 50 ms when wall time counted
        await room.flush()


async def test_a_room_whose_fan_outs_take_the_cpu_merges_what_arrives_meanwhile(
    served: Served, http: httpx.AsyncClient
) -> None:
    """20 sockets costing 0.5 ms of CPU each: a fan-out per update would take all the CPU;
    the room instead sends what arrived meanwhile as one message, and every update gets
    there."""
    await setup_app(http)
    async with YClient(served.sync_url("acme", "claims"), ADMIN_TOKEN) as first:
        await asyncio.wait_for(first.synced.wait(), 5)
        room = next(iter(served.platform.designer.rooms.values()))

        def costly() -> None:
            end = time.thread_time() + 0.0005
            while time.thread_time() < end:
                pass

        listeners = [await join(served, room, costly) for _ in range(20)]
        editor = Editor(room)
        for _ in range(30):
            await room.accept(None, editor.update(), "test")
            await asyncio.sleep(0.001)
        wanted = {f"fan{i}" for i in range(1, 31)}
        await eventually(lambda: all(wanted <= names(x.doc) for x in listeners))
        assert all(1 < len(x.times) < 20 for x in listeners)
        await room.flush()
