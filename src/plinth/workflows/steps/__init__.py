"""Workflow node types, one file each, registered by name (NocoBase's instructions shape).

A step type implements `run(ctx)` (the node is entered) and `resume(ctx, signal)` (a task was
decided, a timer fired, a child workflow ended) and returns an `Outcome` the engine applies in
one transaction. `targets` and `check` let the publish-time checks walk and verify the graph.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from plinth.errors import Fault
from plinth.expressions import Environment, Type
from plinth.workflows.ports import Services

# Every workflow expression sees `vars` (the instance variables), `record` (the triggering
# record, if any) and `now` (epoch seconds).
EXPRESSIONS = Environment(
    {
        "vars": Type.Map(Type.STRING, Type.DYN),
        "record": Type.Map(Type.STRING, Type.DYN),
        "now": Type.DOUBLE,
    }
)


def check(source: Any, path: str, want: str | None = None) -> list[Fault]:
    """Faults of a workflow expression (does not compile, or is not of type `want`)."""
    return EXPRESSIONS.check(source, path, want)


def evaluate(source: str, variables: dict[str, Any], record: dict[str, Any] | None = None) -> Any:
    """The plain value of a workflow expression over the instance variables and record."""
    return EXPRESSIONS.value(
        source, {"vars": variables, "record": record or {}, "now": time.time()}
    )


@dataclass
class Outcome:
    """What entering or resuming a node led to; the engine persists it atomically."""

    next: list[str] = field(default_factory=list)  # nodes to enter next
    vars: dict[str, Any] = field(default_factory=dict)  # variable updates
    output: Any = None  # recorded on the step (timeline)
    wait: bool = False  # the step stays open (tasks, timers, child)
    tasks: list[dict[str, Any]] = field(default_factory=list)  # human tasks to open
    timer: tuple[str, float] | None = None  # (name, epoch seconds) to resume at
    end: str | None = None  # "completed" | "failed": the instance ends
    join: str | None = None  # the split this arrival belongs to (engine counts arrivals)
    child: dict[str, Any] | None = None  # {"workflow", "input"}: start a sub-workflow
    close_tasks: bool = True  # on leaving a step, its open tasks are cancelled
    reassign: dict[str, Any] | None = None  # escalation: new assignee for open tasks
    by: str | None = None  # who moved the step (set by the engine from the deciding task)


@dataclass
class StepContext:
    """What a step sees: its node, the instance variables and the services it may call."""

    node: str
    spec: dict[str, Any]
    vars: dict[str, Any]
    record: dict[str, Any] | None
    instance: dict[str, Any]
    step_id: str
    attempt: int
    tasks: list[dict[str, Any]]
    effect: Callable[[Callable[[str], Awaitable[Any]]], Awaitable[Any]]
    services: Services  # records, plugins, connectors, compliance (workflows/ports.py)
    tenant: Any
    principal: Any


class Step(Protocol):
    type: str

    def targets(self, spec: dict[str, Any]) -> list[str]: ...

    def check(self, spec: dict[str, Any], path: str, definition: dict[str, Any]) -> list[Fault]: ...

    async def run(self, ctx: StepContext) -> Outcome: ...

    async def resume(self, ctx: StepContext, signal: dict[str, Any]) -> Outcome: ...


class Base:
    """Defaults: one `next` edge, no extra checks, nothing to resume."""

    type = ""

    def targets(self, spec: dict[str, Any]) -> list[str]:
        return [t for t in (spec.get("next"), spec.get("on_error")) if t]

    def check(self, spec: dict[str, Any], path: str, definition: dict[str, Any]) -> list[Fault]:
        return []

    async def resume(self, ctx: StepContext, signal: dict[str, Any]) -> Outcome:
        return Outcome(wait=True, close_tasks=False)


def follow(spec: dict[str, Any]) -> list[str]:
    return [spec["next"]] if spec.get("next") else []


_steps: dict[str, Step] = {}
_watchers: list[Callable[[], None]] = []  # told when the node types change (the schema)


def register(step: Step) -> Step:
    """Add (or replace, by type name) a node type."""
    _steps[step.type] = step
    _changed()
    return step


def unregister(type_name: str) -> None:
    _steps.pop(type_name, None)
    _changed()


def watch(watcher: Callable[[], None]) -> None:
    """Call `watcher` now and whenever a node type is registered or removed."""
    _watchers.append(watcher)
    watcher()


def _changed() -> None:
    for watcher in _watchers:
        watcher()


def get(type_name: str) -> Step:
    return _steps[type_name]


def types() -> list[str]:
    return sorted(_steps)


for _name in (
    "assign",
    "gateway",
    "parallel",
    "join",
    "timer",
    "end",
    "service_task",
    "user_task",
    "approval",
    "subworkflow",
):
    importlib.import_module(f"plinth.workflows.steps.{_name}")
