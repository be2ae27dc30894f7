"""Generated data API vs a hand-written FastAPI endpoint, same process, same database.

    PYTHONPATH=src python bench/runtime_api.py [--requests 600] [--db sqlite,postgresql]

Both sides sit behind the same authentication and tenant resolution and do the same work per
request pair: validate and insert one record, then read a keyset page of 20. Rounds alternate
(generated, hand-written, generated, …) so drift on a shared machine hits both alike.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import statistics
import tempfile
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal

import httpx
import sqlalchemy as sa
from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from plinth.ids import new_id
from plinth.server import Platform, create_app
from plinth.server.deps import PlatformDep, PrincipalDep, TenantDep
from plinth.settings import Settings

TOKEN = "plt_bench_admin_token_0123456789abcdef"
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
ENTITY = {
    "entities": {
        "order": {
            "fields": {
                "name": {"type": "string", "required": True, "maxLength": 100},
                "amount": {"type": "decimal", "precision": 12, "scale": 2, "min": 0},
                "status": {"type": "enum", "values": ["open", "paid", "void"], "default": "open"},
                "qty": {"type": "integer", "min": 0},
            }
        }
    }
}

meta = sa.MetaData()
hand_table = sa.Table(
    "bench_orders",
    meta,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("created_by", sa.String(200)),
    sa.Column("updated_by", sa.String(200)),
    sa.Column("name", sa.String(100)),
    sa.Column("amount", sa.Numeric(12, 2)),
    sa.Column("status", sa.String(2048)),
    sa.Column("qty", sa.BigInteger),
)


class OrderIn(BaseModel):
    model_config = {"extra": "forbid"}
    name: Annotated[str, Field(max_length=100)]
    amount: Annotated[Decimal, Field(ge=0, max_digits=12, decimal_places=2)] | None = None
    status: Literal["open", "paid", "void"] = "open"
    qty: Annotated[int, Field(ge=0)] | None = None


def hand_router() -> APIRouter:
    """What a developer would write by hand for the same entity."""
    router = APIRouter()
    insert = hand_table.insert()

    @router.post("/hand/t/{tenant}/orders", status_code=201)
    async def create(
        body: OrderIn, tenant: TenantDep, platform: PlatformDep, principal: PrincipalDep
    ) -> dict[str, Any]:
        now = datetime.now(UTC)
        by = principal.audit_name()
        row = {
            "id": new_id(),
            "version": 1,
            "created_at": now,
            "updated_at": now,
            "created_by": by,
            "updated_by": by,
            **body.model_dump(),
        }
        async with platform.records.storage.database(tenant).transaction() as conn:
            await conn.execute(insert, row)
        return row | {
            "created_at": now.isoformat(),
            "updated_at": now.isoformat(),
            "amount": str(body.amount) if body.amount is not None else None,
        }

    @router.get("/hand/t/{tenant}/orders")
    async def page(
        tenant: TenantDep,
        platform: PlatformDep,
        principal: PrincipalDep,
        limit: int = Query(20, le=500),
        after: str | None = None,
    ) -> dict[str, Any]:
        t = hand_table
        stmt = sa.select(t).order_by(t.c.id).limit(limit)
        if after:
            stmt = stmt.where(t.c.id > after)
        async with platform.records.storage.database(tenant).read() as conn:
            rows = [dict(r._mapping) for r in await conn.execute(stmt)]
        for r in rows:
            r["amount"] = str(r["amount"]) if r["amount"] is not None else None
            r["created_at"] = str(r["created_at"])
            r["updated_at"] = str(r["updated_at"])
        return {"items": rows, "next_cursor": rows[-1]["id"] if rows else None}

    return router


async def run_load(
    client: httpx.AsyncClient,
    write: str,
    read: str,
    n: int,
    concurrency: int,
    read_params: dict[str, Any],
) -> list[float]:
    latencies: list[float] = []
    counter = iter(range(n))

    async def worker() -> None:
        for i in counter:
            body = {"name": f"order {i}", "amount": "12.50", "status": "open", "qty": i % 7}
            t0 = time.perf_counter()
            r = await client.post(write, json=body)
            latencies.append(time.perf_counter() - t0)
            assert r.status_code == 201, r.text
            t0 = time.perf_counter()
            r = await client.get(read, params=read_params)
            latencies.append(time.perf_counter() - t0)
            assert r.status_code == 200, r.text

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies


def summary(latencies: list[float], seconds: float) -> dict[str, float]:
    q = statistics.quantiles(latencies, n=100)
    return {"rps": len(latencies) / seconds, "p50": q[49] * 1000, "p99": q[98] * 1000}


async def bench(url: str, data_dir: Path, n: int, concurrency: int, rounds: int) -> None:
    platform = Platform(
        Settings(database_url=url, data_dir=data_dir, admin_token=TOKEN, embedded_worker=False)
    )
    await platform.start()
    app = create_app(platform=platform)
    app.include_router(hand_router())
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://bench", headers={"Authorization": f"Bearer {TOKEN}"}
    ) as c:
        await c.post("/api/tenants", json={"slug": "bench", "name": "Bench"})
        await c.post("/api/t/bench/apps", json={"slug": "shop"})
        await c.put("/api/t/bench/apps/shop/draft", json=ENTITY)
        r = await c.post("/api/t/bench/apps/shop/publish", json={})
        assert r.status_code == 201, r.text
        tenant = await platform.tenants.find("bench")
        assert tenant is not None
        db = platform.records.storage.database(tenant)
        hand_table.schema = platform.records.storage.schema(tenant)
        async with db.transaction() as conn:
            await conn.run_sync(meta.create_all)
        sides = {
            "generated": (
                "/api/t/bench/apps/shop/data/order",
                "/api/t/bench/apps/shop/data/order",
                {"limit": 20, "sort": "id"},
            ),
            "hand-written": ("/hand/t/bench/orders", "/hand/t/bench/orders", {"limit": 20}),
        }
        for w, rd, p in sides.values():  # warm-up
            await run_load(c, w, rd, 50, concurrency, p)
        lat: dict[str, list[float]] = {k: [] for k in sides}
        spent: dict[str, float] = dict.fromkeys(sides, 0.0)
        for _ in range(rounds):
            for name, (w, rd, p) in sides.items():
                t0 = time.perf_counter()
                lat[name] += await run_load(c, w, rd, n // rounds, concurrency, p)
                spent[name] += time.perf_counter() - t0
    await platform.stop()
    results = {k: summary(lat[k], spent[k]) for k in sides}
    print(
        f"\n{platform.db.dialect}: {n} inserts + {n} keyset reads per side, "
        f"concurrency {concurrency}"
    )
    for name, s in results.items():
        print(
            f"  {name:13s} {s['rps']:8.0f} req/s   p50 {s['p50']:6.2f} ms   p99 {s['p99']:6.2f} ms"
        )
    g, h = results["generated"], results["hand-written"]
    print(
        f"  generated/hand-written: throughput {g['rps'] / h['rps']:.2f}x, "
        f"p50 {g['p50'] / h['p50']:.2f}x, p99 {g['p99'] / h['p99']:.2f}x "
        f"(overhead {100 * (h['rps'] / g['rps'] - 1):+.1f}%)"
    )


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=600)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--db", default="sqlite,postgresql")
    args = parser.parse_args()
    for kind in args.db.split(","):
        with tempfile.TemporaryDirectory() as tmp:
            if kind == "sqlite":
                await bench(
                    f"sqlite+aiosqlite:///{tmp}/plinth.db",
                    Path(tmp) / "data",
                    args.requests,
                    args.concurrency,
                    args.rounds,
                )
                continue
            import asyncpg

            name = f"plinth_bench_{secrets.token_hex(4)}"
            admin = await asyncpg.connect(PG_ADMIN)
            await admin.execute(f'CREATE DATABASE "{name}"')
            try:
                url = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
                await bench(url, Path(tmp) / "data", args.requests, args.concurrency, args.rounds)
            finally:
                await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                await admin.close()


if __name__ == "__main__":
    asyncio.run(main())
