"""Starting instances: the workflow document an instance pins (read once per process and
version), its rows, and starts written in batches per tenant; and entering a step, or
queueing a job, wherever an instance goes next."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from plinth.db import Database
from plinth.errors import NotFound, PlinthError
from plinth.events import Effect, Event, EventBus, take_effects
from plinth.governance.audit import Unrecorded
from plinth.ids import new_id
from plinth.workflows import steps as step_types
from plinth.workflows import store
from plinth.workflows.ports import Services

log = logging.getLogger("plinth.workflows")


def business_key(
    doc: dict[str, Any], variables: dict[str, Any], record: dict[str, Any] | None
) -> str | None:
    """What people call the instance by: the workflow's `key` over its start variables, else the
    id of the record that started it. Display only: a key that cannot be computed is None."""
    if doc.get("key"):
        try:
            value = step_types.evaluate(doc["key"], variables, record)
        except Exception:  # noqa: BLE001  (a missing variable must not refuse the start)
            log.debug("no business key for this %r instance", doc.get("id"))
            return None
        return None if value is None else str(value)[:200]
    found = (record or {}).get("id")
    return None if found is None else str(found)


@dataclass
class Pending:
    """What a transaction has yet to do: events to publish after it commits, and the steps
    and jobs it entered, inserted together just before it commits (a step that only computes
    and runs in the same transaction is inserted completed, with no job)."""

    events: list[Event] = field(default_factory=list)
    steps: dict[str, dict[str, Any]] = field(default_factory=dict)
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)

    async def flush(self, conn: AsyncConnection) -> None:
        if self.steps:
            await conn.execute(store.steps.insert(), list(self.steps.values()))
            self.steps = {}
        if self.jobs:
            await conn.execute(store.jobs.insert(), list(self.jobs.values()))
            self.jobs = {}


@dataclass
class _Start:
    """A start waiting for its batch: the rows it writes."""

    row: dict[str, Any]
    step: dict[str, Any]
    job: dict[str, Any]

    @classmethod
    def of(
        cls,
        tenant_id: str,
        app: str,
        name: str,
        number: int,
        doc: dict[str, Any],
        input: dict[str, Any],
        by: str | None,
        record: dict[str, Any] | None,
        now: float,
    ) -> _Start:
        variables = {**doc.get("variables", {}), **input}
        if record is not None:
            variables.setdefault("record", record)
        row = _instance_row(tenant_id, app, name, number, doc, variables, by, record, None, now)
        first = doc["first"]
        step = _step_row(row["id"], first, doc["nodes"][first]["type"], now)
        job = _job_row(row["id"], step["id"], "run", None, now)
        return cls(row, step, job)

    def event(self) -> Event:
        return started(self.row)


def started(row: dict[str, Any]) -> Event:
    """The `workflow.started` event of a new instance's row (a start's, or a child's that a
    parent's subworkflow step created)."""
    return Event(
        "workflow.started",
        row["tenant_id"],
        {
            "app": row["app"],
            "workflow": row["workflow"],
            "instance": row["id"],
            "version": row["version"],
            "by": row["started_by"],
        },
    )


def _instance_row(
    tenant_id: str,
    app: str,
    name: str,
    number: int,
    doc: dict[str, Any],
    variables: dict[str, Any],
    by: str | None,
    record: dict[str, Any] | None,
    parent_step: str | None,
    now: float,
) -> dict[str, Any]:
    return {
        "id": new_id(),
        "tenant_id": tenant_id,
        "app": app,
        "workflow": name,
        "version": number,
        "definition": doc,
        "status": "running",
        "vars": variables,
        "record": record,
        "business_key": business_key(doc, variables, record),
        "joins": {},
        "parent_step": parent_step,
        "started_by": by,
        "started_at": now,
        "ended_at": None,
    }


def _step_row(instance_id: str, node: str, type_: str, now: float) -> dict[str, Any]:
    return {
        "id": new_id(),
        "instance_id": instance_id,
        "node": node,
        "type": type_,
        "status": "queued",
        "attempt": 1,
        "input": None,
        "output": None,
        "error": None,
        "by": None,
        "started_at": now,
        "ended_at": None,
    }


def _job_row(
    instance_id: str, step_id: str, kind: str, signal: dict[str, Any] | None, at: float
) -> dict[str, Any]:
    return {
        "id": new_id(),
        "instance_id": instance_id,
        "step_id": step_id,
        "kind": kind,
        "signal": signal,
        "run_at": at,
        "status": "queued",
        "lease": None,
        "locked_until": None,
    }


class Starts:
    """Start instances, and enter the steps and queue the jobs they go on to."""

    db: Database
    events: EventBus
    services: Services
    lease: float
    effects: list[Effect]
    after: list[Callable[[], None]]
    _tenants: dict[str, Any]
    _active: dict[tuple[str, str], tuple[int, dict[str, Any]]]
    _pinned: dict[tuple[str, str, int], tuple[int, dict[str, Any]]]
    _generation: int
    _starting: dict[str, list[tuple[_Start, asyncio.Future[None]]]]
    _writers: dict[str, asyncio.Task[None]]

    async def workflow_at(
        self, tenant: Any, app: str, name: str, version: int | None = None
    ) -> tuple[int, dict[str, Any]]:
        """The workflow document `name` of the active (or given) version of `app`."""
        number, workflows = await self._workflows(tenant, app, version)
        doc = workflows.get(name)
        if doc is None:
            raise NotFound(
                f"No workflow named {name!r} in version {number} of {app!r}", path="workflow"
            )
        return number, doc

    async def _workflows(
        self, tenant: Any, app: str, version: int | None
    ) -> tuple[int, dict[str, Any]]:
        """The version's number and its workflows, read once per process and version."""
        found = self._pinned.get((tenant.id, app, version)) if version else None
        found = found or (None if version else self._active.get((tenant.id, app)))
        if found is not None:
            return found
        generation = self._generation
        metadata = self.services.metadata
        read = (
            await metadata.version(tenant, app, version)
            if version
            else await metadata.active_version(tenant, app)
        )
        if read is None:
            raise NotFound(f"App {app!r} has no published version", path="app")
        found = (read.number, read.definition.get("workflows", {}))
        if generation == self._generation:  # no publish, rollback or delete meanwhile
            if len(self._pinned) >= 4096:
                self._pinned.clear()
                self._active.clear()
            self._pinned[(tenant.id, app, read.number)] = found
            if not version:
                self._active[(tenant.id, app)] = found
        return found

    def forget(self, tenant_id: str | None, app: str | None) -> None:
        """An app was published, rolled back or deleted (here or on another node): its next
        start reads the active version again (a deleted app's numbers start anew)."""
        self._generation += 1
        self._active.pop((tenant_id or "", app or ""), None)
        for key in [k for k in self._pinned if k[:2] == (tenant_id, app)]:
            del self._pinned[key]

    async def start(
        self,
        tenant: Any,
        app: str,
        name: str,
        input: dict[str, Any],
        by: str | None,
        record: dict[str, Any] | None = None,
        at: tuple[int, dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """Create an instance pinned to the active version (or `at`, the version and document
        the caller has just read) and queue its first node.

        Returns once the instance is committed. Starts of one tenant that arrive while its
        previous batch commits are written together, in one transaction with their
        `workflow.started` events' effects (the audit entries)."""
        number, doc = at or await self.workflow_at(tenant, app, name)
        new = _Start.of(tenant.id, app, name, number, doc, input, by, record, time.time())
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._starting.setdefault(tenant.id, []).append((new, done))
        if tenant.id not in self._writers:
            writer = asyncio.create_task(self._write_batches(tenant.id))
            self._writers[tenant.id] = writer
        await asyncio.shield(done)  # a caller that gives up does not fail the others' batch
        return new.row

    async def _write_batches(self, tenant_id: str) -> None:
        """Write the tenant's waiting starts, a batch per transaction, until none is left."""
        try:
            while batch := self._starting.pop(tenant_id, []):
                try:
                    await self._write_starts(tenant_id, [s for s, _ in batch])
                except BaseException as exc:  # each caller of the batch raises it
                    failed = isinstance(exc, Exception)
                    for _, fut in batch:
                        if fut.done():
                            continue
                        if failed:
                            fut.set_exception(exc)
                            fut.exception()  # retrieved, should its caller have given up
                        else:
                            fut.cancel()
                    if not failed:
                        raise
                    continue
                for _, fut in batch:
                    if not fut.done():
                        fut.set_result(None)
        finally:
            del self._writers[tenant_id]
            for _, fut in self._starting.pop(tenant_id, []):  # stopped: nothing is written
                if not fut.done():
                    fut.set_exception(RuntimeError("the engine stopped before the start"))
                    fut.exception()

    async def _write_starts(self, tenant_id: str, batch: list[_Start]) -> None:
        """One transaction for a batch of starts: instances, first steps, their jobs, and the
        effects of their `workflow.started` events; the events go on the bus after it."""
        async with self.db.transaction() as conn:
            await conn.execute(store.instances.insert(), [s.row for s in batch])
            await conn.execute(store.steps.insert(), [s.step for s in batch])
            await conn.execute(store.jobs.insert(), [s.job for s in batch])
            events = await self.take_effect(conn, [s.event() for s in batch])
        self._effects_committed()
        for event in events:
            await self.events.publish(event)

    async def take_effect(self, conn: AsyncConnection, events: Sequence[Event]) -> list[Event]:
        """Run the effects of `events` (the audit entries, webhook deliveries) in `conn`, the
        transaction that makes them: a crash, or a database too busy to commit, leaves both
        the change and its entries or neither, and a step re-run after a crash writes them
        then, once. Returns the events to publish once `conn` commits (after
        `_effects_committed`): these, marked `effects_done` when effects ran, and those the
        effects return."""
        return await take_effects(self.effects, conn, events)

    async def take_effect_now(self, conn: AsyncConnection, events: Sequence[Event]) -> list[Event]:
        """`take_effect` for a change a person is making (a task decided, an instance
        steered): effects that cannot be written (the ledger refusing the entry) refuse the
        change with a typed error, `Unrecorded`, and its transaction rolls back."""
        try:
            return await self.take_effect(conn, events)
        except PlinthError:
            raise
        except Exception as exc:
            # The 503 tells the caller only to retry: the log says what was refused, and why
            # (the driver's error, not the statement's parameters: a webhook's URL and payload
            # are among them).
            log.error(
                "effects of %s not written, their change refused: %s",
                ", ".join(e.topic for e in events),
                getattr(exc, "orig", None) or exc,
            )
            raise Unrecorded(
                "This change's ledger entry or webhook deliveries could not be written, so it "
                "was not made; try again"
            ) from exc

    def _effects_committed(self) -> None:
        """A transaction that ran `take_effect` committed: wake who acts on its effects (the
        webhook worker claims the deliveries it queued now, not at its next poll)."""
        for wake in self.after:
            wake()

    async def _create(
        self,
        conn: AsyncConnection,
        tenant_id: str,
        app: str,
        name: str,
        number: int,
        doc: dict[str, Any],
        input: dict[str, Any],
        by: str | None,
        record: dict[str, Any] | None,
        parent_step: str | None,
    ) -> dict[str, Any]:
        now = time.time()
        variables = {**doc.get("variables", {}), **input}
        if record is not None:
            variables.setdefault("record", record)
        row = _instance_row(
            tenant_id, app, name, number, doc, variables, by, record, parent_step, now
        )
        instance_id = row["id"]
        await conn.execute(store.instances.insert().values(**row))
        await self._enter(conn, instance_id, doc, doc["first"], now)
        return row

    async def _enter(
        self,
        conn: AsyncConnection,
        instance_id: str,
        doc: dict[str, Any],
        node: str,
        now: float,
        input: Any = None,
        lease: str | None = None,
        out: Pending | None = None,
    ) -> tuple[str, str]:
        """Add step `node` to the timeline and queue its job: (step id, job id). With `out`,
        both rows are inserted when the transaction flushes it."""
        step = _step_row(instance_id, node, doc["nodes"][node]["type"], now)
        step["input"] = input
        job = _job_row(instance_id, step["id"], "run", None, now)
        if lease is not None:  # born claimed by that lease: the worker runs it next
            job |= {"status": "running", "lease": lease, "locked_until": now + self.lease}
        if out is not None:
            out.steps[step["id"]] = step
            out.jobs[job["id"]] = job
        else:
            await conn.execute(store.steps.insert().values(**step))
            await conn.execute(store.jobs.insert().values(**job))
        return step["id"], job["id"]

    async def _queue(
        self,
        conn: AsyncConnection,
        instance_id: str,
        step_id: str,
        kind: str,
        signal: dict[str, Any] | None,
        at: float,
        lease: str | None = None,
    ) -> str:
        """Queue a job; with `lease`, born claimed by that lease (the worker runs it next)."""
        job_id = new_id()
        claimed: dict[str, Any] = {"status": "queued"}
        if lease is not None:
            claimed = {"status": "running", "lease": lease, "locked_until": at + self.lease}
        await conn.execute(
            store.jobs.insert().values(
                id=job_id,
                instance_id=instance_id,
                step_id=step_id,
                kind=kind,
                signal=signal,
                run_at=at,
                **claimed,
            )
        )
        return job_id

    async def _tenant(self, tenant_id: str) -> Any:
        # Tenants are immutable for what steps need (id, slug); one lookup per process.
        if tenant_id not in self._tenants:
            tenants = await self.services.tenants.list({tenant_id})
            if not tenants:
                return None
            self._tenants[tenant_id] = tenants[0]
        return self._tenants[tenant_id]
