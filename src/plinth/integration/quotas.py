"""Rate limits and quotas per tenant, per API key and per app, on the `limits` library.

Counters live in process memory when embedded and in Redis when scaled out (so N nodes share
one budget). Limits come from gateway settings (`GatewaySettings`): a tenant's record and one
per app. Other layers call the quota hooks: `consume` for metered resources (plugin fuel,
connector calls per day) and `check_stock` for stored amounts (records).
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from limits import RateLimitItem, RateLimitItemPerDay, RateLimitItemPerSecond
from limits.aio.storage import MemoryStorage, RedisStorage
from limits.aio.strategies import SlidingWindowCounterRateLimiter

from plinth.errors import RateLimited
from plinth.integration.models import QuotaExceeded
from plinth.integration.settings import GatewaySettings
from plinth.settings import Settings

WINDOWS = {"per_second": RateLimitItemPerSecond, "per_day": RateLimitItemPerDay}


@dataclass(frozen=True)
class LoginLimits:
    """Budgets of password logins (brute-force protection).

    A username of a tenant gets `per_user` attempts per `user_seconds`; a correct password
    clears its count, so after `per_user` consecutive failures it is locked (any password, the
    right one too, is refused with 429) until the sliding window frees an attempt, which
    `Retry-After` announces. A client
    address gets `per_ip` attempts per `ip_seconds` across all tenants and usernames, so one
    client cannot spray guesses over many usernames either.
    """

    per_user: int = 5
    user_seconds: int = 900
    per_ip: int = 30
    ip_seconds: int = 60


@dataclass(frozen=True)
class Verdict:
    """The outcome of one rate-limit check, with what the `RateLimit-*` headers say."""

    allowed: bool
    limit: int = 0
    remaining: int = 0
    reset_after: int = 0  # seconds until the tightest window frees a slot
    policy: str = ""
    scope: str = ""
    until: float = 0.0  # refused: when (epoch seconds) the exhausted window frees a slot
    repeats: int = 0  # refusals since `until` was set: the client ignores Retry-After

    def headers(self) -> list[tuple[bytes, bytes]]:
        if not self.limit:
            return []
        found = [
            (b"ratelimit-limit", str(self.limit).encode()),
            (b"ratelimit-remaining", str(self.remaining).encode()),
            (b"ratelimit-reset", str(self.reset_after).encode()),
            (b"ratelimit-policy", self.policy.encode()),
        ]
        if not self.allowed:
            found.append((b"retry-after", str(max(1, self.reset_after)).encode()))
        return found


@dataclass
class _Items:
    # Parsed limit items per (scope, config) so a request only looks things up.
    cache: dict[tuple[str, int, str], RateLimitItem] = field(default_factory=dict)

    def get(self, window: str, amount: int, namespace: str) -> RateLimitItem:
        key = (window, amount, namespace)
        item = self.cache.get(key)
        if item is None:
            item = self.cache[key] = WINDOWS[window](amount, namespace=namespace)
        return item


class Quotas:
    """Decides rate limits and quotas; storage is memory (embedded) or Redis (scaled out).

    A refusal is remembered until the Retry-After it announced (at most `DENY_SECONDS`), so
    a client hammering an exhausted budget is refused again without any storage call: a
    flood costs the limiter nothing, in memory or on Redis.
    """

    deny_cache = True
    DENY_SECONDS = 5.0

    def __init__(
        self, settings: Settings, gateway: GatewaySettings, *, key_prefix: str = "plinth"
    ) -> None:
        self.gateway = gateway
        if settings.redis_url:
            uri = (
                "async+" + settings.redis_url
                if not settings.redis_url.startswith("async+")
                else settings.redis_url
            )
            self.storage: Any = RedisStorage(uri, implementation="redispy", key_prefix=key_prefix)
        else:
            self.storage = MemoryStorage()
        self.limiter = SlidingWindowCounterRateLimiter(self.storage)
        self._items = _Items()
        self._denied: dict[tuple[str, str], Verdict] = {}
        self.login_limits = LoginLimits()
        self._login_denied: dict[tuple[str, str], float] = {}

    async def hit(
        self, limits: Iterable[tuple[str, str, dict[str, int]]], cost: int = 1
    ) -> Verdict:
        """Count one request against every `(scope, identifier, {window: amount})` given.

        Denied if any window is exhausted; the headers describe the first window checked
        (the tenant's per-second one, normally), or the exhausted one.
        """
        limits = list(limits)
        if self.deny_cache and cost == 1 and self._denied:
            now = time.time()
            for scope, ident, _ in limits:
                found = self._denied.get((scope, ident))
                if found is not None and found.until > now:
                    found = self._denied[(scope, ident)] = replace(
                        found,
                        reset_after=max(1, math.ceil(found.until - now)),
                        repeats=found.repeats + 1,
                    )
                    return found
        described: Verdict | None = None
        for scope, ident, windows in limits:
            for window, amount in windows.items():
                if not amount or window not in WINDOWS:
                    continue
                item = self._items.get(window, int(amount), scope)
                allowed = await self.limiter.hit(item, ident, cost=cost)
                # Window stats cost a storage round trip: fetched for the first window (the
                # headers describe it) and for a refusal only.
                if allowed and described is not None:
                    continue
                stats = await self.limiter.get_window_stats(item, ident)
                now = time.time()
                reset = max(0, math.ceil(stats.reset_time - now))
                verdict = Verdict(
                    allowed,
                    int(amount),
                    stats.remaining,
                    reset,
                    f"{amount};w={item.get_expiry()}",
                    scope,
                )
                if not allowed:
                    # Refused until the Retry-After it announces: a client told to wait is
                    # refused from memory until then.
                    verdict = replace(verdict, until=now + min(max(1, reset), self.DENY_SECONDS))
                    if self.deny_cache and cost == 1:
                        if len(self._denied) > 10_000:
                            self._denied = {k: v for k, v in self._denied.items() if v.until > now}
                        self._denied[(scope, ident)] = verdict
                    return verdict
                described = verdict
        return described or Verdict(True)

    # -- password logins -----------------------------------------------------------------------

    def _login_items(self) -> list[tuple[str, RateLimitItem]]:
        lim = self.login_limits
        return [
            ("login-ip", RateLimitItemPerSecond(lim.per_ip, lim.ip_seconds, "login-ip")),
            ("login-user", RateLimitItemPerSecond(lim.per_user, lim.user_seconds, "login-user")),
        ]

    async def login_attempt(self, tenant_id: str | None, username: str, client: str | None) -> None:
        """Count one password login attempt against the client address and the tenant's
        username (before the password is checked); raise `LoginThrottled` (429 +
        Retry-After) once either budget is used up. its `repeat` says whether this
        refusal falls in a lockout already refused (callers audit the first one only)."""
        idents = {
            "login-ip": client or "unknown",
            "login-user": f"{tenant_id}:{username.casefold()}" if tenant_id else "",
        }
        now = time.time()
        for scope, item in self._login_items():
            ident = idents[scope]
            if not ident:
                continue
            until = self._login_denied.get((scope, ident), 0.0)
            if until > now:
                raise _login_refused(scope, until - now, repeat=True)
            if await self.limiter.hit(item, ident):
                continue
            stats = await self.limiter.get_window_stats(item, ident)
            wait = max(1.0, stats.reset_time - now)
            if len(self._login_denied) > 10_000:
                self._login_denied = {k: v for k, v in self._login_denied.items() if v > now}
            self._login_denied[(scope, ident)] = now + wait
            raise _login_refused(scope, wait, repeat=False)

    async def login_succeeded(self, tenant_id: str, username: str) -> None:
        """A correct password: the username's count of attempts starts again."""
        _, item = self._login_items()[1]
        ident = f"{tenant_id}:{username.casefold()}"
        await self.limiter.clear(item, ident)
        self._login_denied.pop(("login-user", ident), None)

    # -- quota hooks other layers call --------------------------------------------------------

    async def consume(self, tenant_id: str, resource: str, amount: int = 1) -> Verdict:
        """Meter `amount` of `resource` (e.g. plugin_fuel) against the tenant's quota; 429 if
        the quota for the day (or second) is used up."""
        config = (await self.gateway.for_tenant_id(tenant_id)).get("quotas", {})
        windows = {k: v for k, v in config.get(resource, {}).items() if k in WINDOWS}
        if not windows:
            return Verdict(True)
        verdict = await self.hit([(f"quota-{resource}", tenant_id, windows)], cost=amount)
        if not verdict.allowed:
            raise QuotaExceeded(
                f"The tenant's {resource} quota ({verdict.limit} per "
                f"{'day' if 'w=86400' in verdict.policy else 'second'}) is used up",
                path=f"quotas.{resource}",
                extra={"resource": resource},
                headers={"Retry-After": str(max(1, verdict.reset_after))},
            )
        return verdict

    async def check_stock(
        self, tenant_id: str, resource: str, current: int, adding: int = 1
    ) -> None:
        """Refuse growing a stored amount (e.g. records) beyond the tenant's maximum."""
        config = (await self.gateway.for_tenant_id(tenant_id)).get("quotas", {})
        maximum = config.get(resource, {}).get("max")
        if maximum is not None and current + adding > maximum:
            raise QuotaExceeded(
                f"The tenant may store at most {maximum} {resource}; it has {current}",
                path=f"quotas.{resource}",
                extra={"resource": resource, "max": maximum},
            )

    async def close(self) -> None:
        """Release the Redis connection pool, if any."""
        if isinstance(self.storage, RedisStorage):
            with contextlib.suppress(Exception):  # closing on shutdown is best effort
                client = getattr(self.storage.bridge, "storage", None)
                if client is not None:
                    await client.aclose()


class LoginThrottled(RateLimited):
    code = "login_throttled"
    repeat = False  # refused again within a lockout already refused (and audited)


def _login_refused(scope: str, wait: float, repeat: bool) -> LoginThrottled:
    seconds = max(1, math.ceil(wait))
    what = "from this address" if scope == "login-ip" else "for this username"
    error = LoginThrottled(
        f"Too many sign-in attempts {what}; try again in {seconds} s",
        path="username" if scope == "login-user" else None,
        extra={"scope": scope, "retry_after": seconds},
        headers={"Retry-After": str(seconds)},
    )
    error.repeat = repeat
    return error


def too_many(verdict: Verdict, what: str) -> RateLimited:
    """The 429 for a refused verdict, carrying Retry-After and the RateLimit headers."""
    headers = {k.decode().title(): v.decode() for k, v in verdict.headers()}
    return RateLimited(
        f"Too many requests for this {what}: {verdict.limit} per "
        f"{'day' if 'w=86400' in verdict.policy else 'second'}; retry after "
        f"{max(1, verdict.reset_after)} s",
        extra={"scope": verdict.scope},
        headers=headers,
    )
