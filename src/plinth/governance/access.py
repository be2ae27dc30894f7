"""The one authorization seam: `authorize(principal, action, resource)`.

Until Cedar policies arrive (governance issue), decisions come from the built-in roles. Every
enforcement point already calls through here, so swapping the decider changes no call site.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from plinth.errors import Forbidden
from plinth.governance.principal import PLATFORM_ADMIN, Principal

READ = {"tenant.read", "app.read", "draft.read", "version.read", "data.read"}
DESIGN = READ | {"draft.edit", "app.publish", "app.rollback", "app.create"}
TASKS = {
    "workflow.read",
    "task.read",
    "task.claim",
    "task.complete",
    "task.approve",
    "task.reject",
    "task.delegate",
}  # a task is further limited to its assignees
WORKFLOWS = TASKS | {
    "workflow.start",
    "workflow.cancel",
    "workflow.suspend",
    "workflow.resume",
    "workflow.retry",
}
ROLE_ACTIONS: dict[str, set[str]] = {
    "owner": DESIGN
    | WORKFLOWS
    | {
        "app.delete",
        "token.manage",
        "data.create",
        "data.update",
        "data.delete",
        "plugin.install",
        "plugin.execute",
        "connector.call",
    },
    "designer": DESIGN
    | WORKFLOWS
    | {"data.create", "data.update", "data.delete", "plugin.execute", "connector.call"},
    "analyst": READ | TASKS | {"data.create", "data.update", "plugin.execute", "workflow.start"},
    "viewer": READ,
}


# What an authorizer's `row_filter` may answer besides a filter AST or None (all rows):
DENY_ALL: dict[str, Any] = {"or": []}  # no row can be allowed
PER_ROW = "per_row"  # the policy cannot become SQL: check every row


@dataclass(frozen=True)
class Resource:
    kind: str  # "tenant", "app", "record" …
    id: str
    tenant_id: str | None = None
    attrs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reasons: tuple[str, ...] = ()
    policies: tuple[str, ...] = ()  # ids of the policies that decided (for explanations)


# Told of every denial: (principal, action, resource, decision).
DenialHook = Callable[[Principal, str, "Resource", "Decision"], None]


class Authorizer(Protocol):
    def decide(
        self,
        principal: Principal,
        action: str,
        resource: Resource,
        context: dict[str, Any] | None = None,
    ) -> Decision: ...


class RoleAuthorizer:
    """Built-in roles: a platform admin may do anything; tenant roles within their tenant."""

    def decide(
        self,
        principal: Principal,
        action: str,
        resource: Resource,
        context: dict[str, Any] | None = None,
    ) -> Decision:
        if PLATFORM_ADMIN in principal.roles:
            return Decision(True, ("role:platform_admin",))
        if resource.tenant_id is not None and resource.tenant_id != principal.tenant_id:
            return Decision(False, ("tenant-mismatch",))
        for role in principal.roles:
            if action in ROLE_ACTIONS.get(role, set()):
                return Decision(True, (f"role:{role}",))
        return Decision(False, ())


def authorize(
    authorizer: Authorizer,
    principal: Principal,
    action: str,
    resource: Resource,
    context: dict[str, Any] | None = None,
) -> Decision:
    """Decide, and raise Forbidden (naming the action, not policy internals) on a denial."""
    return enforce(
        authorizer,
        principal,
        action,
        resource,
        authorizer.decide(principal, action, resource, context),
    )


def enforce(
    authorizer: Authorizer,
    principal: Principal,
    action: str,
    resource: Resource,
    decision: Decision,
) -> Decision:
    """Raise Forbidden for a denial reached any way (a decision, an empty row filter)."""
    if not decision.allowed:
        on_denied = getattr(authorizer, "on_denied", None)
        if on_denied is not None:  # the audit ledger records every denial
            on_denied(principal, action, resource, decision)
        raise Forbidden(f"You may not {action} on this {resource.kind}", extra={"action": action})
    return decision
