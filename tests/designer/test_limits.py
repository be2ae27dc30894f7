"""Per-connection rate limit, and compaction that keeps the room and its history whole."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta

import httpx
import sqlalchemy as sa
from pycrdt import Doc, Map

from plinth.db import utcnow
from plinth.designer import protocol as p
from plinth.designer import store
from plinth.designer.service import Room, compact_app
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


def field_updates(room: Room, count: int) -> list[bytes]:
    """`count` updates to the room's document, each adding a field `x<i>`, in order."""
    doc: Doc = Doc()
    doc.apply_update(room.doc.get_update())
    entities = doc.get("entities", type=Map)
    fields = entities[next(iter(entities))]["fields"]
    made = []
    for i in range(count):
        before = doc.get_state()
        fields[f"fld_x{i}"] = Map({"name": f"x{i}", "pos": 99})
        made.append(doc.get_update(before))
    return made


async def log_rows(served: Served, room: Room, rows: list[tuple[bytes, datetime]]) -> None:
    async with served.platform.db.transaction() as conn:
        for update, at in rows:
            await store.append(conn, room.tenant.id, room.app_id, update, "test", [], at)


async def test_compaction_stops_at_an_update_too_young_to_fold(
    served: Served, http: httpx.AsyncClient
) -> None:
    """A log row stamped after one with a higher id is not folded past (folding drops the
    data of every row up to the last one folded), so the log still holds every update."""
    await setup_app(http)
    async with YClient(served.sync_url("acme", "claims"), ADMIN_TOKEN) as a:
        await asyncio.wait_for(a.synced.wait(), 5)
        room = next(iter(served.platform.designer.rooms.values()))
        await room.flush()
    old, young = utcnow() - timedelta(seconds=10), utcnow()
    one, two, three = field_updates(room, 3)
    await log_rows(served, room, [(one, old), (two, young), (three, old)])
    assert await compact_app(served.platform.db, room.tenant.id, room.app_id, min_age=2) >= 1
    async with served.platform.db.read() as conn:
        snapshot, rows = await store.load(conn, room.app_id)
    logged: Doc = Doc()
    for update in [snapshot or b"\x00\x00"] + [data for _, data in rows]:
        logged.apply_update(update)
    fields = [e["fields"] for e in logged.get("entities", type=Map).to_py().values()]
    assert {"x0", "x1", "x2"} <= {f["name"] for each in fields for f in each.values()}


async def test_compaction_lets_the_room_go_on_while_it_folds(
    served: Served, http: httpx.AsyncClient
) -> None:
    """Compacting 1,500 log rows hands the event loop back every few milliseconds of CPU, so a
    busy room's editors are not held up by its compaction."""
    await setup_app(http)
    service = served.platform.designer
    async with YClient(served.sync_url("acme", "claims"), ADMIN_TOKEN) as a:
        await asyncio.wait_for(a.synced.wait(), 5)
        room = next(iter(service.rooms.values()))
        old = utcnow() - timedelta(seconds=10)
        await log_rows(served, room, [(u, old) for u in field_updates(room, 1500)])
        longest = 0.0
        folding = asyncio.create_task(compact_app(served.platform.db, room.tenant.id, room.app_id))
        while not folding.done():
            started = time.thread_time()  # CPU time: a busy machine's preemption is not ours
            await asyncio.sleep(0)
            longest = max(longest, time.thread_time() - started)
        assert await folding >= 1500
        assert longest < 0.006  # folded at once: 8-10 ms
