"""A circuit breaker per connector: after N consecutive failures the circuit opens and calls
fail fast for a while; then one trial call (half-open) decides whether it closes again."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from plinth.integration.models import CircuitOpen


@dataclass
class Breaker:
    failures_to_open: int = 5
    reset_seconds: float = 30.0
    failures: int = 0
    opened_at: float | None = None
    trial_running: bool = False

    @property
    def state(self) -> str:
        if self.opened_at is None:
            return "closed"
        if time.monotonic() - self.opened_at >= self.reset_seconds:
            return "half_open"
        return "open"

    def before(self, what: str) -> None:
        """Raise CircuitOpen unless a call may go out now."""
        state = self.state
        if state == "closed":
            return
        if state == "half_open" and not self.trial_running:
            self.trial_running = True  # exactly one trial call while half-open
            return
        assert self.opened_at is not None
        wait = max(1, math.ceil(self.reset_seconds - (time.monotonic() - self.opened_at)))
        raise CircuitOpen(f"{what} failed {self.failures} times in a row; calls are paused "
                          f"for {wait} s", headers={"Retry-After": str(wait)},
                          extra={"retry_after": wait})

    def succeeded(self) -> None:
        self.failures = 0
        self.opened_at = None
        self.trial_running = False

    def failed(self) -> None:
        self.failures += 1
        if self.trial_running or self.failures >= self.failures_to_open:
            self.opened_at = time.monotonic()
        self.trial_running = False
