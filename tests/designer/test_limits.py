"""Per-connection rate limit, and compaction that keeps the room and its history whole."""

from __future__ import annotations

import asyncio

import httpx
import sqlalchemy as sa
from pycrdt import Map

from plinth.designer import protocol as p
from plinth.designer import store
from tests.conftest import ADMIN_TOKEN
from tests.designer.conftest import Served
from tests.designer.test_sync import add_field, entity, field_names, setup_app
from tests.designer.yclient import YClient, eventually


async def test_a_flooding_connection_is_closed_and_the_room_goes_on(
    served: Served, http: httpx.AsyncClient
) -> None:
    await setup_app(http)
    limits = served.platform.designer.limits
    limits.updates_per_second, limits.burst = 2.0, 5
    url = served.sync_url("acme", "claims")
    async with YClient(url, ADMIN_TOKEN) as flood, YClient(url, ADMIN_TOKEN) as calm:
        await asyncio.wait_for(flood.synced.wait(), 5)
        await asyncio.wait_for(calm.synced.wait(), 5)
        for i in range(20):
            add_field(flood, "claim", f"fld_f{i}", f"flood{i}", type="string")
        await eventually(lambda: flood.closed is not None)
        assert flood.closed is not None and flood.closed[0] == 4429
        add_field(calm, "claim", "fld_calm", "calm", type="string")
        async with YClient(url, ADMIN_TOKEN) as late:
            await asyncio.wait_for(late.synced.wait(), 5)
            await eventually(lambda: "calm" in field_names(late, "claim"))


async def test_compaction_every_n_updates_keeps_state_and_history(
    served: Served, http: httpx.AsyncClient
) -> None:
    await setup_app(http)
    service = served.platform.designer
    service.limits.compact_every = 10
    url = served.sync_url("acme", "claims")
    async with YClient(url, ADMIN_TOKEN) as a:
        await asyncio.wait_for(a.synced.wait(), 5)
        for i in range(25):
            add_field(a, "claim", f"fld_c{i}", f"c{i}", type="string")
            await asyncio.sleep(0.01)
        await eventually(lambda: len(field_names(a, "claim")) == 28)
    await asyncio.sleep(2.5)  # compaction folds rows older than its safety margin
    room = next(iter(service.rooms.values()))
    await room.compact()
    async with served.platform.db.read() as conn:
        folded = (
            await conn.execute(
                sa.select(sa.func.count()).where(
                    store.updates.c.app_id == room.app_id, store.updates.c.data.is_(None)
                )
            )
        ).scalar()
    assert folded and folded >= 20
    service.rooms.clear()
    async with YClient(url, ADMIN_TOKEN) as b:
        await asyncio.wait_for(b.synced.wait(), 5)
        assert len(field_names(b, "claim")) == 28
    history = (await http.get("/api/t/acme/apps/claims/draft/history?limit=1000")).json()
    assert len(history["items"]) >= 25  # history outlives compaction


async def test_costly_updates_close_the_connection_and_a_refused_client_is_resynced(
    served: Served, http: httpx.AsyncClient
) -> None:
    await setup_app(http)
    limits = served.platform.designer.limits
    limits.cpu_per_second, limits.cpu_burst = 0.0001, 0.002  # 2 ms of applying, then out
    url = served.sync_url("acme", "claims")
    async with YClient(url, ADMIN_TOKEN) as heavy, YClient(url, ADMIN_TOKEN) as calm:
        await asyncio.wait_for(heavy.synced.wait(), 5)
        await asyncio.wait_for(calm.synced.wait(), 5)
        _, ent = entity(heavy, "claim")
        with heavy.doc.transaction():  # one update that costs far more than 2 ms to apply
            for i in range(1500):
                ent["fields"][f"fld_h{i}"] = Map(
                    {"name": f"h{i}", "pos": 100 + i, "attrs": Map({"type": "string"})}
                )
        await eventually(lambda: heavy.closed is not None)
        assert heavy.closed is not None and heavy.closed[0] == 4429
        assert "CPU" in heavy.closed[1] and "budget" in heavy.closed[1]
        # the room stays healthy: the other editor goes on and a newcomer sees it all
        add_field(calm, "claim", "fld_calm", "calm", type="string")
        async with YClient(url, ADMIN_TOKEN) as late:
            await asyncio.wait_for(late.synced.wait(), 5)
            await eventually(lambda: "calm" in field_names(late, "claim"))
    # reconnecting does not reset the budget: an offline change is refused and the client
    # gets the room's state instead of keeping a diverged copy silently
    again = YClient(url, ADMIN_TOKEN)
    again.doc.get("entities", type=Map)["ent_offline"] = Map(
        {"name": "offline", "pos": 50, "attrs": Map(), "fields": Map()}
    )
    async with again:
        await eventually(lambda: again.closed is not None)
        assert again.closed is not None and "CPU" in again.closed[1]
        assert "calm" in field_names(again, "claim")  # resynced with the room
    room = next(iter(served.platform.designer.rooms.values()))
    assert "offline" not in {e["name"] for e in room.doc.get("entities", type=Map).to_py().values()}


async def test_an_update_nesting_values_deeply_is_refused_before_it_can_crash_the_node(
    served: Served, http: httpx.AsyncClient
) -> None:
    # pycrdt's decoder recurses: ~60 KB of arrays nested 30 000 deep overflow the native
    # stack and kill the process. Such an update closes only its own connection.
    from pycrdt import write_var_uint as v

    await setup_app(http)
    url = served.sync_url("acme", "claims")
    nested = b"\x75\x01" * 30_000 + b"\x7e"
    item = bytes([8 | 0x20]) + v(1) + v(8) + b"entities" + v(1) + b"k" + v(1) + nested
    update = v(1) + v(1) + v(424242) + v(0) + item + b"\x00"
    async with YClient(url, ADMIN_TOKEN) as bad, YClient(url, ADMIN_TOKEN) as good:
        await asyncio.wait_for(bad.synced.wait(), 5)
        await asyncio.wait_for(good.synced.wait(), 5)
        await bad.send_raw(p.sync_message(p.UPDATE, update))
        await eventually(lambda: bad.closed is not None)
        assert bad.closed is not None and bad.closed[0] == 4400 and "nests" in bad.closed[1]
        add_field(good, "claim", "fld_alive", "alive", type="string")
        async with YClient(url, ADMIN_TOKEN) as late:
            await asyncio.wait_for(late.synced.wait(), 5)
            await eventually(lambda: "alive" in field_names(late, "claim"))


async def test_a_client_that_stops_reading_neither_stalls_the_room_nor_keeps_its_backlog(
    served: Served, http: httpx.AsyncClient
) -> None:
    """Fan-out queues per connection: a reader whose socket never drains is closed once its
    backlog passes the limit, and the others' edits keep flowing meanwhile."""
    from plinth.designer.service import SLOW, Connection

    await setup_app(http)
    service = served.platform.designer
    url = served.sync_url("acme", "claims")
    async with YClient(url, ADMIN_TOKEN) as a, YClient(url, ADMIN_TOKEN) as b:
        await asyncio.wait_for(a.synced.wait(), 5)
        await asyncio.wait_for(b.synced.wait(), 5)
        room = next(iter(service.rooms.values()))
        never = asyncio.Event()
        closed: list[int] = []

        async def stuck_send(_: bytes) -> None:
            await never.wait()  # a socket whose reader went away without closing

        async def close(code: int, _reason: str) -> None:
            closed.append(code)

        principal = next(iter(room.conns)).principal
        stuck = Connection(principal, True, stuck_send, close)
        await service.join(room, stuck)
        stuck.max_queue_bytes = 4000
        for i in range(30):
            add_field(a, "claim", f"fld_s{i}", f"slow{i}", label="x" * 200, type="string")
            await asyncio.sleep(0.01)
        await eventually(lambda: {f"slow{i}" for i in range(30)} <= field_names(b, "claim"), 5)
        await eventually(lambda: closed == [SLOW], 5)
        assert stuck.closed and not stuck.queue
        await room.leave(stuck)
