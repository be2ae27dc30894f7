"""A circuit breaker per connector: after N consecutive failures the circuit opens and calls
fail fast for a while; then one trial call (half-open) decides whether it closes again.

Embedded, the state lives in the process (`Breaker`). Scaled out (`PLINTH_REDIS_URL`), every
node sees one state (`SharedBreaker`): the consecutive-failure count, an `open` key whose TTL
is the time left open, a `half` marker for the half-open state after it, and a `trial` key
taken with SET NX so exactly one node sends the trial call.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Any, Protocol

from redis.exceptions import RedisError

from plinth.integration.models import CircuitOpen

log = logging.getLogger("plinth.integration.breaker")

TRIAL_MS = 60_000  # a trial call that never reports back frees the slot after this
FORGET_MS = 600_000  # failure counts and the half-open marker expire when nobody calls


class CircuitBreaker(Protocol):
    async def before(self, what: str) -> None:
        """Raise CircuitOpen unless a call may go out now."""
        ...

    async def succeeded(self) -> None: ...

    async def failed(self) -> None: ...


def _open(what: str, failures: int | str, wait: int) -> CircuitOpen:
    return CircuitOpen(
        f"{what} failed {failures} times in a row; calls are paused for {wait} s",
        headers={"Retry-After": str(wait)},
        extra={"retry_after": wait},
    )


@dataclass
class Breaker:
    """The in-process breaker of one connector."""

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

    async def before(self, what: str) -> None:
        state = self.state
        if state == "closed":
            return
        if state == "half_open" and not self.trial_running:
            self.trial_running = True  # exactly one trial call while half-open
            return
        assert self.opened_at is not None
        wait = max(1, math.ceil(self.reset_seconds - (time.monotonic() - self.opened_at)))
        raise _open(what, self.failures, wait)

    async def succeeded(self) -> None:
        self.failures = 0
        self.opened_at = None
        self.trial_running = False

    async def failed(self) -> None:
        self.failures += 1
        if self.trial_running or self.failures >= self.failures_to_open:
            self.opened_at = time.monotonic()
        self.trial_running = False


class SharedBreaker:
    """The breaker of one connector in Redis, shared by every node; one object per call."""

    def __init__(self, redis: Any, key: str, failures_to_open: int, reset_seconds: float) -> None:
        self.redis = redis
        self.key = f"plinth:breaker:{key}"
        self.failures_to_open = failures_to_open
        self.reset_ms = max(1, int(reset_seconds * 1000))
        self.trial = False

    async def before(self, what: str) -> None:
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.pttl(f"{self.key}:open")
                pipe.exists(f"{self.key}:half")
                pipe.get(f"{self.key}:failures")
                left_ms, half, failures = await pipe.execute()
            trial = (
                bool(half)
                and left_ms <= 0
                and await self.redis.set(f"{self.key}:trial", "1", nx=True, px=TRIAL_MS)
            )
        except RedisError:
            # Redis away: the breaker cannot decide, so it lets calls through (their own
            # timeouts still bound them) rather than failing every connector.
            log.warning("circuit breaker state unavailable (Redis); call allowed")
            return
        if left_ms > 0:
            raise _open(what, int(failures or 0), max(1, math.ceil(left_ms / 1000)))
        if half:
            if trial:
                self.trial = True  # this call is the one trial while half-open
                return
            raise _open(what, int(failures or 0), 1)

    async def succeeded(self) -> None:
        try:
            await self.redis.delete(f"{self.key}:failures", f"{self.key}:half", f"{self.key}:trial")
        except RedisError:
            log.warning("circuit breaker state unavailable (Redis); success not recorded")

    async def failed(self) -> None:
        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.incr(f"{self.key}:failures")
                pipe.pexpire(f"{self.key}:failures", FORGET_MS)
                failures, _ = await pipe.execute()
            if self.trial or failures >= self.failures_to_open:
                async with self.redis.pipeline(transaction=True) as pipe:
                    pipe.set(f"{self.key}:open", "1", px=self.reset_ms)
                    pipe.set(f"{self.key}:half", "1", px=self.reset_ms + FORGET_MS)
                    pipe.delete(f"{self.key}:trial")
                    await pipe.execute()
        except RedisError:
            log.warning("circuit breaker state unavailable (Redis); failure not recorded")
        self.trial = False
