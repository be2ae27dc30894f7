"""The internal event bus: layers publish facts ("app.published", "record.created"), others
subscribe. In-process here; the scale-out relay (Redis pub/sub) subscribes to it as well.

Handlers run in order of subscription and are awaited, so a subscriber that must not lose an
event (the audit ledger) sees it before the publisher returns. A failing handler is logged and
never breaks the publisher.
"""

from __future__ import annotations

import fnmatch
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("plinth.events")


@dataclass(frozen=True)
class Event:
    topic: str
    tenant_id: str | None
    data: dict[str, Any] = field(default_factory=dict)


Handler = Callable[[Event], Awaitable[None]]


class EventBus:
    def __init__(self) -> None:
        self._handlers: list[tuple[str, Handler]] = []

    def subscribe(self, pattern: str, handler: Handler) -> None:
        """Call `handler` for every event whose topic matches `pattern` (`record.*`)."""
        self._handlers.append((pattern, handler))

    def unsubscribe(self, handler: Handler) -> None:
        self._handlers = [(p, h) for p, h in self._handlers if h is not handler]

    async def publish(self, event: Event) -> None:
        for pattern, handler in list(self._handlers):
            if fnmatch.fnmatchcase(event.topic, pattern):
                try:
                    await handler(event)
                except Exception:  # a subscriber's bug must not fail the publisher
                    log.exception("event handler failed for %s", event.topic)
