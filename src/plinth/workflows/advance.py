"""Advancing an instance: run or resume a claimed job's step, then apply its outcome in one
transaction that checks the lease is still its own (record it, enter what follows, end the
instance, or retry, defer or fail the step). The controls that move an instance from outside
are `controls`."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from plinth.errors import PlinthError
from plinth.events import Event
from plinth.governance.principal import Principal
from plinth.ids import new_id
from plinth.outbox import crash_pause
from plinth.queue import backoff
from plinth.workflows import steps as step_types
from plinth.workflows import store
from plinth.workflows.starts import Pending, Starts, started
from plinth.workflows.steps import Outcome, StepContext

ENDED = ("completed", "failed", "cancelled")
# The instance's columns a step reads each time (its definition comes from a cache).
_INSTANCE_STATE = tuple(c for c in store.instances.c if c.name != "definition")
# Step types that read their step's tasks when run (every resume reads them too).
_READS_TASKS = frozenset({"approval"})
# Step types that only compute from the instance's variables: no I/O, no side effects.
_PURE = frozenset({"assign", "gateway", "end"})
# Step types that never wait, fork or start a child: an instance whose workflow has only these
# runs one path, each job entered by the step before it, and holds no task and no other job
# when one of its steps ends it (nothing to close there).
_LINEAR = frozenset({"assign", "gateway", "end", "service_task"})
# Steps one claim runs in a row at most: a looping instance still lets others take the worker.
CHAIN = 100
# Times a step is put off because its callee said "busy, retry later" before the step fails.
DEFERRALS = 30
# The longest "retry later" a step waits out as a deferral. A callee out for longer (a
# connector whose circuit breaker is open for an hour) is a failed attempt: the step's own
# retry and error path decide, as the breaker means them to, quickly.
DEFER_SECONDS = 60.0
# Test-only switch: touch the file it names and hang once a step's transaction that made
# events (an instance ended, a task created) has committed; the crash test kills there.
PAUSE_AFTER_STEP = "PLINTH_TEST_PAUSE_AFTER_STEP"


def actor(instance_id: str, tenant_id: str, workflow: str, role: str = "owner") -> Principal:
    """Who a workflow's service tasks act as: a role of the tenant (`owner` unless the workflow
    or the step declares `run_as`), named for the workflow (records show `workflow <name>` as
    their author), held to the app's policies like anyone."""
    return Principal(
        f"workflow:{instance_id}",
        "workflow",
        frozenset({role}),
        tenant_id=tenant_id,
        name=f"workflow {workflow}",
    )


def run_as(doc: dict[str, Any], spec: dict[str, Any]) -> str:
    """The role a step acts as: the step's `run_as`, else the workflow's, else `owner`."""
    return str((spec.get("run_as") or doc.get("run_as") or {}).get("role") or "owner")


@dataclass
class Job:
    id: str
    instance_id: str
    step_id: str
    kind: str
    signal: dict[str, Any] | None
    lease: str


@dataclass
class Carried:
    """What a step's commit wrote that the next step of the same instance starts from."""

    inst: dict[str, Any]
    step: dict[str, Any]


@dataclass
class Effects:
    """A step's side effect (`ctx.effect`): what an earlier run of the step remembered, read
    with the step, and what this run did, written in the transaction that applies its
    outcome (or its failure), with the step's new state."""

    earlier: tuple[Any] | None = None  # (result,) when a run before this one remembered it
    done: dict[str, Any] = field(default_factory=dict)  # key -> result, to remember

    async def run(self, key: str, fn: Callable[[str], Awaitable[Any]]) -> Any:
        """The effect's result: remembered, or from running it once now."""
        if key in self.done:
            return self.done[key]
        if self.earlier is not None:
            return self.earlier[0]
        result = self.done[key] = await fn(key)
        return result

    async def remember(self, conn: AsyncConnection) -> None:
        """Write what this run did, whatever became of its step meanwhile (suspended, its
        lease taken over): the call happened, and a run after this one must not redo it. A
        result another run remembered first stays."""
        if self.done:
            now = time.time()
            insert = (pg_insert if conn.dialect.name == "postgresql" else sqlite_insert)(
                store.effects
            ).on_conflict_do_nothing(index_elements=["key"])
            await conn.execute(
                insert, [{"key": k, "result": r, "at": now} for k, r in self.done.items()]
            )
            self.done = {}


def _linear(definition: dict[str, Any]) -> bool:
    """Whether the workflow's steps are all of the `_LINEAR` types."""
    return all(node.get("type") in _LINEAR for node in definition.get("nodes", {}).values())


def retry_after(exc: BaseException) -> float | None:
    """Seconds a callee asked to wait before calling again, when it refused a call without
    running it (a 429 or 503 with Retry-After: a plugin tenant's or the workers' admission);
    None for any other failure."""
    if not isinstance(exc, PlinthError) or exc.status not in (429, 503):
        return None
    value = exc.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return 1.0


class Advance(Starts):
    """Run an instance's steps and apply what they lead to."""

    _definitions: dict[str, dict[str, Any]]
    _announcing: set[asyncio.Task[None]]
    _last_announced: asyncio.Task[None] | None
    _pause_after_step: str | None  # `PAUSE_AFTER_STEP`, read once

    async def _state(self, conn: AsyncConnection, inst_id: str, lock: bool = False) -> Any:
        """The instance row, its definition from the per-process cache (read once)."""
        query = sa.select(*_INSTANCE_STATE).where(store.instances.c.id == inst_id)
        if lock and self.db.dialect == "postgresql":
            query = query.with_for_update()
        inst = dict((await conn.execute(query)).mappings().one())
        definition = self._definitions.get(inst_id)
        if definition is None:
            definition = (
                await conn.execute(
                    sa.select(store.instances.c.definition).where(store.instances.c.id == inst_id)
                )
            ).scalar_one()
            self._remember(inst_id, definition)
        inst["definition"] = definition
        return inst

    def _remember(self, inst_id: str, definition: dict[str, Any]) -> None:
        if len(self._definitions) > 10_000:
            self._definitions.clear()
        self._definitions[inst_id] = definition

    async def process(
        self, job: Job, carried: Carried | None = None, chain: bool = False
    ) -> tuple[Job, Carried] | None:
        """Run or resume the job's step and apply what it led to; with `chain`, the step it
        leads to (when exactly one and automatic) comes back claimed, with its state."""
        if carried is not None:  # entered by this lease's last commit: never run before
            return await self._step(job, carried.inst, carried.step, [], chain, Effects())
        i, s, e = store.instances, store.steps, store.effects
        cached = self._definitions.get(job.instance_id)
        # What an earlier run of the step remembered of its side effect, in the same read.
        key = f"{job.instance_id}:{job.step_id}"
        columns = [
            *_INSTANCE_STATE,
            *(c.label(f"step_{c.name}") for c in s.c),
            sa.exists().where(e.c.key == key).label("effect_found"),
            sa.select(e.c.result).where(e.c.key == key).scalar_subquery().label("effect_result"),
        ]
        if cached is None:
            columns.append(i.c.definition)
        query = (
            sa.select(*columns)
            .select_from(i.join(s, s.c.instance_id == i.c.id))
            .where(i.c.id == job.instance_id, s.c.id == job.step_id)
        )
        async with self.db.statement() as conn:  # the instance and the step, one round trip
            row = dict((await conn.execute(query)).mappings().one())
        step = {c.name: row.pop(f"step_{c.name}") for c in s.c}
        found, result = row.pop("effect_found"), row.pop("effect_result")
        effects = Effects((result,) if found else None)
        inst = row
        if cached is None:
            self._remember(job.instance_id, inst["definition"])
        else:
            inst["definition"] = cached
        tasks: list[dict[str, Any]] = []
        node_type = (inst["definition"]["nodes"].get(step["node"]) or {}).get("type")
        if job.kind == "resume" or node_type in _READS_TASKS:
            async with self.db.read() as conn:
                tasks = [
                    dict(t)
                    for t in (
                        await conn.execute(
                            store.tasks.select()
                            .where(store.tasks.c.step_id == job.step_id)
                            .order_by(store.tasks.c.created_at)
                        )
                    ).mappings()
                ]
        return await self._step(job, inst, step, tasks, chain, effects)

    async def _step(
        self,
        job: Job,
        inst: dict[str, Any],
        step: Any,
        tasks: list[dict[str, Any]],
        chain: bool,
        effects: Effects,
    ) -> tuple[Job, Carried] | None:
        expected = "waiting" if job.kind == "resume" else ("queued", "retrying")
        if step["status"] not in (expected if isinstance(expected, tuple) else (expected,)):
            await self._finish_job(job)  # a stale signal: the step has moved on
            return None
        spec = inst["definition"]["nodes"][step["node"]]
        ctx = await self._context(job, inst, step, spec, tasks, effects)
        tenant = ctx.tenant
        impl = step_types.get(spec["type"])
        try:
            if job.kind == "resume":
                signal = dict(job.signal or {})
                signal.pop("deferred", None)
                if signal.get("kind") == "task":
                    signal["task"] = next(t for t in tasks if t["id"] == signal["task_id"])
                outcome = await impl.resume(ctx, signal)
                if signal.get("kind") == "task":
                    outcome.by = signal["task"]["decided_by"]
            else:
                outcome = await impl.run(ctx)
            child_doc = None
            if outcome.child:
                _, child_doc = await self.workflow_at(
                    tenant, inst["app"], outcome.child["workflow"], inst["version"]
                )
        except Exception as exc:  # noqa: BLE001  (a step's failure is data: retry or error path)
            await self._failed(job, inst, step, spec, exc, effects)
            return None
        return await self._apply(
            job, inst, step, spec, outcome, child_doc, expected, chain, effects
        )

    async def _context(
        self,
        job: Job,
        inst: dict[str, Any],
        step: Any,
        spec: dict[str, Any],
        tasks: list[Any],
        effects: Effects,
    ) -> StepContext:
        return StepContext(
            node=step["node"],
            spec=spec,
            vars=dict(inst["vars"]),
            record=inst["record"],
            instance=dict(inst),
            step_id=step["id"],
            attempt=step["attempt"],
            tasks=tasks,
            effect=lambda fn: effects.run(f"{inst['id']}:{step['id']}", fn),
            services=self.services,
            tenant=await self._tenant(inst["tenant_id"]),
            principal=actor(
                inst["id"], inst["tenant_id"], inst["workflow"], run_as(inst["definition"], spec)
            ),
        )

    async def _guard(self, conn: AsyncConnection, job: Job, inst_id: str) -> dict[str, Any] | None:
        """Lock the instance and finish the job if the lease is still ours; None otherwise.
        A job of an instance suspended meanwhile goes back to the queue (it runs on resume)."""
        inst = await self._state(conn, inst_id, lock=True)
        if inst["status"] == "suspended":
            await conn.execute(
                store.jobs.update()
                .where(store.jobs.c.id == job.id, store.jobs.c.lease == job.lease)
                .values(status="queued", lease=None, locked_until=None)
            )
            return None
        done = await conn.execute(
            store.jobs.update()
            .where(
                store.jobs.c.id == job.id,
                store.jobs.c.lease == job.lease,
                store.jobs.c.status == "running",
            )
            .values(status="done")
        )
        return dict(inst) if done.rowcount == 1 else None

    async def _finish_job(self, job: Job) -> None:
        async with self.db.transaction() as conn:
            await conn.execute(
                store.jobs.update()
                .where(store.jobs.c.id == job.id, store.jobs.c.lease == job.lease)
                .values(status="done")
            )

    async def _apply(
        self,
        job: Job,
        inst0: Any,
        step: Any,
        spec: dict[str, Any],
        outcome: Outcome,
        child_doc: dict[str, Any] | None,
        expected: Any,
        chain: bool = False,
        effects: Effects | None = None,
    ) -> tuple[Job, Carried] | None:
        now = time.time()
        out = Pending()
        following: tuple[Job, Carried] | None = None
        async with self.db.transaction() as conn:
            inst = await self._guard(conn, job, inst0["id"])
            if effects is not None:
                # Remembered with the step's completion: a crash before this commit re-runs
                # the step, which calls again with the same idempotency key (the callee's
                # guard against doubling, as for a crash between the call and any commit).
                # Also when the step does not complete here (its instance suspended or
                # cancelled meanwhile, its lease lost): the call was made all the same.
                await effects.remember(conn)
            if inst is None or inst["status"] != "running":
                return None
            allowed = expected if isinstance(expected, tuple) else (expected,)
            following = await self._advance(
                conn, job, inst, step, outcome, child_doc, allowed, now, out, chain
            )
            # Steps that only compute (assign, gateway, end) commit with the step before them:
            # a crash re-runs them with it, and they have nothing to do twice. Such a step is
            # still only entered (its rows wait in `out`): it is written completed, without a
            # job, in the statements that insert the transaction's steps.
            for _ in range(CHAIN):
                if following is None or following[1].step["type"] not in _PURE:
                    break
                nxt, carried = following
                nspec = inst["definition"]["nodes"][carried.step["node"]]
                ctx = await self._context(nxt, inst, carried.step, nspec, [], Effects())
                try:
                    pure = await step_types.get(nspec["type"]).run(ctx)
                except Exception:  # noqa: BLE001  (its failure takes the ordinary path, after commit)
                    break
                out.jobs.pop(nxt.id, None)
                now = max(time.time(), now + 1e-6)  # the timeline sorts its steps by time
                following = await self._advance(
                    conn, nxt, inst, carried.step, pure, None, ("queued",), now, out, chain
                )
            await out.flush(conn)
            # The variables are written once per transaction, however many steps ran in it.
            await conn.execute(
                store.instances.update()
                .where(store.instances.c.id == inst["id"])
                .values({k: inst[k] for k in ("vars", "joins", "status", "ended_at")})
            )
            events = await self.take_effect(conn, out.events) if out.events else []
        if out.events:
            await self._committed(events)
        return following

    async def _advance(
        self,
        conn: AsyncConnection,
        job: Job,
        inst: dict[str, Any],
        step: Any,
        outcome: Outcome,
        child_doc: dict[str, Any] | None,
        allowed: tuple[str, ...],
        now: float,
        out: Pending,
        chain: bool,
    ) -> tuple[Job, Carried] | None:
        """Record `step`'s outcome and enter what follows (in `conn`); `inst` is updated in
        place, its row written by the caller. With `chain`, a single automatic successor is
        queued claimed by `job`'s lease and returned with its state."""
        following: tuple[Job, Carried] | None = None
        new_status = "waiting" if outcome.wait else "completed"
        output = outcome.output
        if isinstance(step["output"], dict) and isinstance(output, dict):
            output = {**step["output"], **output}  # keep what earlier signals recorded
        elif output is None:
            output = step["output"]
        recorded = {
            "status": new_status,
            "output": output,
            "error": None,
            "by": outcome.by or step["by"],
            "ended_at": None if outcome.wait else now,
        }
        entered = out.steps.get(step["id"])
        if entered is not None:  # entered in this transaction: not written yet
            entered |= recorded
        else:
            moved = await conn.execute(
                store.steps.update()
                .where(store.steps.c.id == step["id"], store.steps.c.status.in_(allowed))
                .values(recorded)
            )
            if moved.rowcount != 1:
                return following
        variables = {**inst["vars"], **outcome.vars}
        joins = dict(inst["joins"])
        t = store.tasks
        for task in outcome.tasks:
            tid = new_id()
            await conn.execute(
                t.insert().values(
                    id=tid,
                    tenant_id=inst["tenant_id"],
                    instance_id=inst["id"],
                    step_id=step["id"],
                    kind=task["kind"],
                    title=task["title"],
                    status="open",
                    assignee=task["assignee"],
                    form=task["form"],
                    created_at=now,
                )
            )
            out.events.append(
                Event(
                    "task.created",
                    inst["tenant_id"],
                    {
                        "app": inst["app"],
                        "workflow": inst["workflow"],
                        "task": tid,
                        "instance": inst["id"],
                        "node": step["node"],
                        "assignee": task["assignee"],
                    },
                )
            )
        if outcome.timer:
            name, at = outcome.timer
            await self._queue(
                conn, inst["id"], step["id"], "resume", {"kind": "timer", "name": name}, at
            )
        if outcome.reassign:
            await conn.execute(
                t.update()
                .where(t.c.step_id == step["id"], t.c.status == "open")
                .values(assignee=outcome.reassign, claimed_by=None)
            )
        if not outcome.wait and outcome.close_tasks:
            await conn.execute(
                t.update()
                .where(t.c.step_id == step["id"], t.c.status == "open")
                .values(status="cancelled", ended_at=now)
            )
        targets = list(outcome.next)
        if outcome.join:
            split = inst["definition"]["nodes"][outcome.join]
            arrived = joins.get(outcome.join, 0) + 1
            if arrived < len(split["branches"]):
                joins[outcome.join] = arrived
                targets = []
            else:
                joins.pop(outcome.join, None)
        # One automatic successor: this worker runs it next, under its lease.
        chained = chain and len(targets) == 1 and not outcome.child and not outcome.end
        for node in targets:
            lease = job.lease if chained else None
            ids = await self._enter(
                conn, inst["id"], inst["definition"], node, now, None, lease, out
            )
            if chained:
                following = self._successor(job, inst, node, *ids, now)
        if outcome.child and child_doc is not None:
            child = await self._create(
                conn,
                inst["tenant_id"],
                inst["app"],
                outcome.child["workflow"],
                inst["version"],
                child_doc,
                outcome.child["input"],
                f"workflow:{inst['id']}",
                None,
                step["id"],
            )
            out.events.append(started(child))  # audited in this transaction, as a start is
        values: dict[str, Any] = {"vars": variables, "joins": joins}
        if outcome.end:
            values |= {"status": outcome.end, "ended_at": now}
            await self._ended(conn, inst, outcome.end, variables, now, out, by_step=True)
        inst |= values
        return following

    @staticmethod
    def _successor(
        job: Job, inst: dict[str, Any], node: str, step_id: str, job_id: str, now: float
    ) -> tuple[Job, Carried]:
        """The job and state of a step just entered under `job`'s lease, as the commit writes
        them (`inst` is updated in place before the commit, so it carries the new variables)."""
        step = {
            "id": step_id,
            "instance_id": inst["id"],
            "node": node,
            "type": inst["definition"]["nodes"][node]["type"],
            "status": "queued",
            "attempt": 1,
            "input": None,
            "output": None,
            "error": None,
            "by": None,
            "started_at": now,
            "ended_at": None,
        }
        return Job(job_id, inst["id"], step_id, "run", None, job.lease), Carried(inst, step)

    async def _ended(
        self,
        conn: AsyncConnection,
        inst: dict[str, Any],
        status: str,
        variables: dict[str, Any],
        now: float,
        out: Pending,
        by_step: bool = False,
    ) -> None:
        """Close what the instance leaves open, and wake a waiting parent. `by_step`: ended by
        the step whose job this transaction finishes (not cancelled from outside, when the job
        of a linear workflow's next step may still be queued)."""
        if not (by_step and _linear(inst["definition"])):
            await conn.execute(
                store.tasks.update()
                .where(store.tasks.c.instance_id == inst["id"], store.tasks.c.status == "open")
                .values(status="cancelled", ended_at=now)
            )
            await conn.execute(
                store.jobs.update()
                .where(store.jobs.c.instance_id == inst["id"], store.jobs.c.status == "queued")
                .values(status="done")
            )
        for job in out.jobs.values():  # entered in this transaction, not written yet
            if job["instance_id"] == inst["id"] and job["status"] == "queued":
                job["status"] = "done"
        if inst["parent_step"]:
            parent = (
                await conn.execute(
                    sa.select(store.steps.c.instance_id).where(
                        store.steps.c.id == inst["parent_step"]
                    )
                )
            ).first()
            if parent is not None:
                await self._queue(
                    conn,
                    parent.instance_id,
                    inst["parent_step"],
                    "resume",
                    {"kind": "child", "status": status, "vars": variables, "instance": inst["id"]},
                    now,
                )
        out.events.append(
            Event(
                f"workflow.{status}",
                inst["tenant_id"],
                {"app": inst["app"], "workflow": inst["workflow"], "instance": inst["id"]},
            )
        )

    async def _failed(
        self,
        job: Job,
        inst0: Any,
        step: Any,
        spec: dict[str, Any],
        exc: Exception,
        effects: Effects | None = None,
    ) -> None:
        """Put off a step whose callee was busy, else retry with backoff, else take the error
        path, else fail the instance."""
        now = time.time()
        retry = spec.get("retry") or {}
        attempt = step["attempt"]
        message = f"{type(exc).__name__}: {exc}"[:2000]
        deferred = int((job.signal or {}).get("deferred", 0))
        later = retry_after(exc) if deferred < DEFERRALS else None
        if later is not None and later > DEFER_SECONDS:
            later = None
        out = Pending()
        async with self.db.transaction() as conn:
            inst = await self._guard(conn, job, inst0["id"])
            if effects is not None:  # done before the step failed: a retry does not redo it
                await effects.remember(conn)
            if inst is None or inst["status"] != "running":
                return
            s = store.steps
            if later is not None:
                # The callee refused before doing anything (a 429 or 503 with Retry-After, as
                # `plugin_tenant_busy`): the same attempt runs again once it said it may,
                # backing off further each time it is still busy. Not a failure.
                delay = max(later, backoff(deferred + 1, later, max(later, 60.0)))
                await conn.execute(s.update().where(s.c.id == step["id"]).values(error=message))
                signal = {**(job.signal or {}), "deferred": deferred + 1}
                await self._queue(conn, inst["id"], step["id"], job.kind, signal, now + delay)
                return
            if attempt < retry.get("max_attempts", 1):
                delay = backoff(attempt, retry.get("backoff", 1.0), retry.get("max_backoff", 300.0))
                await conn.execute(
                    s.update()
                    .where(s.c.id == step["id"])
                    .values(
                        attempt=attempt + 1,
                        error=message,
                        status="retrying" if job.kind == "run" else step["status"],
                    )
                )
                await self._queue(conn, inst["id"], step["id"], job.kind, job.signal, now + delay)
                return
            await conn.execute(
                s.update()
                .where(s.c.id == step["id"])
                .values(status="failed", error=message, ended_at=now)
            )
            if spec.get("on_error"):
                variables = {**inst["vars"], "error": {"node": step["node"], "message": message}}
                await self._enter(conn, inst["id"], inst["definition"], spec["on_error"], now)
                await conn.execute(
                    store.instances.update()
                    .where(store.instances.c.id == inst["id"])
                    .values(vars=variables)
                )
                return
            await conn.execute(
                store.instances.update()
                .where(store.instances.c.id == inst["id"])
                .values(status="failed", ended_at=now)
            )
            await self._ended(conn, inst, "failed", inst["vars"], now, out, by_step=True)
            events = await self.take_effect(conn, out.events) if out.events else []
        if out.events:
            await self._committed(events)

    async def _committed(self, events: list[Event]) -> None:
        """A step's transaction that made events committed, with their effects (`take_effect`):
        the test switch `PAUSE_AFTER_STEP` hangs here (the crash test kills the worker in this
        window), then what is left to publish goes on the bus."""
        await crash_pause(self._pause_after_step)
        self._effects_committed()
        self._announce(events)

    def _announce(self, events: list[Event]) -> None:
        """Publish a committed step's events without holding up the loop that ran it: the loop
        goes on to its next job. An instance's events keep their order; `drain` and the end
        of `work` wait for them."""
        if not events:
            return
        # After the events of the steps committed before (a subscriber awaiting one event,
        # as the ledger its group commit, let a later step's events overtake it).
        task = asyncio.get_running_loop().create_task(self._publish(self._last_announced, events))
        self._last_announced = task
        self._announcing.add(task)
        task.add_done_callback(self._announcing.discard)

    async def _publish(self, before: asyncio.Task[None] | None, events: list[Event]) -> None:
        if before is not None and not before.done():
            await asyncio.wait([before])  # its failure is its own (logged by the bus)
        for event in events:
            await self.events.publish(event)

    async def announced(self) -> None:
        """Wait until the events of the steps committed so far are published."""
        while self._announcing:
            await asyncio.gather(*list(self._announcing), return_exceptions=True)
