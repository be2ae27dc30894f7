"""HTTP routes: start and inspect instances, control them, and the task inbox."""

from __future__ import annotations

from typing import Annotated, Any, Literal, Protocol

from fastapi import APIRouter, Body, Depends
from pydantic import BaseModel, ConfigDict, Field

from plinth.governance.http import PrincipalDep
from plinth.http import composed
from plinth.tenancy.http import TenantDep
from plinth.workflows.service import WorkflowService


class Services(Protocol):
    """What these routes use of the composition root (server/platform.py provides it)."""

    workflows: WorkflowService


PlatformDep = Annotated[Services, Depends(composed)]

router = APIRouter(prefix="/api/t/{tenant}", tags=["workflows"])


class DecisionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a field the decision does not have is a fault

    decision: Literal["approved", "rejected"]
    comment: str | None = Field(None, max_length=4000)


class DelegateIn(BaseModel):
    to: str = Field(description="The user who takes over the task")
    comment: str | None = None


@router.post("/apps/{app}/workflows/{workflow}/instances", status_code=201)
async def start(
    app: str,
    workflow: str,
    platform: PlatformDep,
    principal: PrincipalDep,
    tenant: TenantDep,
    input: dict[str, Any] = Body(default_factory=dict),
) -> dict[str, Any]:  # noqa: B008
    """Start a workflow by hand (or from a webhook) with initial variables."""
    return await platform.workflows.start(tenant, app, workflow, input, principal)


@router.post("/apps/{app}/workflows/{workflow}/webhook", status_code=202)
async def webhook(
    app: str,
    workflow: str,
    platform: PlatformDep,
    principal: PrincipalDep,
    tenant: TenantDep,
    payload: dict[str, Any] = Body(default_factory=dict),
) -> dict[str, Any]:  # noqa: B008
    """An incoming webhook starts the workflow with the payload as `vars.payload`."""
    return await platform.workflows.start(
        tenant, app, workflow, {"payload": payload}, principal, via="webhook"
    )


@router.get("/workflow-instances")
async def instances(
    platform: PlatformDep,
    principal: PrincipalDep,
    tenant: TenantDep,
    app: str | None = None,
    workflow: str | None = None,
    status: str | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Instances of the tenant, newest first, filtered by app, workflow and status."""
    return await platform.workflows.instances(
        tenant, principal, app, workflow, status, min(limit, 1000)
    )


@router.get("/workflow-instances/{instance_id}")
async def instance(
    instance_id: str, platform: PlatformDep, principal: PrincipalDep, tenant: TenantDep
) -> dict[str, Any]:
    """One instance and its timeline (every step with input, output, who and when)."""
    return await platform.workflows.instance(tenant, instance_id, principal)


@router.post("/workflow-instances/{instance_id}/{action}")
async def control(
    instance_id: str,
    action: Literal["cancel", "suspend", "resume", "retry"],
    platform: PlatformDep,
    principal: PrincipalDep,
    tenant: TenantDep,
) -> dict[str, Any]:
    """Cancel, suspend, resume, or retry an instance from its failed step."""
    return await platform.workflows.control(tenant, instance_id, action, principal)


@router.get("/tasks")
async def inbox(
    platform: PlatformDep,
    principal: PrincipalDep,
    tenant: TenantDep,
    app: str | None = None,
    workflow: str | None = None,
) -> list[dict[str, Any]]:
    """My tasks: the open tasks the caller may act on, of one app (and workflow) if given."""
    return await platform.workflows.inbox(tenant, principal, app, workflow)


@router.post("/tasks/{task_id}/claim")
async def claim(
    task_id: str, platform: PlatformDep, principal: PrincipalDep, tenant: TenantDep
) -> dict[str, Any]:
    """Take a task so no one else works on it."""
    return await platform.workflows.claim(tenant, task_id, principal)


@router.post("/tasks/{task_id}/complete")
async def complete(
    task_id: str,
    platform: PlatformDep,
    principal: PrincipalDep,
    tenant: TenantDep,
    data: dict[str, Any] = Body(default_factory=dict),
) -> dict[str, Any]:  # noqa: B008
    """Complete a user task with its form data (validated)."""
    return await platform.workflows.complete(tenant, task_id, principal, data)


@router.post("/tasks/{task_id}/decide")
async def decide(
    task_id: str,
    body: DecisionIn,
    platform: PlatformDep,
    principal: PrincipalDep,
    tenant: TenantDep,
) -> dict[str, Any]:
    """Approve or reject an approval task, with a comment."""
    return await platform.workflows.complete(
        tenant, task_id, principal, decision=body.decision, comment=body.comment
    )


@router.post("/tasks/{task_id}/delegate")
async def delegate(
    task_id: str,
    body: DelegateIn,
    platform: PlatformDep,
    principal: PrincipalDep,
    tenant: TenantDep,
) -> dict[str, Any]:
    """Hand a task to another user."""
    return await platform.workflows.delegate(tenant, task_id, body.to, principal, body.comment)
