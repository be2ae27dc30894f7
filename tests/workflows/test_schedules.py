"""Schedule start events: cron (with a time zone) and `every`, checked at publish, fired once
per due time across workers, next firing kept across restarts."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from plinth.db import Database
from plinth.errors import ValidationFailed
from plinth.events import EventBus
from plinth.workflows import schedule, store
from plinth.workflows.engine import Engine
from tests.workflows.conftest import ADMIN, Harness

NODES = {"a": {"type": "assign", "set": {"ok": "true"}, "next": "e"}, "e": {"type": "end"}}


def scheduled(**start: Any) -> dict[str, Any]:
    return {
        "first": "a",
        "start": [{"type": "manual"}, {"type": "schedule", **start}],
        "nodes": NODES,
    }


def test_cron_next_firing_follows_the_time_zone_across_dst() -> None:
    paris = ZoneInfo("Europe/Paris")
    friday_noon = datetime(2026, 3, 27, 12, 0, tzinfo=paris).timestamp()
    spec = {"cron": "0 6 * * MON-FRI", "timezone": "Europe/Paris"}
    monday = schedule.next_fire(spec, friday_noon)
    # The clocks go forward on Sunday 29 March: Monday's firing is still 06:00 in Paris.
    assert datetime.fromtimestamp(monday, paris) == datetime(2026, 3, 30, 6, 0, tzinfo=paris)
    tuesday = schedule.next_fire(spec, monday)
    assert tuesday - monday == 86400
    utc = schedule.next_fire({"cron": "30 * * * *"}, 0.0)  # no time zone: UTC
    assert utc == 1800.0
    assert schedule.next_fire({"every": 5.0}, 100.0) == 105.0


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_publish_refuses_bad_schedules_with_paths(wf: Harness) -> None:
    with pytest.raises(ValidationFailed) as err:
        await wf.publish(
            {
                "bad_cron": scheduled(cron="0 25 * * MON-FRI"),
                "six_fields": scheduled(cron="0 0 6 * * MON"),
                "bad_zone": scheduled(cron="0 6 * * *", timezone="Mars/Olympus"),
                "both": scheduled(cron="0 6 * * *", every=60),
                "neither": scheduled(),
                "zone_no_cron": scheduled(every=60, timezone="Europe/Paris"),
            }
        )
    faults = {f.path: f for f in err.value.faults}
    assert faults["workflows.bad_cron.start[1].cron"].code == "cron"
    assert "0 25 * * MON-FRI" in faults["workflows.bad_cron.start[1].cron"].message
    assert "five" in faults["workflows.six_fields.start[1].cron"].message
    assert faults["workflows.bad_zone.start[1].timezone"].code == "unknown_timezone"
    assert faults["workflows.both.start[1].every"].code == "conflict"
    assert faults["workflows.neither.start[1].cron"].code == "required"
    assert faults["workflows.zone_no_cron.start[1].timezone"].code == "conflict"


async def _schedule_row(wf: Harness) -> Any:
    async with wf.platform.db.read() as conn:
        return (await conn.execute(sa.select(store.schedules))).one()


async def test_cron_fires_once_per_due_time_across_workers(wf: Harness) -> None:
    await wf.publish({"nightly": scheduled(cron="0 6 * * MON-FRI", timezone="Europe/Paris")})
    row = await _schedule_row(wf)
    now = datetime.now(ZoneInfo("Europe/Paris"))
    first = datetime.fromtimestamp(row.next_at, ZoneInfo("Europe/Paris"))
    assert (first.hour, first.minute) == (6, 0) and first.weekday() < 5 and first > now
    # Re-publishing (a restart re-syncs too) keeps the stored next firing.
    await wf.publish(
        {
            "nightly": scheduled(cron="0 6 * * MON-FRI", timezone="Europe/Paris"),
            "other": scheduled(every=3600),
        }
    )
    async with wf.platform.db.read() as conn:
        kept = (
            await conn.execute(
                sa.select(store.schedules.c.next_at).where(store.schedules.c.workflow == "nightly")
            )
        ).scalar()
    assert kept == row.next_at

    # The firing comes due; two workers (own connection pools) race for it.
    due = row.next_at - 7 * 86400
    async with wf.platform.db.transaction() as conn:
        await conn.execute(
            store.schedules.update()
            .where(store.schedules.c.workflow == "nightly")
            .values(next_at=due)
        )
    other_db = Database(wf.platform.db.url)
    other = Engine(other_db, EventBus(), wf.platform)
    try:
        engines = [wf.platform.workflows.engine, other] * 3
        counts = await asyncio.gather(*(e.tick_schedules() for e in engines))
    finally:
        await other_db.dispose()
    assert sum(counts) == 1
    [inst] = await wf.platform.workflows.instances(wf.tenant, ADMIN, workflow="nightly")
    assert inst["started_by"] == "schedule"
    async with wf.platform.db.read() as conn:
        moved = (
            await conn.execute(
                sa.select(store.schedules.c.next_at).where(store.schedules.c.workflow == "nightly")
            )
        ).scalar()
    # Missed firings collapse into that one; the next is the coming weekday 06:00 again.
    assert moved == row.next_at
    await wf.drain()
    got = await wf.get(inst["id"])
    assert got["status"] == "completed" and got["vars"]["scheduled_at"] == due
