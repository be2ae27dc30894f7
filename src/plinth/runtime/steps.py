"""The runtime's publish steps: `compile` (400) and `migrate` (500).

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
from typing import TYPE_CHECKING, Any

from plinth.errors import Fault, ValidationFailed
from plinth.events import Event
from plinth.metadata import pipeline
from plinth.metadata.pipeline import PublishContext, StepResult
from plinth.runtime import migrate, plan, tables
from plinth.runtime.compiled import compile_app

if TYPE_CHECKING:
    from plinth.runtime.service import RecordService

# The publish pipeline is process-global; each Platform's service is found by its engine.
_services: dict[int, RecordService] = {}
MAX_TABLE_NAME = 63
ABANDON_AFTER_S = 120.0


def attach(service: RecordService) -> None:
    _services[id(service.db.engine.sync_engine)] = service


def detach(service: RecordService) -> None:
    _services.pop(id(service.db.engine.sync_engine), None)


def _service(ctx: PublishContext) -> RecordService | None:
    return _services.get(id(ctx.conn.sync_engine))


class CompileStep:
    """Compile every entity of the version; a bad CEL expression fails here, with its path."""

    name = "compile"
    order = 400

    async def run(self, ctx: PublishContext, result: StepResult) -> None:
        service = _service(ctx)
        if service is None:
            result.status = "skipped"
            return
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
        compiled = compile_app(
            ctx.tenant.id,
            ctx.app.slug,
            ctx.number,
            ctx.definition,
            service.storage.schema(ctx.tenant),
        )
        ctx.state["runtime.compiled"] = compiled
        result.info(f"compiled {len(compiled.entities)} entities")


class MigrateStep:
    """Plan the table changes from the active version by stable ids and apply them."""

    name = "migrate"
    order = 500

    async def run(self, ctx: PublishContext, result: StepResult) -> None:
        service = _service(ctx)
        if service is None:
            result.status = "skipped"
            return
        compiled = ctx.state["runtime.compiled"]
        ops = plan.plan(ctx.previous_definition, ctx.definition)
        allow = bool(ctx.options.get("allow_destructive"))
        args = (
            ops,
            ctx.app.slug,
            ctx.previous_definition,
            ctx.definition,
            service.storage.schema(ctx.tenant),
            allow,
        )
        if service.storage.shares_platform_db(ctx.tenant):
            done = await ctx.conn.run_sync(migrate.apply, *args) if ops else []
        else:
            done = await self._apply_in_tenant_file(ctx, service, ops, args)
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
        ctx: PublishContext, service: RecordService, ops: list[plan.Op], args: tuple[Any, ...]
    ) -> list[str]:
        if not ops:
            return []
        db = service.storage.database(ctx.tenant)
        conn = await db.engine.connect()
        txn = await conn.begin()
        try:
            done: list[str] = await conn.run_sync(migrate.apply, *args)
        except BaseException:
            await txn.rollback()
            await conn.close()
            raise

        async def commit() -> None:
            watchdog.cancel()
            try:
                await txn.commit()
            finally:
                await conn.close()

        async def rollback() -> None:
            try:
                if txn.is_active:
                    await txn.rollback()
            finally:
                await conn.close()

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


pipeline.register_step(CompileStep())
pipeline.register_step(MigrateStep())
