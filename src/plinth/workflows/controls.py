"""The controls that move a workflow instance from outside, a person's or the API's: cancel,
suspend, resume and retry from the failed step. Each commits with its `workflow.<action>`
event's effects (the ledger's entry, webhook deliveries), and a cancel ends the instance as a
step's end would (`Advance._ended`)."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from plinth.errors import NotFound, PreconditionFailed
from plinth.events import Event
from plinth.workflows import store
from plinth.workflows.advance import ENDED, Advance
from plinth.workflows.starts import Pending


class Controls(Advance):
    async def set_status(
        self, tenant_id: str, instance_id: str, action: str, by: str | None = None
    ) -> dict[str, Any]:
        """cancel | suspend | resume | retry (from the failed step), by `by`: its
        `workflow.<action>` event's effects (the ledger's entry) commit with it."""
        now = time.time()
        out = Pending()
        async with self.db.transaction() as conn:
            inst = await self._instance(conn, tenant_id, instance_id, lock=True)
            status = inst["status"]
            i = store.instances.update().where(store.instances.c.id == instance_id)
            if action == "cancel":
                if status in ENDED:
                    raise PreconditionFailed(f"the instance is already {status}", path="status")
                await conn.execute(i.values(status="cancelled", ended_at=now))
                await self._ended(conn, inst, "cancelled", inst["vars"], now, out)
            elif action == "suspend":
                if status != "running":
                    raise PreconditionFailed(
                        f"only a running instance can be suspended (it is {status})", path="status"
                    )
                await conn.execute(i.values(status="suspended"))
            elif action == "resume":
                if status != "suspended":
                    raise PreconditionFailed(
                        f"the instance is {status}, not suspended", path="status"
                    )
                await conn.execute(i.values(status="running"))
            elif action == "retry":
                if status != "failed":
                    raise PreconditionFailed(
                        f"only a failed instance can be retried (it is {status})", path="status"
                    )
                s = store.steps
                failed = (
                    (
                        await conn.execute(
                            s.select()
                            .where(s.c.instance_id == instance_id, s.c.status == "failed")
                            .order_by(s.c.started_at.desc())
                            .limit(1)
                        )
                    )
                    .mappings()
                    .first()
                )
                if failed is None:
                    raise PreconditionFailed("no failed step to retry", path="status")
                await conn.execute(
                    s.update()
                    .where(s.c.id == failed["id"])
                    .values(status="retrying", attempt=1, ended_at=None)
                )
                await self._queue(conn, instance_id, failed["id"], "run", None, now)
                await conn.execute(i.values(status="running", ended_at=None))
            inst = await self._instance(conn, tenant_id, instance_id)
            about = {"app": inst["app"], "workflow": inst["workflow"], "instance": instance_id}
            done = Event(f"workflow.{action}", tenant_id, {**about, "by": by})
            events = await self.take_effect_now(conn, [*out.events, done])
        self._effects_committed()
        for event in events:
            await self.events.publish(event)
        return inst

    @staticmethod
    async def _instance(
        conn: AsyncConnection, tenant_id: str, instance_id: str, lock: bool = False
    ) -> dict[str, Any]:
        query = store.instances.select().where(
            store.instances.c.id == instance_id, store.instances.c.tenant_id == tenant_id
        )
        if lock and conn.dialect.name == "postgresql":
            query = query.with_for_update()
        row = (await conn.execute(query)).mappings().first()
        if row is None:
            raise NotFound(f"No workflow instance {instance_id!r}", path="instance")
        return dict(row)
