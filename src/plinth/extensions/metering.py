"""Metering: a row and a `plugin.called` event per plugin call, written in batches off the
call path, and the per-tenant report of recent calls and totals."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import sqlalchemy as sa

from plinth.db import Database, utcnow
from plinth.events import Event
from plinth.extensions import store
from plinth.extensions.models import (
    Limits,
    PluginVersion,
)
from plinth.extensions.ports import Services
from plinth.governance.principal import Principal
from plinth.ids import new_id
from plinth.tenancy.models import Tenant

log = logging.getLogger("plinth.extensions")
METERING_LINGER = 0.5  # seconds a call's metering row may wait for others to share a batch
METERING_BATCH = 500  # rows per INSERT at most (a full batch is written at once)


class Metering:
    """Queue each call's metering row and event, write them in batches, report them."""

    platform: Services
    db: Database
    _metered: list[tuple[dict[str, Any], Event]]
    _metering: asyncio.Task[None] | None
    _metering_due: asyncio.Event
    _tenant: Callable[[Tenant | str], Awaitable[Tenant]]  # (`Installations`)

    async def _meter(
        self,
        t: Tenant,
        v: PluginVersion,
        point: str,
        target: str,
        outcome: str,
        fuel: int,
        wall_ms: float,
        peak_memory: int | None,
        limits: Limits,
        cold: bool,
        principal: Principal,
    ) -> None:
        """Queue the call's metering row and its `plugin.called` event for the next batch.

        Metering is batched off the call path: a call is answered without waiting for its row
        (the fuel budget, which refuses calls, is charged before). A batch takes the rows of
        METERING_LINGER seconds (fewer when METERING_BATCH fill first) and those queued while
        it is written go in the next one, each in one transaction; then their events are
        published (the audit ledger appends them). `metering` and `stop` flush first, so what
        they show is complete.
        """
        row = {
            "id": new_id(),
            "tenant_id": t.id,
            "plugin": v.name,
            "version": v.version,
            "point": point,
            "target": target,
            "outcome": outcome,
            "fuel": fuel,
            "wall_ms": wall_ms,
            "peak_memory": peak_memory,
            "memory_limit": limits.memory_bytes,
            "cold": cold,
            "at": utcnow(),
        }
        data = {
            "plugin": v.name,
            "version": v.version,
            "point": point,
            "target": target,
            "outcome": outcome,
            "fuel": fuel,
            "wall_ms": round(wall_ms, 3),
            "peak_memory": peak_memory,
            "memory_limit": limits.memory_bytes,
            "by": principal.audit_name(),
        }
        self._metered.append((row, Event("plugin.called", t.id, data)))
        if self._metering is None or self._metering.done():
            self._metering_due = asyncio.Event()
            self._metering = asyncio.get_running_loop().create_task(self._write_metering())
        if len(self._metered) >= METERING_BATCH:
            self._metering_due.set()

    async def _write_metering(self) -> None:
        # Calls in a row share a batch: the rows of the next METERING_LINGER seconds go with
        # this one (unless a batch fills first or a reader flushes), so a call costs the
        # database a row in a multi-row INSERT, not a transaction of its own.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._metering_due.wait(), METERING_LINGER)
        self._metering_due.clear()
        failures = 0
        while self._metered:
            batch = self._metered[:METERING_BATCH]
            self._metered = self._metered[METERING_BATCH:]
            try:
                async with self.db.transaction() as conn:
                    await conn.execute(store.plugin_calls.insert(), [row for row, _ in batch])
            except Exception:
                failures += 1
                if failures >= 5:  # the database is gone; the calls themselves are long done
                    log.error("dropping %d plugin metering rows", len(batch), exc_info=True)
                    continue
                log.warning("writing %d plugin metering rows failed", len(batch), exc_info=True)
                self._metered[:0] = batch
                await asyncio.sleep(0.2 * failures)
                continue
            failures = 0
            # Published together, so the audit ledger commits them as a group.
            await asyncio.gather(*(self._publish(event) for _, event in batch))

    async def _publish(self, event: Event) -> None:
        try:
            await self.platform.events.publish(event)
        except Exception:
            log.warning("publishing %s failed", event.topic, exc_info=True)

    async def flush_metering(self) -> None:
        """Wait until every call so far is metered and its event published."""
        while self._metering is not None and not self._metering.done():
            self._metering_due.set()
            await asyncio.shield(self._metering)

    async def metering(self, tenant: Tenant | str, limit: int = 100) -> dict[str, Any]:
        """Recent calls and per-plugin totals for a tenant."""
        t = await self._tenant(tenant)
        await self.flush_metering()
        c = store.plugin_calls
        async with self.db.read() as conn:
            rows = list(
                await conn.execute(
                    sa.select(c).where(c.c.tenant_id == t.id).order_by(c.c.at.desc()).limit(limit)
                )
            )
            totals = list(
                await conn.execute(
                    sa.select(
                        c.c.plugin,
                        sa.func.count().label("calls"),
                        sa.func.sum(c.c.fuel).label("fuel"),
                        sa.func.sum(c.c.wall_ms).label("wall_ms"),
                        sa.func.max(c.c.peak_memory).label("peak_memory"),
                    )
                    .where(c.c.tenant_id == t.id)
                    .group_by(c.c.plugin)
                    .order_by(c.c.plugin)
                )
            )
        return {
            "calls": [
                {
                    "plugin": r.plugin,
                    "version": r.version,
                    "point": r.point,
                    "target": r.target,
                    "outcome": r.outcome,
                    "fuel": r.fuel,
                    "wall_ms": r.wall_ms,
                    "peak_memory": r.peak_memory,
                    "memory_limit": r.memory_limit,
                    "cold": r.cold,
                    "at": r.at.isoformat(),
                }
                for r in rows
            ],
            "totals": [
                {
                    "plugin": r.plugin,
                    "calls": r.calls,
                    "fuel": int(r.fuel or 0),
                    "wall_ms": float(r.wall_ms or 0),
                    "max_peak_memory": r.peak_memory,
                }
                for r in totals
            ],
        }
