"""The publish pipeline: an ordered list of named steps that later layers extend.

A step is a small object with a `name`, an `order` and `async run(ctx)`. It may add messages
to its result, register work to run after commit, or raise a PlinthError to refuse the publish
(nothing is written then). Built-in: `validate` (100). Later layers register theirs, e.g.
policy (200), compliance (300), compile (400), migrate (500). Activation always comes last.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection

from plinth.governance.principal import Principal
from plinth.metadata import definition as definitions
from plinth.metadata.models import App, Version
from plinth.tenancy.models import Tenant

Reason = Literal["publish", "rollback"]


@dataclass
class StepResult:
    step: str
    status: Literal["passed", "warning", "skipped"] = "passed"
    messages: list[dict[str, Any]] = field(default_factory=list)

    def warn(self, path: str, message: str, code: str = "warning") -> None:
        self.status = "warning"
        self.messages.append({"path": path, "message": message, "code": code})

    def info(self, message: str, **data: Any) -> None:
        self.messages.append({"message": message, **data})

    def as_dict(self) -> dict[str, Any]:
        return {"step": self.step, "status": self.status, "messages": self.messages}


@dataclass
class PublishContext:
    tenant: Tenant
    app: App
    principal: Principal | None
    reason: Reason
    number: int  # the version being created (publish) or activated (rollback)
    definition: definitions.Definition  # what becomes active
    previous: Version | None  # what was active before
    options: dict[str, Any]
    conn: AsyncConnection  # the platform transaction the version is written in
    results: list[StepResult] = field(default_factory=list)
    state: dict[str, Any] = field(default_factory=dict)  # steps hand data to later steps
    after_commit: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    after_rollback: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    @property
    def previous_definition(self) -> definitions.Definition:
        return self.previous.definition if self.previous else {}


class Step(Protocol):
    name: str
    order: int

    async def run(self, ctx: PublishContext, result: StepResult) -> None: ...


_steps: dict[str, Step] = {}


S = TypeVar("S", bound=Step)


def register_step(step: S) -> S:
    """Add (or replace, by name) a publish step."""
    _steps[step.name] = step
    return step


def steps() -> list[Step]:
    return sorted(_steps.values(), key=lambda s: (s.order, s.name))


class ValidateStep:
    """Re-check the whole definition (schemas and every kind's semantic checks)."""

    name = "validate"
    order = 100

    async def run(self, ctx: PublishContext, result: StepResult) -> None:
        if ctx.reason == "rollback":
            result.status = "skipped"
            return
        definitions.check(ctx.definition)


register_step(ValidateStep())
