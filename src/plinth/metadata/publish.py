"""The publish story: what happens, in order, when a draft becomes the active version.

Read it top to bottom. A publish (and a rollback, which re-activates an older version) goes
through six phases. The first four run steps inside the publish's own transaction: any step may
refuse by raising a PlinthError, and then nothing is written anywhere.

1. validate — the whole definition against each document kind's schema and semantic checks
   (built in, below: `ValidateStep`).
2. check    — what only the tenant can answer for: references to the plugins it installed
   (workflows' service tasks, pages' plugin elements), policy, and the tenant's compliance
   packs (critical violations refuse unless waived; remediation in the refusal).
3. compile  — the runtime compiles every entity (schemas, CEL, SQL) once for this version.
4. migrate  — the runtime plans the table changes from the active version by stable ids and
   applies them (on PostgreSQL in this same transaction; a tenant's SQLite file keeps its own
   transaction open and commits right after this one).
5. activate — the metadata service writes the version row and points the app at it; after the
   commit, the steps' `after_commit` hooks swap what they prepared into place (the compiled app,
   the tenant file's migration). If anything fails, `after_rollback` hooks undo it.
6. announce — `app.published` / `app.rolled_back` goes on the event bus: the audit ledger, the
   policy cache, workflows' triggers and every other node hear of it. Steps announce their own
   findings (e.g. `compliance.checked`) from their `after_commit` hooks.

Steps are registered on the instance the metadata service owns, by the composition root
(`server/platform.py`), each in its phase; inside a phase they run in registration order. A
phase the composition marks as required but nobody registered a step for fails loudly (a
platform that would publish versions without tables is a wiring fault, not a quiet skip).
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
Phase = Literal["validate", "check", "compile", "migrate"]
# The phases that run steps, in order; activate and announce are the service's own (above).
PHASES: tuple[Phase, ...] = ("validate", "check", "compile", "migrate")


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
    """One step of a phase: may add messages, register hooks, or raise to refuse."""

    name: str

    async def run(self, ctx: PublishContext, result: StepResult) -> None: ...


S = TypeVar("S", bound=Step)


class MissingPhase(RuntimeError):
    """A required publish phase has no step: the platform was wired without that layer."""


class Publishing:
    """The publish pipeline of one metadata service: its steps, phase by phase."""

    def __init__(self) -> None:
        self._phases: dict[Phase, list[Step]] = {phase: [] for phase in PHASES}
        self._required: set[Phase] = {"validate"}
        self.register("validate", ValidateStep())

    def register(self, phase: Phase, step: S) -> S:
        """Add `step` at the end of `phase`; a step of the same name is replaced in place."""
        steps = self._phases[phase]
        for i, old in enumerate(steps):
            if old.name == step.name:
                steps[i] = step
                return step
        self.unregister(step.name)
        steps.append(step)
        return step

    def unregister(self, name: str) -> None:
        for steps in self._phases.values():
            steps[:] = [s for s in steps if s.name != name]

    def require(self, *phases: Phase) -> None:
        """Make a publish without a step in each of `phases` fail loudly."""
        self._required.update(phases)

    def verify(self) -> None:
        """Raise MissingPhase if a required phase has no step."""
        missing = [p for p in PHASES if p in self._required and not self._phases[p]]
        if missing:
            raise MissingPhase(f"no publish step registered for phase(s): {', '.join(missing)}")

    def steps(self) -> list[tuple[Phase, Step]]:
        return [(phase, step) for phase in PHASES for step in self._phases[phase]]

    async def run(self, ctx: PublishContext) -> None:
        """Phases validate → check → compile → migrate, inside the publish transaction."""
        self.verify()
        for _phase, step in self.steps():
            result = StepResult(step.name)
            await step.run(ctx, result)
            ctx.results.append(result)


class ValidateStep:
    """Re-check the whole definition (schemas and every kind's semantic checks)."""

    name = "validate"

    async def run(self, ctx: PublishContext, result: StepResult) -> None:
        if ctx.reason == "rollback":
            result.status = "skipped"
            return
        definitions.check(ctx.definition)
