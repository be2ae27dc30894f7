"""Audited changes through the HTTP API: draft PUTs and token issues, p50/p99 per request.

Each writes its ledger entry (a draft's `draft.updated`, a token's `token.issued`); since
2026-12-07 (fifth session) in the change's own transaction instead of a group-committed append
after it. In-process ASGI client, one request at a time, a fresh database per run.

Run: PYTHONPATH=src python bench/audited_changes.py LABEL [N] [DATABASE_URL]
(default: 300 draft PUTs, N/3 token issues, a fresh SQLite file; give an empty PostgreSQL
database's URL to measure there).
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from plinth.server import Platform  # noqa: E402
from plinth.server.app import create_app  # noqa: E402
from plinth.settings import Settings  # noqa: E402

TOKEN = "t" * 40


def summary(label: str, what: str, times: list[float]) -> str:
    times = sorted(times)
    p99 = times[max(0, int(len(times) * 0.99) - 1)]
    return (
        f"{label} {what} n={len(times)} p50={statistics.median(times) * 1000:.2f}ms "
        f"p99={p99 * 1000:.2f}ms"
    )


async def main(label: str, n: int, url: str | None) -> None:
    data = Path(tempfile.mkdtemp())
    settings = Settings(
        data_dir=data,
        database_url=url or f"sqlite+aiosqlite:///{data}/plinth.db",
        admin_token=TOKEN,
        embedded_worker=False,
    )
    platform = Platform(settings)
    await platform.start()
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=create_app(platform=platform)),
            base_url="http://bench",
            headers={"Authorization": f"Bearer {TOKEN}"},
        ) as client:
            r = await client.post("/api/tenants", json={"slug": "acme", "name": "Acme"})
            assert r.status_code == 201, r.text
            r = await client.post("/api/t/acme/apps", json={"slug": "app"})
            assert r.status_code == 201, r.text
            times = []
            for i in range(n):
                body = {"entities": {"e": {"fields": {f"f{i}": {"type": "string"}}}}}
                start = time.perf_counter()
                r = await client.put("/api/t/acme/apps/app/draft", json=body)
                times.append(time.perf_counter() - start)
                assert r.status_code == 200, r.text
            print(summary(label, "draft PUT", times))
            times = []
            for i in range(n // 3):
                start = time.perf_counter()
                r = await client.post(
                    "/api/t/acme/tokens", json={"name": f"k{i}", "role": "viewer"}
                )
                times.append(time.perf_counter() - start)
                assert r.status_code == 201, r.text
            print(summary(label, "token POST", times))
    finally:
        await platform.stop()


if __name__ == "__main__":
    args = sys.argv[1:]
    asyncio.run(
        main(
            args[0] if args else "run",
            int(args[1]) if len(args) > 1 else 300,
            args[2] if len(args) > 2 else None,
        )
    )
