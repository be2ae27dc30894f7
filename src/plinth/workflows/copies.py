"""The workflow engine's copy sites in the data inventory, and their erasure.

Instances keep the triggering record and their variables, steps their inputs and outputs (and
the remembered result of each side effect), tasks the form data people entered. Record values
arrive there as copies (`RecordService.copy_of`: encrypted fields sealed, masked ones masked);
erasure and retention replace the erased records' values wherever they occur in them.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from plinth.db import Database
from plinth.governance.compliance.inventory import CopySite, Erasure, scrub
from plinth.workflows import store

BATCH = 500


class WorkflowCopies:
    def __init__(self, db: Database) -> None:
        self.db = db

    def sites(self) -> list[CopySite]:
        return [
            CopySite(
                "workflows.instance_vars",
                "wf_instances.vars, wf_instances.record",
                "the triggering record and the instance's variables",
                encrypted="sealed",
                masked="masked",
                erase=self.erase_instances,
                how="erased values replaced in the variables and record of the app's instances",
            ),
            CopySite(
                "workflows.step_io",
                "wf_steps.input, wf_steps.output, wf_effects.result, wf_jobs.signal",
                "what each step was given and produced (records written, plugin and "
                "connector results)",
                encrypted="sealed",
                masked="masked",
                erase=self.erase_steps,
                how="erased values replaced in the inputs, outputs and remembered effects",
            ),
            CopySite(
                "workflows.task_data",
                "wf_tasks.data, wf_tasks.comment",
                "what people entered in task forms and comments",
                # A form cannot hold an encrypted or masked field (checked at publish).
                encrypted="redacted",
                masked="redacted",
                erase=self.erase_tasks,
                how="erased values replaced in task data and comments",
            ),
        ]

    async def _instance_ids(self, erasure: Erasure) -> list[str]:
        i = store.instances
        async with self.db.read() as conn:
            return list(
                (
                    await conn.execute(
                        sa.select(i.c.id).where(
                            i.c.tenant_id == erasure.tenant.id, i.c.app == erasure.app
                        )
                    )
                ).scalars()
            )

    async def erase_instances(self, erasure: Erasure) -> int:
        pattern = erasure.pattern()
        if pattern is None:
            return 0
        i = store.instances
        changed = 0
        ids = await self._instance_ids(erasure)
        for k in range(0, len(ids), BATCH):
            async with self.db.transaction() as conn:
                rows = await conn.execute(
                    sa.select(i.c.id, i.c.vars, i.c.record, i.c.business_key).where(
                        i.c.id.in_(ids[k : k + BATCH])
                    )
                )
                for row in rows.all():
                    values = {
                        "vars": row.vars,
                        "record": row.record,
                        "business_key": row.business_key,
                    }
                    new, hit = scrub(values, pattern)
                    if hit:
                        await conn.execute(i.update().where(i.c.id == row.id).values(**new))
                        changed += 1
        return changed

    async def erase_steps(self, erasure: Erasure) -> int:
        pattern = erasure.pattern()
        if pattern is None:
            return 0
        s, e, j = store.steps, store.effects, store.jobs
        changed = 0
        ids = await self._instance_ids(erasure)
        for k in range(0, len(ids), BATCH):
            chunk = ids[k : k + BATCH]
            async with self.db.transaction() as conn:
                for row in (
                    await conn.execute(
                        sa.select(s.c.id, s.c.input, s.c.output, s.c.error).where(
                            s.c.instance_id.in_(chunk)
                        )
                    )
                ).all():
                    new, hit = scrub(
                        {"input": row.input, "output": row.output, "error": row.error}, pattern
                    )
                    if hit:
                        await conn.execute(s.update().where(s.c.id == row.id).values(**new))
                        changed += 1
                for effect in (
                    await conn.execute(
                        sa.select(e.c.key, e.c.result).where(
                            sa.or_(*(e.c.key.startswith(f"{iid}:") for iid in chunk))
                        )
                    )
                ).all():
                    new_result, hit = scrub(effect.result, pattern)
                    if hit:
                        await conn.execute(
                            e.update().where(e.c.key == effect.key).values(result=new_result)
                        )
                        changed += 1
                for job in (
                    await conn.execute(
                        sa.select(j.c.id, j.c.signal).where(j.c.instance_id.in_(chunk))
                    )
                ).all():
                    new_signal, hit = scrub(job.signal, pattern)
                    if hit:
                        await conn.execute(
                            j.update().where(j.c.id == job.id).values(signal=new_signal)
                        )
                        changed += 1
        return changed

    async def erase_tasks(self, erasure: Erasure) -> int:
        pattern = erasure.pattern()
        if pattern is None:
            return 0
        t = store.tasks
        changed = 0
        ids = await self._instance_ids(erasure)
        for k in range(0, len(ids), BATCH):
            async with self.db.transaction() as conn:
                rows = await conn.execute(
                    sa.select(t.c.id, t.c.data, t.c.comment, t.c.title).where(
                        t.c.instance_id.in_(ids[k : k + BATCH])
                    )
                )
                for row in rows.all():
                    values: dict[str, Any] = {
                        "data": row.data,
                        "comment": row.comment,
                        "title": row.title,
                    }
                    new, hit = scrub(values, pattern)
                    if hit:
                        await conn.execute(t.update().where(t.c.id == row.id).values(**new))
                        changed += 1
        return changed
