"""System operations on records for compliance: find a subject's records, expire, erase.

No principal: the compliance service authorizes the request (subject rights, retention runs)
and audits it as a whole. Each operation is one transaction per entity, decrypts what it
returns (the guard's `open`) and never masks (an export is the subject's own data).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

import sqlalchemy as sa

from plinth.db import utcnow
from plinth.governance.compliance.keys import PREFIX as SEALED
from plinth.runtime import records
from plinth.runtime.compiled import CompiledApp, CompiledEntity
from plinth.runtime.storage import TenantStorage
from plinth.tenancy.models import Tenant


class Records(Protocol):
    """What maintenance uses of the runtime's record service (which builds it)."""

    storage: TenantStorage
    guard: Any  # compliance's RecordGuard, when enforcement is attached

    async def compiled(self, tenant: Tenant, app_slug: str) -> CompiledApp: ...

    async def entity(
        self, tenant: Tenant, app_slug: str, name: str
    ) -> tuple[CompiledApp, CompiledEntity]: ...

    async def _open(
        self, tenant: Tenant, ent: CompiledEntity, record: dict[str, Any]
    ) -> dict[str, Any]: ...


BATCH = 500


class Maintenance:
    def __init__(self, service: Records) -> None:
        self.service = service

    async def entities(self, tenant: Tenant, app: str) -> dict[str, CompiledEntity]:
        """The compiled entities of an app's active version."""
        return (await self.service.compiled(tenant, app)).entities

    async def find(
        self, tenant: Tenant, app: str, entity: str, field: str, values: list[Any]
    ) -> list[dict[str, Any]]:
        """Every record whose `field` is one of `values`, decrypted."""
        _, ent = await self.service.entity(tenant, app, entity)
        if not values:
            return []
        t = ent.table
        out: list[dict[str, Any]] = []
        async with self.service.storage.database(tenant).read() as conn:
            for i in range(0, len(values), BATCH):
                chunk = values[i : i + BATCH]
                rows = await conn.execute(
                    sa.select(t).where(t.c[field].in_(chunk)).order_by(t.c.created_at, t.c.id)
                )
                out += [records.to_record(ent, r) for r in rows]
        for rec in out:
            await self.service._open(tenant, ent, rec)
        return out

    async def remove(
        self,
        tenant: Tenant,
        app: str,
        entity: str,
        ids: list[str],
        action: str,
        fields: tuple[str, ...],
        by: str,
    ) -> dict[str, int]:
        """Delete (or anonymise: empty `fields`) these records. A record still referred to by
        a record of another entity is anonymised instead of deleted."""
        app_c = await self.service.compiled(tenant, app)
        ent = app_c.entities[entity]
        t = ent.table
        done = {"deleted": 0, "anonymised": 0}
        if not ids:
            return done
        async with self.service.storage.database(tenant).transaction() as conn:
            keep: set[str] = set()
            if action == "delete":
                for other in app_c.entities.values():
                    for name, target in other.references.items():
                        if target == entity:
                            ot = other.table
                            keep |= set(
                                (
                                    await conn.execute(
                                        sa.select(ot.c[name]).where(ot.c[name].in_(ids))
                                    )
                                ).scalars()
                            )
                gone = [i for i in ids if i not in keep]
                for k in range(0, len(gone), BATCH):
                    result = await conn.execute(t.delete().where(t.c.id.in_(gone[k : k + BATCH])))
                    done["deleted"] += int(result.rowcount or 0)
            blank = [i for i in ids if action != "delete" or i in keep]
            if blank and fields:
                for k in range(0, len(blank), BATCH):
                    result = await conn.execute(
                        t.update()
                        .where(t.c.id.in_(blank[k : k + BATCH]))
                        .values(
                            {
                                **{f: None for f in fields},
                                "version": t.c.version + 1,
                                "updated_at": utcnow(),
                                "updated_by": by,
                            }
                        )
                    )
                    done["anonymised"] += int(result.rowcount or 0)
        return done

    async def seal_stored(self, tenant: Tenant, app: str) -> int:
        """Seal values still stored in clear in fields that are now encrypted (a field made
        `encrypted` by a later version, e.g. by `plinth compliance fix`). Returns how many
        records were sealed."""
        guard = self.service.guard
        if guard is None:
            return 0
        count = 0
        for ent in (await self.service.compiled(tenant, app)).entities.values():
            names = ent.protection.encrypt
            if not names:
                continue
            t = ent.table
            clear = sa.or_(
                *(sa.and_(t.c[f].is_not(None), sa.not_(t.c[f].startswith(SEALED))) for f in names)
            )
            async with self.service.storage.database(tenant).transaction() as conn:
                rows = [dict(r._mapping) for r in await conn.execute(sa.select(t).where(clear))]
                for row in await guard.encrypt(tenant, app, ent, rows, stored=True):
                    await conn.execute(
                        t.update().where(t.c.id == row["id"]).values({f: row[f] for f in names})
                    )
            count += len(rows)
        return count

    async def expired(
        self,
        tenant: Tenant,
        app: str,
        entity: str,
        column: str,
        cutoff: datetime,
        fields: tuple[str, ...],
    ) -> list[str]:
        """Ids of records whose `column` is before `cutoff` and that still hold any of
        `fields` (an anonymised record is not anonymised again)."""
        _, ent = await self.service.entity(tenant, app, entity)
        t = ent.table
        col = t.c[column]
        if ent.fields.get(column, {}).get("type") == "date":
            cutoff_value: Any = cutoff.date()
        else:
            cutoff_value = cutoff
        query = sa.select(t.c.id).where(col < cutoff_value)
        if fields:
            query = query.where(sa.or_(*(t.c[f].is_not(None) for f in fields)))
        async with self.service.storage.database(tenant).read() as conn:
            return list((await conn.execute(query.order_by(t.c.id))).scalars())
