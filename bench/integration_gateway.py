"""Gateway overhead per request and rate-limiter decisions per second, in one run.

    PYTHONPATH=src .venv/bin/python bench/integration_gateway.py [--redis URL]

Requests are driven as raw ASGI calls (no sockets, no client) so the figure is the gateway's
own cost: the same FastAPI app and handler with and without the `Gateway` middleware. The
limiter is measured on the `limits` library directly (baseline) and through `Quotas.hit`
(which adds window stats for the RateLimit-* headers), in memory and, if reachable, Redis.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from limits import RateLimitItemPerSecond

from plinth.integration import Gateway, GatewaySettings, Quotas
from plinth.server import Platform, create_app
from plinth.settings import Settings

TOKEN = "plt_bench_admin_token_0123456789abcdef"


async def _request(app: Any, path: str) -> int:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8000),
        "headers": [(b"host", b"plinth.test"), (b"authorization", f"Bearer {TOKEN}".encode())],
    }
    status = 0

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope, receive, send)
    return status


async def _per_request(app: Any, path: str, n: int) -> float:
    for _ in range(200):
        assert await _request(app, path) == 200
    runs = []
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(n // 5):
            await _request(app, path)
        runs.append((time.perf_counter() - started) / (n // 5))
    return statistics.median(runs)


async def _decisions(fn: Any, n: int) -> float:
    for _ in range(100):
        await fn()
    started = time.perf_counter()
    for _ in range(n):
        await fn()
    return n / (time.perf_counter() - started)


async def main(redis_url: str | None, n: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            data_dir=Path(tmp),
            admin_token=TOKEN,
            embedded_worker=False,
            database_url=f"sqlite+aiosqlite:///{tmp}/bench.db",
        )
        platform = Platform(settings)
        await platform.start()
        tenant = await platform.tenants.create("bench")
        await platform.quotas.gateway.put(
            tenant.id,
            "tenant",
            {"limits": {"per_second": 10**9, "per_day": 10**12, "api_key": {"per_second": 10**9}}},
        )
        await platform.quotas.gateway.put(tenant.id, "app:crm", {"limits": {"per_second": 10**9}})

        def app(with_gateway: bool) -> Any:
            built = create_app(platform=platform)

            @built.get("/api/t/{tenant}/apps/{app_slug}/ping")
            async def ping(tenant: str, app_slug: str) -> dict[str, bool]:
                return {"ok": True}

            if not with_gateway:
                built.user_middleware = [m for m in built.user_middleware if m.cls is not Gateway]
            return built

        path = "/api/t/bench/apps/crm/ping"
        direct = await _per_request(app(False), path, n)
        gated = await _per_request(app(True), path, n)
        print("gateway overhead (raw ASGI, same handler, tenant+day+key+app limits checked)")
        print(f"  straight to handler : {direct * 1e6:8.1f} µs/request")
        print(f"  through the gateway : {gated * 1e6:8.1f} µs/request")
        print(
            f"  overhead            : {(gated - direct) * 1e6:8.1f} µs/request "
            f"(x{gated / direct:.2f})"
        )

        stores = [("memory", settings)]
        if redis_url:
            stores.append(("redis", Settings(redis_url=redis_url)))
        print("rate limiter decisions per second (one process, sequential)")
        for label, cfg in stores:
            quotas = Quotas(
                cfg,
                GatewaySettings(platform.db, platform.tenants),
                key_prefix=f"bench-{secrets.token_hex(4)}",
            )
            item = RateLimitItemPerSecond(10**9)
            try:
                raw = await _decisions(lambda q=quotas, i=item: q.limiter.hit(i, "t"), n)
            except Exception as exc:  # Redis not reachable: say so, keep the memory figures
                print(f"  {label:6}: skipped ({type(exc).__name__})")
                continue
            one = [("tenant", "t", {"per_second": 10**9})]
            three = [
                *one,
                ("api_key", "k", {"per_second": 10**9}),
                ("app", "a", {"per_day": 10**12}),
            ]
            hit1 = await _decisions(lambda q=quotas, w=one: q.hit(w), n)
            hit3 = await _decisions(lambda q=quotas, w=three: q.hit(w), n)
            print(f"  {label:6} limits.hit (baseline)      : {raw:10.0f}/s")
            print(
                f"  {label:6} Quotas.hit, 1 window        : {hit1:10.0f}/s "
                f"(x{hit1 / raw:.2f} of baseline; + window stats for headers)"
            )
            print(
                f"  {label:6} Quotas.hit, 3 windows       : {hit3:10.0f}/s requests "
                f"({3 * hit3:.0f} window decisions/s)"
            )
            # A flood against an exhausted budget: every refusal asks the storage, or the
            # deny cache answers from memory until the announced Retry-After.
            spent = [("tenant", f"flood-{label}", {"per_day": 1})]
            await quotas.hit(spent)
            quotas.deny_cache = False
            asked = await _decisions(lambda q=quotas, w=spent: q.hit(w), n)
            quotas.deny_cache = True
            cached = await _decisions(lambda q=quotas, w=spent: q.hit(w), n)
            print(
                f"  {label:6} refusals, exhausted budget  : {asked:10.0f}/s asking storage, "
                f"{cached:.0f}/s from the deny cache (x{cached / asked:.1f})"
            )
            await quotas.close()
        await platform.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument("-n", type=int, default=5000)
    args = parser.parse_args()
    asyncio.run(main(args.redis or None, args.n))
