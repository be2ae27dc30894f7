"""The `workflows` publish step (order 150): references only the tenant can answer for.

The kind's own checks (kind.py) see the definition alone; a plugin is installed per tenant, so
whether a `service_task` may call it is decided here, when a tenant publishes: the plugin must
be installed and its installed version must provide the action.
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING, Any

from plinth.errors import Fault, ValidationFailed
from plinth.metadata.pipeline import PublishContext, StepResult, register_step
from plinth.workflows import steps

if TYPE_CHECKING:
    from plinth.workflows.service import WorkflowService


class WorkflowStep:
    """Refuses a publish whose workflows call plugins the tenant has not installed.

    The pipeline is process-wide while services belong to a platform, so the step finds the
    service of the platform whose database the publish runs in (tests run several platforms).
    A rollback re-activates a version checked when it was published: not checked again, so an
    operator can always go back.
    """

    name = "workflows"
    order = 150

    def __init__(self) -> None:
        self._services: weakref.WeakValueDictionary[int, WorkflowService] = (
            weakref.WeakValueDictionary()
        )

    def attach(self, service: WorkflowService) -> None:
        self._services[id(service.platform.db.engine.sync_engine)] = service

    async def run(self, ctx: PublishContext, result: StepResult) -> None:
        service = self._services.get(id(ctx.conn.engine.sync_engine))
        calls = list(_plugin_calls(ctx.definition))
        if ctx.reason == "rollback" or service is None or not calls:
            result.status = "skipped"
            return
        installed = await service.platform.plugins.actions(ctx.tenant)
        task = steps.get("service_task")
        found: list[Fault] = []
        for path, spec in calls:
            found += task.check_plugin(spec, path, installed)  # type: ignore[attr-defined]
        if found:
            raise ValidationFailed.of(found, "draft")
        result.info(f"{len(calls)} plugin call(s) checked against the tenant's installations")


def _plugin_calls(definition: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [
        (f"workflows.{name}.nodes.{node}", spec)
        for name, doc in definition.get("workflows", {}).items()
        for node, spec in doc.get("nodes", {}).items()
        if spec.get("type") == "service_task" and spec.get("action") == "plugin"
    ]


STEP = WorkflowStep()
register_step(STEP)
