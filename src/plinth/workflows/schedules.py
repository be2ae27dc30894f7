"""The schedule table: the `schedule` start events of each app's active version, each with
its next firing (computed by `schedule.py`), and the tick that starts the due ones."""

from __future__ import annotations

import logging
import time
from typing import Any

import sqlalchemy as sa

from plinth.db import Query
from plinth.events import Event
from plinth.workflows import schedule, store
from plinth.workflows.starts import Starts

log = logging.getLogger("plinth.workflows")

# Whether any schedule is due at `now` (`Engine.tick_schedules`).
_ANY_DUE = Query(
    sa.select(store.schedules.c.id)
    .where(store.schedules.c.next_at <= sa.bindparam("now", type_=sa.Float))
    .limit(1)
)


class Schedules(Starts):
    """Keep the schedule table in step with the apps, and start what falls due."""

    async def sync_schedules(self, tenant: Any, app: str) -> None:
        """Make the schedule table match the active version's `schedule` start events.

        A schedule whose spec is unchanged keeps its stored next firing (durable across
        restarts and re-publishes); a new or changed one is due at its next firing from now.
        """
        version = await self.services.metadata.active_version(tenant, app)
        wanted: dict[str, tuple[str, dict[str, Any]]] = {}
        for name, doc in (version.definition if version else {}).get("workflows", {}).items():
            for i, start in enumerate(doc.get("start", [])):
                if start["type"] == "schedule" and (start.get("every") or start.get("cron")):
                    spec = {
                        "every": float(start["every"]) if start.get("every") else None,
                        "cron": start.get("cron"),
                        "timezone": start.get("timezone"),
                    }
                    wanted[f"{tenant.id}:{app}:{name}:{i}"] = (name, spec)
        sc = store.schedules
        now = time.time()
        async with self.db.transaction() as conn:
            have = {
                r.id: r
                for r in await conn.execute(
                    sa.select(sc).where(sc.c.tenant_id == tenant.id, sc.c.app == app)
                )
            }
            for key in have.keys() - wanted.keys():
                await conn.execute(sc.delete().where(sc.c.id == key))
            for key, (name, spec) in wanted.items():
                row = have.get(key)
                if row is None:
                    await conn.execute(
                        sc.insert().values(
                            id=key,
                            tenant_id=tenant.id,
                            app=app,
                            workflow=name,
                            next_at=schedule.next_fire(spec, now),
                            **spec,
                        )
                    )
                elif (row.every, row.cron, row.timezone, row.workflow) != (
                    spec["every"],
                    spec["cron"],
                    spec["timezone"],
                    name,
                ):
                    await conn.execute(
                        sc.update()
                        .where(sc.c.id == key)
                        .values(workflow=name, next_at=schedule.next_fire(spec, now), **spec)
                    )

    async def tick_schedules(self) -> int:
        """Start every scheduled workflow that is due; returns how many started.

        Each firing starts exactly one instance across all workers: the schedule row is locked
        (`FOR UPDATE SKIP LOCKED` on PostgreSQL, `BEGIN IMMEDIATE` on SQLite), moved on to its
        next firing and the instance created in the same transaction, so a crash loses or
        doubles nothing. Firings missed while no worker ran collapse into one.
        """
        sc = store.schedules
        now = time.time()
        # Most ticks find nothing due: one prebuilt read says so, without a write transaction
        # (on SQLite the platform file's write lock) or SQL compiled each second.
        if not await self.db.fetch(_ANY_DUE, {"now": now}):
            return 0
        query = sa.select(sc).where(sc.c.next_at <= now).order_by(sc.c.next_at).limit(20)
        if self.db.dialect == "postgresql":
            query = query.with_for_update(skip_locked=True)
        started: list[Event] = []
        async with self.db.transaction() as conn:
            for row in list(await conn.execute(query)):
                spec = {"every": row.every, "cron": row.cron, "timezone": row.timezone}
                following = schedule.next_fire(spec, row.next_at)
                if following <= now:  # missed firings (no worker ran) collapse into this one
                    following = schedule.next_fire(spec, now)
                await conn.execute(sc.update().where(sc.c.id == row.id).values(next_at=following))
                tenant = await self._tenant(row.tenant_id)
                try:
                    number, doc = await self.workflow_at(tenant, row.app, row.workflow)
                except Exception:  # the app lost its version: skip this firing, keep the rest
                    log.exception("scheduled start of %s/%s failed", row.app, row.workflow)
                    continue
                instance = await self._create(
                    conn,
                    row.tenant_id,
                    row.app,
                    row.workflow,
                    number,
                    doc,
                    {"scheduled_at": row.next_at, "via": "schedule"},
                    "schedule",
                    None,
                    None,
                )
                started.append(
                    Event(
                        "workflow.started",
                        row.tenant_id,
                        {
                            "app": row.app,
                            "workflow": row.workflow,
                            "instance": instance["id"],
                            "version": number,
                            "by": "schedule",
                        },
                    )
                )
            events = await self.take_effect(conn, started)
        self._effects_committed()
        for event in events:
            await self.events.publish(event)
        return len(started)
