"""The internal event bus: layers publish facts ("app.published", "record.created"), others
subscribe.

Handlers run in order of subscription and are awaited, so a subscriber that must not lose an
event (the audit ledger) sees it before the publisher returns. A failing handler is logged and
never breaks the publisher.

Scaled out, some facts matter to every node: a publish on one node must make the others drop
their compiled app and policies. `plinth.cluster` relays such events through Redis; on the other
nodes they reach only the handlers subscribed with `cluster=True` (cache upkeep), never the
ones with effects that must happen once (the audit ledger, sealing, schedules).
"""

from __future__ import annotations

import fnmatch
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

log = logging.getLogger("plinth.events")


@dataclass(frozen=True)
class Event:
    topic: str
    tenant_id: str | None
    data: dict[str, Any] = field(default_factory=dict)
    remote: bool = False  # published on another node and relayed here
    # Its effects (the audit entry, webhook deliveries) were written in the transaction that
    # made it: the subscribers that would write them let it pass.
    effects_done: bool = False


Handler = Callable[[Event], Awaitable[None]]
# An effect of events written in the transaction that makes them (the audit ledger's entries,
# webhook deliveries): (that transaction, the tenant, its events) -> events to publish after.
Effect = Callable[["AsyncConnection", str, Sequence[Event]], Awaitable[list[Event]]]


def by_tenant(events: Iterable[Event]) -> dict[str, list[Event]]:
    """The events of each tenant, in order, tenants sorted: effects that lock each tenant's
    ledger chain (PostgreSQL) take the locks in this one order wherever they run (a dispatch,
    a workflow step, a schedule tick), so two transactions never wait for each other's (a
    deadlock)."""
    found: dict[str, list[Event]] = {}
    for event in events:
        found.setdefault(event.tenant_id or "", []).append(event)
    return dict(sorted(found.items()))


async def take_effects(
    effects: Sequence[Effect], conn: AsyncConnection, events: Sequence[Event]
) -> list[Event]:
    """Run `effects` for `events` in `conn`, the transaction of the change they tell of: a
    crash leaves the change with its effects, or neither. Returns what to publish once `conn`
    commits: `events` marked `effects_done` (their subscribers write nothing again; cache
    upkeep and other nodes still hear them), then what the effects return. With no effects
    (a service on its own) `events` go out as they are, for their subscribers to act on."""
    if not effects:
        return list(events)
    after: list[Event] = []
    for tenant_id, some in by_tenant(events).items():  # tenants in one order: no deadlock
        for effect in effects:
            after += await effect(conn, tenant_id, some)
    return [replace(e, effects_done=True) for e in events] + after


class EventBus:
    def __init__(self) -> None:
        self._handlers: list[tuple[str, Handler, bool]] = []
        # topic -> the handlers whose pattern matches it, in order (a publish matches each
        # pattern once per topic, not per event); rebuilt when the handlers change.
        self._matching: dict[str, list[tuple[Handler, bool]]] = {}
        # Added by the cluster relays (Redis or the change log, the sibling processes): each
        # is called with each local event after its local handlers.
        self.relays: list[Handler] = []

    def subscribe(self, pattern: str, handler: Handler, *, cluster: bool = False) -> None:
        """Call `handler` for every event whose topic matches `pattern` (`record.*`).

        `cluster=True`: also for matching events relayed from other nodes (`event.remote`).
        """
        self._handlers.append((pattern, handler, cluster))
        self._matching = {}

    def unsubscribe(self, handler: Handler) -> None:
        self._handlers = [h for h in self._handlers if h[1] is not handler]
        self._matching = {}

    async def publish(self, event: Event) -> None:
        await self._run(event, remote=False)
        for relay in list(self.relays):
            try:
                await relay(event)
            except Exception:  # other nodes catch up on their next cache miss at worst
                log.exception("relaying %s to other nodes failed", event.topic)

    async def deliver(self, event: Event) -> None:
        """An event another node published: only the cluster handlers see it."""
        await self._run(event, remote=True)

    async def _run(self, event: Event, *, remote: bool) -> None:
        matching = self._matching.get(event.topic)
        if matching is None:
            if len(self._matching) > 1024:  # topics are a small set; this bounds odd ones
                self._matching = {}
            matching = self._matching[event.topic] = [
                (handler, cluster)
                for pattern, handler, cluster in self._handlers
                if fnmatch.fnmatchcase(event.topic, pattern)
            ]
        # A handler (un)subscribing meanwhile replaces the list: this one is left as it was.
        for handler, cluster in matching:
            if cluster or not remote:
                try:
                    await handler(event)
                except Exception:  # a subscriber's bug must not fail the publisher
                    log.exception("event handler failed for %s", event.topic)
