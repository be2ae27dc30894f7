"""The runtime's publish steps: `compile` and `migrate` (phases of metadata/publish.py).

Atomicity. On PostgreSQL a tenant's schema lives in the platform database, so the DDL runs on
the publish transaction itself: one commit or nothing. On SQLite a tenant's data is its own
file (and a tenant homed in another region has its own database), so `migrate` opens a write
transaction there, applies the whole plan, and keeps it open;
it commits only in the publish's `after_commit` hook (after the version row is committed) and
rolls back in `after_rollback`. Everything that can fail (planning, refusals, conversions, the
DDL itself) fails before the platform commit; what remains after it is a local COMMIT.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import AsyncExitStack
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from plinth.errors import Fault, ValidationFailed
from plinth.events import Event, EventBus
from plinth.governance.compliance.keys import PREFIX as SEALED
from plinth.metadata.publish import PublishContext, StepResult
from plinth.runtime import migrate, plan, tables
from plinth.runtime.compiled import Registry, compile_app
from plinth.runtime.storage import TenantStorage
from plinth.tenancy.models import Tenant

MAX_TABLE_NAME = 63
ABANDON_AFTER_S = 120.0


class SealOpener(Protocol):
    """Opens a sealed (encrypted) stored value: compliance's record guard."""

    async def open_value(
        self, tenant: Tenant, app: str, entity_id: str, field_id: str, record_id: str, value: str
    ) -> Any: ...


class Runtime(Protocol):
    """What the steps use of the runtime's record service."""

    storage: TenantStorage
    registry: Registry
    events: EventBus
    guard: SealOpener | None


class CompileStep:
    """Compile every entity of the version; a bad CEL expression fails here, with its path."""

    name = "compile"

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    async def run(self, ctx: PublishContext, result: StepResult) -> None:
        too_long = [
            Fault(
                f"entities.{n}",
                f"the table name {tables.table_name(ctx.app.slug, n)!r}"
                f" is longer than {MAX_TABLE_NAME} characters; shorten the name",
            )
            for n in ctx.definition.get("entities", {})
            if len(tables.table_name(ctx.app.slug, n)) > MAX_TABLE_NAME
        ]
        if too_long:
            raise ValidationFailed.of(too_long, "app definition")
        compiled = compile_app(ctx.tenant.id, ctx.app.slug, ctx.number, ctx.definition)
        ctx.state["runtime.compiled"] = compiled
        result.info(f"compiled {len(compiled.entities)} entities")


class MigrateStep:
    """Plan the table changes from the active version by stable ids and apply them."""

    name = "migrate"

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    async def run(self, ctx: PublishContext, result: StepResult) -> None:
        service = self.runtime
        compiled = ctx.state["runtime.compiled"]
        ops = plan.plan(ctx.previous_definition, ctx.definition)
        allow = bool(ctx.options.get("allow_destructive"))
        schema = service.storage.schema(ctx.tenant)

        def apply(opened: migrate.Opened) -> Callable[[sa.Connection], list[str]]:
            return lambda c: migrate.apply(
                c, ops, ctx.app.slug, ctx.previous_definition, ctx.definition, schema, allow, opened
            )

        if service.storage.shares_platform_db(ctx.tenant):
            if ops:
                opened = await _open_sealed(ctx, service, ctx.conn, ops)
                done = await ctx.conn.run_sync(apply(opened))
            else:
                done = []
        else:
            done = await self._apply_in_tenant_file(ctx, service, ops, apply)
        for line in done:
            result.info(line)
        destroyed = [op.describe() for op in plan.destructive(ops)]
        for line in destroyed:
            result.warn(f"entities.{line}", f"destructive change allowed: {line}", "destructive")
        registry = service.registry

        async def activate() -> None:
            registry.put(compiled)
            if destroyed:
                # Audited: governance's ledger subscribes to runtime.* events.
                await service.events.publish(
                    Event(
                        "runtime.destructive_change",
                        ctx.tenant.id,
                        {
                            "app": ctx.app.slug,
                            "version": ctx.number,
                            "reason": ctx.reason,
                            "changes": destroyed,
                            "by": ctx.principal.audit_name() if ctx.principal else None,
                        },
                    )
                )

        ctx.after_commit.append(activate)

    @staticmethod
    async def _apply_in_tenant_file(
        ctx: PublishContext,
        service: Runtime,
        ops: list[plan.Op],
        apply: Callable[[migrate.Opened], Callable[[sa.Connection], list[str]]],
    ) -> list[str]:
        if not ops:
            return []
        db = service.storage.database(ctx.tenant)
        turn = AsyncExitStack()  # this process's writers of the file wait until it commits
        await turn.enter_async_context(db.writer())
        conn: AsyncConnection | None = None
        try:
            conn = await db.engine.connect()
            txn = await conn.begin()
            opened = await _open_sealed(ctx, service, conn, ops)
            done: list[str] = await conn.run_sync(apply(opened))
        except BaseException:
            # Failed or cancelled (a request past its deadline) at any step: the file's
            # writers get their turn back at once (the close below may wait for a BEGIN still
            # inside SQLite's busy handler), and the transaction rolls back with its connection.
            await turn.aclose()
            if conn is not None:
                await conn.close()
            raise

        async def commit() -> None:
            watchdog.cancel()
            try:
                await txn.commit()
            finally:
                await conn.close()
                await turn.aclose()

        async def rollback() -> None:
            try:
                if txn.is_active:
                    await txn.rollback()
            finally:
                await conn.close()
                await turn.aclose()

        async def undo() -> None:
            watchdog.cancel()
            await rollback()

        async def abandon() -> None:
            # If the platform commit itself fails, neither hook runs: do not hold the tenant
            # file's write lock (and its uncommitted DDL) forever.
            await asyncio.sleep(ABANDON_AFTER_S)
            if not conn.closed:
                await rollback()

        watchdog = asyncio.get_running_loop().create_task(abandon())

        # commit goes first among after_commit hooks, so the swap sees the new tables
        ctx.after_commit.insert(0, commit)
        ctx.after_rollback.append(undo)
        return done


async def _open_sealed(
    ctx: PublishContext, service: Runtime, conn: AsyncConnection, ops: list[plan.Op]
) -> migrate.Opened:
    """The plaintext of every sealed value in fields this version stops encrypting, read on
    the migration's own transaction (so no write slips between reading and rebuilding). A value
    whose subject's key was destroyed opens as null: crypto-shredded stays shredded."""
    opened: migrate.Opened = {}
    guard = service.guard
    if guard is None:
        return opened
    schema = service.storage.schema(ctx.tenant)
    old_entities = ctx.previous_definition.get("entities", {})
    for op in ops:
        if op.kind != "alter_column" or not plan.decrypts(op.old_spec, op.spec):
            continue
        doc = ctx.definition["entities"][op.entity]
        old_name = next(
            (n for n, d in old_entities.items() if d.get("id", n) == doc.get("id", op.entity)),
            op.entity,
        )
        old_field = next(
            (
                n
                for n, f in old_entities.get(old_name, {}).get("fields", {}).items()
                if f.get("id", n) == op.spec.get("id", op.field)
            ),
            op.field,
        )
        # The table and column carry the old names until this migration renames them.
        t = sa.table(
            tables.table_name(ctx.app.slug, old_name),
            sa.column("id"),
            sa.column(old_field),
            schema=schema,
        )
        rows = await conn.execute(
            sa.select(t.c.id, t.c[old_field]).where(t.c[old_field].startswith(SEALED))
        )
        values: dict[str, Any] = {}
        for row_id, value in rows:
            values[str(row_id)] = await guard.open_value(
                ctx.tenant,
                ctx.app.slug,
                str(doc.get("id", op.entity)),
                str(op.spec.get("id", op.field)),
                str(row_id),
                value,
            )
        opened[(op.entity, op.field)] = values
    return opened
