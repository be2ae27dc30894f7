"""The `workflows` publish step (phase `check`): references only the tenant can answer for.

The kind's own checks (kind.py) see the definition alone; a plugin is installed per tenant, so
whether a `service_task` may call it is decided here, when a tenant publishes: the plugin must
be installed and its installed version must provide the action.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from plinth.errors import Fault, ValidationFailed
from plinth.metadata.publish import PublishContext, StepResult
from plinth.tenancy.models import Tenant
from plinth.workflows import steps

# The tenant's installed plugins: name -> (installed version, the actions it provides).
InstalledActions = Callable[[Tenant], Awaitable[dict[str, tuple[str, frozenset[str]]]]]


class WorkflowStep:
    """Refuses a publish whose workflows call plugins the tenant has not installed.

    A rollback re-activates a version checked when it was published: not checked again, so an
    operator can always go back.
    """

    name = "workflows"

    def __init__(self, installed_actions: InstalledActions) -> None:
        self.installed_actions = installed_actions

    async def run(self, ctx: PublishContext, result: StepResult) -> None:
        calls = list(_plugin_calls(ctx.definition))
        if ctx.reason == "rollback" or not calls:
            result.status = "skipped"
            return
        installed = await self.installed_actions(ctx.tenant)
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
