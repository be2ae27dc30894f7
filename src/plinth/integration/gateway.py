"""The gateway: pure ASGI middleware in front of `/api` and app routes.

Per request it resolves the tenant (from `/api/t/{tenant}` or a custom domain, whose paths are
rewritten to the tenant's), answers CORS for the app, counts the request against the tenant's,
the API key's and the app's rate limits, caps the tenant's concurrent requests, enforces the
time limit (504) and writes one structured access-log line. Authentication itself stays in the
routes (`governance/http.py`).

Fairness, so one tenant hammering the platform does not slow the others:
- refusals are cheap: no database, no authentication, and a budget already exhausted is
  refused from memory without asking the limiter's storage (`Quotas.deny_cache`);
- a client that keeps coming back before its Retry-After is held until then (at most
  `MAX_HOLD` seconds, `MAX_HELD` such requests per process) before its 429, much as
  nginx's `limit_req` delays excess requests: a flood that ignores Retry-After is slowed to
  its budget instead of keeping the event loop busy with refusals; a held request is a
  sleeping task and holds no in-flight slot;
- fair admission: when the process has `capacity` requests in flight, a tenant holding its
  fair share of them (capacity / tenants in flight) is refused with 503 + Retry-After, so
  one tenant cannot take every slot while the others wait behind it;
- guards: other layers may refuse a tenant's request from memory before any work of theirs
  (the plugin executor refuses a tenant whose plugin queue is full: `Guard`). Such a refusal
  costs no authentication, routing nor body parsing; a tenant that keeps coming back before
  the Retry-After it was told is held until then, asked again, and served if there is room.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import random
import re
import time
from collections.abc import Callable, Sequence
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from plinth.errors import PlinthError, RateLimited, Unavailable
from plinth.integration.models import CorsRefused, GatewayTimeout
from plinth.integration.quotas import Quotas, Verdict, too_many
from plinth.integration.settings import TenantGate

access_log = logging.getLogger("plinth.access")
PROBLEM = b"application/problem+json"
# (tenant id, method, path) -> the refusal of the request, or None to let it through. Called
# for every request of a known tenant that passed its rate limits: must answer from memory.
Guard = Callable[[str, str, str], PlinthError | None]
TENANT_PATH = re.compile(r"^/api/t/([a-z][a-z0-9-]{1,39})(?:/apps/([a-z][a-z0-9-]{1,39}))?")


class Gateway:
    """Tenant resolution, CORS, rate limits, concurrency, time limit and access logs."""

    HOLD_AFTER = 3  # refusals ignored before a client's next ones are held
    MAX_HOLD = 1.0
    MAX_HELD = 1000
    capacity = 128  # requests in flight in this process before fair shares apply

    def __init__(self, app: ASGIApp, quotas: Quotas, guards: Sequence[Guard] = ()) -> None:
        self.app = app
        self.settings = quotas.gateway
        self.quotas = quotas
        self.guards = tuple(guards)
        self._in_flight: dict[str, int] = {}  # tenant id -> requests in flight (> 0 only)
        self._total = 0
        self._held = 0
        # tenant id -> (until: the Retry-After of its last guard refusal, refusals since)
        self._guarded: dict[str, tuple[float, int]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started_at = time.perf_counter()
        state = scope.setdefault("state", {})
        record: dict[str, Any] = {"status": 0, "bytes": 0}
        gate: TenantGate | None = None
        app_slug: str | None = None
        try:
            gate, app_slug = await self._resolve(scope)
            await self._serve(scope, receive, send, gate, app_slug, record)
        finally:
            self._log(scope, state, record, gate, app_slug, started_at)

    async def _resolve(self, scope: Scope) -> tuple[TenantGate | None, str | None]:
        path: str = scope["path"]
        match = TENANT_PATH.match(path)
        if match is None and path.startswith("/api/") and not path.startswith("/api/t/"):
            host = _host(scope)
            if host and host not in ("localhost", "127.0.0.1", "testserver"):
                slug = await self.settings.host_tenant(host)
                if slug is not None:
                    # A custom domain exposes its tenant only: /api/x → /api/t/{slug}/x.
                    scope["path"] = f"/api/t/{slug}{path[4:]}"
                    scope["raw_path"] = scope["path"].encode()
                    match = TENANT_PATH.match(scope["path"])
        if match is None:
            return None, None
        # A read of an app's data starts with the tenant's data made ready (see `tenant`).
        reads = match.group(2) is not None and scope["method"] == "GET"
        bearer = _bearer(scope) if reads else None
        gate = await self.settings.tenant(match.group(1), bearer)
        if gate is not None:
            scope["state"]["tenant_id"] = gate.id
            scope["state"]["tenant_slug"] = gate.slug
        return gate, match.group(2)

    async def _serve(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        gate: TenantGate | None,
        app_slug: str | None,
        record: dict[str, Any],
    ) -> None:
        request_id = scope["state"].get("request_id")
        app_config = gate.apps.get(app_slug, {}) if gate and app_slug else {}
        cors = app_config.get("cors")
        origin = _header(scope, b"origin")
        if (
            cors
            and origin
            and scope["method"] == "OPTIONS"
            and _header(scope, b"access-control-request-method")
        ):
            await _preflight(send, cors, origin, record)
            return
        extra_headers: list[tuple[bytes, bytes]] = []
        if cors and origin and _origin_allowed(cors, origin):
            extra_headers += _cors_headers(cors, origin)
        verdict = Verdict(True)
        if gate is not None:
            verdict = await self._limit(scope, gate, app_slug, app_config)
            if not verdict.allowed:
                if verdict.repeats >= self.HOLD_AFTER and self._held < self.MAX_HELD:
                    await self._hold(verdict)
                what = {"api_key": "API key", "app": "app"}.get(verdict.scope, "tenant")
                await _problem(send, too_many(verdict, what), request_id, record, extra_headers)
                return
            extra_headers += verdict.headers()
            refused = await self._guard(scope, gate) if self.guards else None
            refused = refused or self._admit(gate)
            if refused is not None:
                await _problem(send, refused, request_id, record, extra_headers)
                return
        timeout = float(
            app_config.get("timeout_seconds")
            or (gate.config if gate else self.settings.defaults).get("timeout_seconds")
            or 30
        )
        started = False

        async def send_through(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                record["status"] = message["status"]
                if extra_headers:
                    message["headers"] = [*message.get("headers", []), *extra_headers]
            elif message["type"] == "http.response.body":
                record["bytes"] += len(message.get("body", b""))
            await send(message)

        if gate is not None:
            self._in_flight[gate.id] = self._in_flight.get(gate.id, 0) + 1
            self._total += 1
        try:
            async with asyncio.timeout(timeout):
                await self.app(scope, receive, send_through)
        except TimeoutError:
            if started:
                raise  # the response is half-sent: all we can do is drop the connection
            timed_out = GatewayTimeout(f"The request took longer than {timeout:g} s")
            await _problem(send, timed_out, request_id, record, extra_headers)
        finally:
            if gate is not None:
                self._total -= 1
                left = self._in_flight[gate.id] - 1
                if left:
                    self._in_flight[gate.id] = left
                else:
                    del self._in_flight[gate.id]

    async def _guard(self, scope: Scope, gate: TenantGate) -> PlinthError | None:
        """A guard's refusal of this request, if any; a tenant that ignores the Retry-After of
        its last refusal is held until then and asked again."""
        refused = self._ask_guards(gate.id, scope["method"], scope["path"])
        if refused is None:
            return None
        now = time.monotonic()
        until, repeats = self._guarded.get(gate.id, (0.0, 0))
        if until > now:
            repeats += 1
        else:
            retry = refused.headers.get("Retry-After", "1")
            until, repeats = now + min(self.MAX_HOLD, float(retry) if retry.isdigit() else 1), 0
            if len(self._guarded) > 10_000:
                self._guarded = {k: v for k, v in self._guarded.items() if v[0] > now}
        self._guarded[gate.id] = (until, repeats)
        if repeats < self.HOLD_AFTER or self._held >= self.MAX_HELD:
            return refused
        self._held += 1
        try:
            # Released at random over the next MAX_HOLD, not all at `until`: a flood's requests
            # are held together, and answered together they would take turns of the event
            # loop back to back, with every other tenant's request waiting behind them (and
            # the flood's client sending them back together, to be held together again).
            await asyncio.sleep(until - now + random.uniform(0, self.MAX_HOLD))
        finally:
            self._held -= 1
        return self._ask_guards(gate.id, scope["method"], scope["path"])

    def _ask_guards(self, tenant_id: str, method: str, path: str) -> PlinthError | None:
        for guard in self.guards:
            refused = guard(tenant_id, method, path)
            if refused is not None:
                return refused
        return None

    def _admit(self, gate: TenantGate) -> PlinthError | None:
        """The refusal for a tenant over its concurrency cap or its fair share, if any."""
        held = self._in_flight.get(gate.id, 0)
        limit = gate.config.get("limits", {}).get("max_concurrent")
        if limit and held >= limit:
            return RateLimited(
                f"This tenant has {limit} requests in flight; retry shortly",
                extra={"scope": "concurrency"},
                headers={"Retry-After": "1"},
            )
        if held and self._total >= self.capacity:
            share = max(1, self.capacity // max(1, len(self._in_flight)))
            if held >= share:
                return Unavailable(
                    f"The server is busy and this tenant holds {held} of its "
                    f"{self._total} requests in flight; retry shortly",
                    extra={"scope": "fair_share"},
                    headers={"Retry-After": "1"},
                )
        return None

    async def _hold(self, verdict: Verdict) -> None:
        # The client came back before its Retry-After: let it wait out the window here.
        self._held += 1
        try:
            await asyncio.sleep(min(self.MAX_HOLD, max(0.0, verdict.until - time.time())))
        finally:
            self._held -= 1

    async def _limit(
        self, scope: Scope, gate: TenantGate, app_slug: str | None, app_config: dict[str, Any]
    ) -> Verdict:
        limits = gate.config.get("limits", {})
        checks: list[tuple[str, str, dict[str, int]]] = [
            (
                "tenant",
                gate.id,
                {k: v for k, v in limits.items() if k in ("per_second", "per_day") and v},
            )
        ]
        key_limits = limits.get("api_key")
        if key_limits:
            credential = _header(scope, b"authorization")
            if credential:
                # Identify the key by a hash: the credential itself is never kept or logged.
                ident = hashlib.sha256(credential.encode()).hexdigest()[:24]
                checks.append(("api_key", f"{gate.id}:{ident}", key_limits))
        if app_slug and app_config.get("limits"):
            checks.append(("app", f"{gate.id}:{app_slug}", app_config["limits"]))
        return await self.quotas.hit(checks)

    def _log(
        self,
        scope: Scope,
        state: dict[str, Any],
        record: dict[str, Any],
        gate: TenantGate | None,
        app_slug: str | None,
        started_at: float,
    ) -> None:
        if not access_log.isEnabledFor(logging.INFO):
            return
        client = scope.get("client")
        # Only the path: query strings may carry tokens; headers are never logged.
        line = {
            "event": "http.access",
            "request_id": state.get("request_id"),
            "method": scope["method"],
            "path": scope["path"],
            "status": record["status"],
            "bytes": record["bytes"],
            "duration_ms": round((time.perf_counter() - started_at) * 1000, 2),
            "tenant": gate.slug if gate else None,
            "app": app_slug,
            "client": client[0] if client else None,
        }
        access_log.info(json.dumps(line, separators=(",", ":")))


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers") or ():
        if key == name:
            return value.decode("latin-1")
    return None


def _bearer(scope: Scope) -> str | None:
    scheme, _, token = (_header(scope, b"authorization") or "").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def _host(scope: Scope) -> str | None:
    host = _header(scope, b"host")
    return host.rsplit(":", 1)[0].lower() if host else None


def _origin_allowed(cors: dict[str, Any], origin: str) -> bool:
    origins = cors.get("origins", [])
    return "*" in origins or origin in origins


def _cors_headers(cors: dict[str, Any], origin: str) -> list[tuple[bytes, bytes]]:
    wildcard = "*" in cors.get("origins", []) and not cors.get("credentials")
    headers = [
        (b"access-control-allow-origin", b"*" if wildcard else origin.encode()),
        (b"vary", b"Origin"),
    ]
    if cors.get("credentials"):
        headers.append((b"access-control-allow-credentials", b"true"))
    return headers


async def _preflight(send: Send, cors: dict[str, Any], origin: str, record: dict[str, Any]) -> None:
    if not _origin_allowed(cors, origin):
        error = CorsRefused(f"Origin {origin!r} may not call this app", path="Origin")
        await _problem(send, error, None, record, [])
        return
    methods = ", ".join(cors.get("methods") or ["GET", "POST", "PUT", "PATCH", "DELETE"])
    allowed = ", ".join(cors.get("headers") or ["Authorization", "Content-Type", "If-Match"])
    headers = [
        *_cors_headers(cors, origin),
        (b"access-control-allow-methods", methods.encode()),
        (b"access-control-allow-headers", allowed.encode()),
        (b"access-control-max-age", str(cors.get("max_age", 600)).encode()),
        (b"content-length", b"0"),
    ]
    record["status"] = 204
    await send({"type": "http.response.start", "status": 204, "headers": headers})
    await send({"type": "http.response.body", "body": b""})


async def _problem(
    send: Send,
    error: PlinthError,
    request_id: str | None,
    record: dict[str, Any],
    extra: list[tuple[bytes, bytes]],
) -> None:
    body = error.problem()
    if request_id:
        body["request_id"] = request_id
    data = json.dumps(body).encode()
    headers = [(b"content-type", PROBLEM), (b"content-length", str(len(data)).encode())]
    headers += [(k.lower().encode(), v.encode()) for k, v in error.headers.items()]
    names = {k for k, _ in headers}
    headers += [(k, v) for k, v in extra if k not in names]
    record["status"] = error.status
    record["bytes"] = len(data)
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": data})
