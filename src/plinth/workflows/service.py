"""What other layers and the API call: start, inspect and control instances; the task inbox.

Every action is authorized (`workflow.*`, `task.*`) and emits an event the audit ledger records.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from plinth.db import Steps
from plinth.errors import Conflict, Fault, Forbidden, NotFound, ValidationFailed
from plinth.events import Event
from plinth.governance.access import Resource, authorize
from plinth.governance.principal import Principal
from plinth.jsonschema import compile_schema, faults
from plinth.runtime import types
from plinth.tenancy.models import Tenant
from plinth.workflows import kind as _kind  # noqa: F401  (registers the workflow kind)
from plinth.workflows import steps, store
from plinth.workflows.engine import Engine
from plinth.workflows.ports import Services

log = logging.getLogger("plinth.workflows")


def form_schema(form: dict[str, Any], definition: dict[str, Any]) -> dict[str, Any]:
    """The JSON Schema a task's form data must satisfy: the one the portal checks before it
    sends (`taskFields`/`fieldErrors` of the portal runtime). Entity fields keep every
    constraint of their type (min, max, lengths, pattern, enum values), computed fields are
    not part of a form, and no field outside the form is accepted."""
    if form.get("schema"):
        own = dict(form["schema"])
        own.setdefault("type", "object")
        own.setdefault("additionalProperties", False)
        return own
    if not form.get("entity"):
        return {"type": "object", "additionalProperties": False}  # a task with no form
    fields = definition.get("entities", {}).get(form.get("entity", ""), {}).get("fields", {})
    named = form.get("fields") or list(fields)
    chosen = [n for n in named if n in fields and "computed" not in fields[n]]
    props: dict[str, Any] = {}
    required: list[str] = []
    for name in chosen:
        spec = fields[name]
        prop = types.json_schema(spec)
        if spec.get("required") and "default" not in spec:
            required.append(name)
        elif "type" in prop:  # optional: may be sent empty
            kinds = prop["type"] if isinstance(prop["type"], list) else [prop["type"]]
            prop = {**prop, "type": [*kinds, "null"]}
            if "enum" in prop:
                prop["enum"] = [*prop["enum"], None]
        else:
            prop = {"anyOf": [prop, {"type": "null"}]}
        props[name] = prop
    return {
        "type": "object",
        "properties": props,
        "required": required,
        "additionalProperties": False,
    }


def may_act(task: dict[str, Any], principal: Principal) -> bool:
    """Whether `principal` is an assignee of the task (role, user, matching attributes)."""
    if principal.is_platform_admin:
        return True
    who = task.get("assignee") or {}
    if task.get("claimed_by") and task["claimed_by"] != principal.id:
        return False
    if who.get("user"):
        return who["user"] in (principal.id, principal.name)
    if who.get("role") and who["role"] not in principal.roles:
        return False
    return all(principal.attrs.get(k) == v for k, v in (who.get("attrs") or {}).items())


class WorkflowService:
    """Workflows for one platform: the engine, the inbox and the record-event trigger."""

    def __init__(self, platform: Services) -> None:
        self.platform = platform
        self.engine = Engine(platform.db, platform.events, platform)
        self._stop: asyncio.Event | None = None
        self._worker: asyncio.Task[None] | None = None
        self._starts: dict[tuple[str, str, int], tuple[int, list[Any]]] = {}
        platform.events.subscribe("app.deleted", self._forget_starts, cluster=True)
        for topic in ("app.published", "app.rolled_back", "app.deleted"):
            platform.events.subscribe(topic, self._forget_version, cluster=True)
        platform.events.subscribe("app.published", self._on_publish)
        platform.events.subscribe("app.rolled_back", self._on_publish)

    def _authorize(
        self, principal: Principal, action: str, tenant: Tenant, kind: str, ident: str, **attrs: Any
    ) -> None:
        authorize(
            self.platform.authorizer,
            principal,
            action,
            Resource(kind, ident, tenant_id=tenant.id, attrs=attrs),
        )

    async def _emit(
        self,
        conn: AsyncConnection,
        topic: str,
        tenant: Tenant,
        task: dict[str, Any],
        **data: Any,
    ) -> list[Event]:
        """The event of a change to `task` made in `conn`, its effects (the ledger's entry,
        webhook deliveries) written there: what `_told` publishes once `conn` commits. It names
        the task's app and workflow: only that app's webhooks hear it (a comment on one app's
        task is not another app's business)."""
        about = {
            "app": task["app"],
            "workflow": task["workflow"],
            "task": task["id"],
            "instance": task["instance_id"],
        }
        event = Event(topic, tenant.id, {**about, **data})
        return await self.engine.take_effect_now(conn, [event])

    async def _told(self, events: list[Event]) -> None:
        """Publish what `_emit` returned, its transaction committed."""
        self.engine._effects_committed()
        for event in events:
            await self.platform.events.publish(event)

    # -- embedded worker ----------------------------------------------------------------------

    async def start_worker(self, poll: float = 0.2) -> None:
        """Run a worker inside this process (`settings.embedded_worker`)."""
        self._stop = asyncio.Event()
        self._worker = asyncio.create_task(self.engine.work(self._stop, poll))

    async def stop_worker(self) -> None:
        if self._stop and self._worker:
            self._stop.set()
            await self._worker
            self._worker = None

    # -- instances ----------------------------------------------------------------------------

    async def start(
        self,
        tenant: Tenant,
        app: str,
        workflow: str,
        input: dict[str, Any],
        principal: Principal,
        via: str = "manual",
    ) -> dict[str, Any]:
        """Start `workflow` of `app` by hand or from a webhook, if it declares that start."""
        self._authorize(principal, "workflow.start", tenant, "workflow", f"{app}/{workflow}")
        number, doc = await self.engine.workflow_at(tenant, app, workflow)
        starts = {s["type"] for s in doc.get("start", [{"type": "manual"}])}
        if via not in starts:
            raise Conflict(f"Workflow {workflow!r} has no {via} start event", path="start")
        return public(
            await self.engine.start(
                tenant,
                app,
                workflow,
                {**input, "via": via},
                principal.audit_name(),
                at=(number, doc),
            )
        )

    async def _on_publish(self, event: Event) -> None:
        tenant = await self.engine._tenant(event.tenant_id or "")
        if tenant is not None:
            await self.engine.sync_schedules(tenant, event.data["app"])

    async def effect(
        self, conn: AsyncConnection, tenant_id: str, events: Sequence[Event]
    ) -> list[Event]:
        """The outbox's workflow effect: start every workflow whose record start event matches
        a change (CEL condition on the record), in the dispatch transaction, with the effects
        of their `workflow.started` events (`Engine.take_effect`: their audit entries commit
        with them); returns what is left to publish once it commits."""
        tenant = await self.engine._tenant(tenant_id)
        if tenant is None:
            return []
        started: list[Event] = []
        for event, name, number, doc, record in await self._started(tenant, events):
            data = event.data
            instance = await self.engine._create(
                conn,
                tenant.id,
                data["app"],
                name,
                number,
                doc,
                {},
                data.get("by"),
                record,
                None,
            )
            log.info("record %s started workflow %s (%s)", data.get("id"), name, instance["id"])
            started.append(
                Event(
                    "workflow.started",
                    tenant.id,
                    {
                        "app": data["app"],
                        "workflow": name,
                        "instance": instance["id"],
                        "version": number,
                        "by": data.get("by"),
                    },
                )
            )
        return await self.engine.take_effect(conn, started)

    async def plan(self, tenant_id: str, events: Sequence[Event]) -> Steps | None:
        """The workflow effect for the outbox's prebuilt dispatch (`outbox.Plan`): nothing to
        write when no change starts a workflow, else None (starting one reads and writes in the
        dispatch transaction: `effect`)."""
        tenant = await self.engine._tenant(tenant_id)
        if tenant is None or not await self._started(tenant, events):
            return []
        return None

    async def _started(
        self, tenant: Tenant, events: Sequence[Event]
    ) -> list[tuple[Event, str, int, dict[str, Any], dict[str, Any]]]:
        """(event, workflow, version, its document, the record) for every workflow whose
        record start event matches a change (CEL condition on the record)."""
        found = []
        for event in events:
            data = event.data
            kind = event.topic.rsplit(".", 1)[-1]
            try:
                number, starts = await self._record_starts(
                    tenant, str(data.get("app", "")), data.get("version")
                )
            except NotFound:  # the app was deleted since the write: nothing to start
                continue
            record = data.get("after") or data.get("before") or {}
            for name, doc, start in starts:
                if start.get("entity") != data.get("entity") or (
                    start.get("event", "created") != kind
                ):
                    continue
                if (
                    start.get("condition")
                    and steps.evaluate(start["condition"], {}, record) is not True
                ):
                    continue
                found.append((event, name, number, doc, record))
        return found

    async def _record_starts(
        self, tenant: Tenant, app: str, number: Any
    ) -> tuple[int, list[tuple[str, dict[str, Any], dict[str, Any]]]]:
        """The record start events of the version a write ran on (`number`; else the active
        one): remembered per version, which never changes, so a write whose app starts no
        workflow costs no query here."""
        key = (tenant.id, app, number)
        found = self._starts.get(key) if isinstance(number, int) else None
        if found is not None:
            return found
        metadata = self.platform.metadata
        version = (
            await metadata.version(tenant, app, number)
            if isinstance(number, int)
            else await metadata.active_version(tenant, app)
        )
        if version is None:
            return 0, []
        starts = [
            (name, doc, start)
            for name, doc in version.definition.get("workflows", {}).items()
            for start in doc.get("start", [])
            if start["type"] == "record"
        ]
        if isinstance(number, int):
            if len(self._starts) >= 4096:
                self._starts.clear()
            self._starts[key] = (version.number, starts)
        return version.number, starts

    async def _forget_version(self, event: Event) -> None:
        """The app's active version changed (on any node): its next start reads it again."""
        self.engine.forget(event.tenant_id, event.data.get("app"))

    async def _forget_starts(self, event: Event) -> None:
        """An app deleted (on any node): a new app of the same name numbers versions anew."""
        app = event.data.get("app")
        for key in [k for k in self._starts if k[0] == event.tenant_id and k[1] == app]:
            del self._starts[key]

    async def start_from_webhook(
        self, conn: AsyncConnection, tenant: Tenant, delivery: dict[str, Any]
    ) -> list[Event]:
        """Start every workflow whose webhook start event names the `webhook_in` connector
        that received (and verified) this delivery, in the transaction that records its
        receipt (`conn`): an accepted delivery has started its instances, or was not accepted,
        and their `workflow.started` events' effects (audit entries, deliveries) are in it too.
        The payload becomes `vars.payload`; returns what is left to publish after commit."""
        version = await self.platform.metadata.active_version(tenant, delivery["app"])
        if version is None:
            return []
        started: list[Event] = []
        for name, doc in version.definition.get("workflows", {}).items():
            if not any(
                s["type"] == "webhook" and s.get("connector") == delivery["connector"]
                for s in doc.get("start", [])
            ):
                continue
            by = f"webhook:{delivery['connector']}"
            instance = await self.engine._create(
                conn,
                tenant.id,
                delivery["app"],
                name,
                version.number,
                doc,
                {
                    "payload": delivery.get("payload"),
                    "via": "webhook",
                    "delivery": delivery.get("delivery"),
                    "topic": delivery.get("topic"),
                },
                by,
                None,
                None,
            )
            log.info(
                "webhook delivery %s started workflow %s (%s)",
                delivery.get("delivery"),
                name,
                instance["id"],
            )
            started.append(
                Event(
                    "workflow.started",
                    tenant.id,
                    {
                        "app": delivery["app"],
                        "workflow": name,
                        "instance": instance["id"],
                        "version": version.number,
                        "by": by,
                    },
                )
            )
        return await self.engine.take_effect(conn, started)

    async def instances(
        self,
        tenant: Tenant,
        principal: Principal,
        app: str | None = None,
        workflow: str | None = None,
        status: str | None = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        """Instances of the tenant, newest first, filtered by app, workflow and status."""
        self._authorize(principal, "workflow.read", tenant, "workflow", app or "*")
        await self.engine.settle()
        i = store.instances
        query = sa.select(i).where(i.c.tenant_id == tenant.id)
        for column, value in ((i.c.app, app), (i.c.workflow, workflow), (i.c.status, status)):
            if value:
                query = query.where(column == value)
        async with self.platform.db.read() as conn:
            rows = await conn.execute(query.order_by(i.c.started_at.desc()).limit(limit))
            return [public(dict(r)) for r in rows.mappings()]

    async def instance(
        self, tenant: Tenant, instance_id: str, principal: Principal
    ) -> dict[str, Any]:
        """One instance with its timeline: every step with input, output, who and when."""
        self._authorize(principal, "workflow.read", tenant, "instance", instance_id)
        async with self.platform.db.read() as conn:
            inst = await self.engine._instance(conn, tenant.id, instance_id)
            steps = (
                await conn.execute(
                    store.steps.select()
                    .where(store.steps.c.instance_id == instance_id)
                    .order_by(store.steps.c.started_at, store.steps.c.id)
                )
            ).mappings()
            timeline = [dict(s) for s in steps]
            tasks = (
                await conn.execute(_tasks().where(store.tasks.c.instance_id == instance_id))
            ).mappings()
            by_step: dict[str, list[dict[str, Any]]] = {}
            for t in tasks:
                by_step.setdefault(t["step_id"], []).append(task_public(dict(t)))
        for s in timeline:
            s["tasks"] = by_step.get(s["id"], [])
        return {**public(inst), "vars": inst["vars"], "timeline": timeline}

    async def control(
        self, tenant: Tenant, instance_id: str, action: str, principal: Principal
    ) -> dict[str, Any]:
        """cancel | suspend | resume | retry an instance."""
        self._authorize(principal, f"workflow.{action}", tenant, "instance", instance_id)
        inst = await self.engine.set_status(tenant.id, instance_id, action, principal.audit_name())
        return public(inst)

    # -- tasks --------------------------------------------------------------------------------

    async def inbox(
        self,
        tenant: Tenant,
        principal: Principal,
        app: str | None = None,
        workflow: str | None = None,
    ) -> list[dict[str, Any]]:
        """Open tasks the caller may act on ("my tasks"), of one app or workflow if given.

        Someone whose roles carry no task work (a customer) has an empty inbox, not a refusal:
        an inbox is a list of what is theirs, and nothing is."""
        principal.check_tenant(tenant.id, tenant.slug)
        resource = Resource("task", "*", tenant_id=tenant.id)
        if not self.platform.authorizer.decide(principal, "task.read", resource).allowed:
            return []
        t, i = store.tasks, store.instances
        query = _tasks().where(t.c.tenant_id == tenant.id, t.c.status == "open")
        for column, value in ((i.c.app, app), (i.c.workflow, workflow)):
            if value:
                query = query.where(column == value)
        async with self.platform.db.read() as conn:
            rows = await conn.execute(query.order_by(t.c.created_at))
            mine = [dict(r) for r in rows.mappings() if may_act(dict(r), principal)]
            # One person, one vote: the other tasks of an approval they decided are not theirs.
            steps = {task["step_id"] for task in mine if task["kind"] == "approval"}
            voted: set[str] = set()
            if steps:
                voted = set(
                    (
                        await conn.execute(
                            sa.select(t.c.step_id).where(
                                t.c.step_id.in_(steps), t.c.decided_by == principal.audit_name()
                            )
                        )
                    ).scalars()
                )
        return [task_public(task) for task in mine if task["step_id"] not in voted]

    async def _task(self, conn: Any, tenant: Tenant, task_id: str) -> dict[str, Any]:
        query = _tasks().where(store.tasks.c.id == task_id, store.tasks.c.tenant_id == tenant.id)
        if conn.dialect.name == "postgresql":
            query = query.with_for_update(of=store.tasks)
        row = (await conn.execute(query)).mappings().first()
        if row is None:
            raise NotFound(f"No task {task_id!r}", path="task")
        task = dict(row)
        if task["status"] != "open":
            raise Conflict(f"The task is already {task['status']}", path="task")
        return task

    async def claim(self, tenant: Tenant, task_id: str, principal: Principal) -> dict[str, Any]:
        """Take a task so no one else works on it."""
        self._authorize(principal, "task.claim", tenant, "task", task_id)
        async with self.platform.db.transaction() as conn:
            task = await self._task(conn, tenant, task_id)
            if not may_act(task, principal):
                raise Forbidden("This task is not assigned to you", path="task")
            await conn.execute(
                store.tasks.update()
                .where(store.tasks.c.id == task_id)
                .values(claimed_by=principal.id)
            )
            by = principal.audit_name()
            events = await self._emit(conn, "task.claimed", tenant, task, by=by)
        await self._told(events)
        return task_public({**task, "claimed_by": principal.id})

    async def delegate(
        self,
        tenant: Tenant,
        task_id: str,
        to_user: str,
        principal: Principal,
        comment: str | None = None,
    ) -> dict[str, Any]:
        """Hand the task to another user; they alone may then decide it."""
        self._authorize(principal, "task.delegate", tenant, "task", task_id)
        async with self.platform.db.transaction() as conn:
            task = await self._task(conn, tenant, task_id)
            if not may_act(task, principal):
                raise Forbidden("This task is not assigned to you", path="task")
            assignee = {"user": to_user, "delegated_by": principal.audit_name()}
            await conn.execute(
                store.tasks.update()
                .where(store.tasks.c.id == task_id)
                .values(assignee=assignee, claimed_by=None, comment=comment)
            )
            events = await self._emit(
                conn,
                "task.delegated",
                tenant,
                task,
                to=to_user,
                by=principal.audit_name(),
                comment=comment,
            )
        await self._told(events)
        return task_public({**task, "assignee": assignee})

    async def complete(
        self,
        tenant: Tenant,
        task_id: str,
        principal: Principal,
        data: dict[str, Any] | None = None,
        decision: str | None = None,
        comment: str | None = None,
    ) -> dict[str, Any]:
        """Complete a user task with form data, or approve/reject an approval task."""
        action = {"approved": "task.approve", "rejected": "task.reject"}.get(
            decision or "", "task.complete"
        )
        self._authorize(principal, action, tenant, "task", task_id)
        now = time.time()
        async with self.platform.db.transaction() as conn:
            task = await self._task(conn, tenant, task_id)
            if not may_act(task, principal):
                raise Forbidden("This task is not assigned to you", path="task")
            if task["kind"] == "approval":
                if decision not in ("approved", "rejected"):
                    raise ValidationFailed.of([Fault("decision", "approve or reject", "required")])
                # One person, one vote: the same approver may not decide two tasks of a step.
                other = (
                    await conn.execute(
                        sa.select(store.tasks.c.id).where(
                            store.tasks.c.step_id == task["step_id"],
                            store.tasks.c.decided_by == principal.audit_name(),
                        )
                    )
                ).first()
                if other is not None:
                    raise Conflict("You already decided on this approval", path="task")
            else:
                inst = (
                    await conn.execute(
                        sa.select(store.instances.c.app, store.instances.c.version).where(
                            store.instances.c.id == task["instance_id"]
                        )
                    )
                ).one()
                version = await self.platform.metadata.version(tenant, inst.app, inst.version)
                schema = form_schema(task["form"], version.definition)
                found = faults(compile_schema(schema), data or {}, "data")
                if found:
                    raise ValidationFailed.of(found, "form data")
            await conn.execute(
                store.tasks.update()
                .where(store.tasks.c.id == task_id)
                .values(
                    status="done",
                    decision=decision or "completed",
                    data=data or {},
                    decided_by=principal.audit_name(),
                    comment=comment,
                    ended_at=now,
                )
            )
            await self.engine._queue(
                conn,
                task["instance_id"],
                task["step_id"],
                "resume",
                {"kind": "task", "task_id": task_id},
                now,
            )
            topic = {"task.approve": "task.approved", "task.reject": "task.rejected"}.get(
                action, "task.completed"
            )
            events = await self._emit(
                conn,
                topic,
                tenant,
                task,
                by=principal.audit_name(),
                comment=comment,
            )
        await self._told(events)
        return task_public({**task, "status": "done", "decision": decision or "completed"})


def public(inst: dict[str, Any]) -> dict[str, Any]:
    return {
        k: inst.get(k)
        for k in (
            "id",
            "app",
            "workflow",
            "business_key",
            "version",
            "status",
            "started_by",
            "started_at",
            "ended_at",
            "parent_step",
        )
    }


def _tasks() -> sa.Select[Any]:
    """Tasks with what people find them by: the app, the workflow and the instance's key."""
    t, i = store.tasks, store.instances
    return sa.select(t, i.c.app, i.c.workflow, i.c.business_key).join(i, i.c.id == t.c.instance_id)


def task_public(task: dict[str, Any]) -> dict[str, Any]:
    return {
        k: task.get(k)
        for k in (
            "id",
            "app",
            "workflow",
            "business_key",
            "instance_id",
            "step_id",
            "kind",
            "title",
            "status",
            "assignee",
            "form",
            "claimed_by",
            "decision",
            "decided_by",
            "comment",
            "data",
            "created_at",
        )
    }
