"""Governance benchmark: Cedar decisions/s with p50/p99, row filters, audit appends, verify.

Run: PYTHONPATH=src python bench/governance.py [--pg postgresql://postgres@127.0.0.1:5432/postgres]
Baselines measured in the same run: the old RoleAuthorizer (a set lookup) for decisions, and a
plain INSERT (no chain, no lock) for audit appends.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from plinth.db import Database, utcnow  # noqa: E402
from plinth.governance.access import Resource, RoleAuthorizer  # noqa: E402
from plinth.governance.audit import AuditEntry, AuditLedger  # noqa: E402
from plinth.governance.policy import CedarAuthorizer  # noqa: E402
from plinth.governance.principal import Principal  # noqa: E402

# A realistic set: defaults for 4 roles, country scoping, health-data team, amount limits,
# status rules for several entities.
APP: dict[str, Any] = {
    "entities": {
        "claim": {
            "fields": {
                "country": {"type": "string", "required": True},
                "amount": {"type": "integer"},
                "status": {"type": "string"},
                "health_notes": {"type": "text"},
            }
        },
        "policyholder": {
            "fields": {"country": {"type": "string", "required": True}, "name": {"type": "string"}}
        },
    },
    "policies": {
        "country": {
            "cedar": 'forbid(principal in Role::"analyst", action == Action::"data.read",'
            " resource is claim) unless { principal has country && "
            "resource.country == principal.country };"
        },
        "holders": {
            "cedar": 'forbid(principal in Role::"analyst", action, resource is '
            "policyholder) unless { principal has country && "
            "resource.country == principal.country };"
        },
        "limit": {
            "cedar": 'forbid(principal in Role::"analyst", action == Action::"data.update",'
            " resource is claim) when { resource has amount && "
            "resource.amount > 10000 };"
        },
        "closed": {
            "cedar": 'forbid(principal, action in [Action::"data.update", '
            'Action::"data.delete"], resource is claim) when { resource has '
            'status && resource.status == "closed" } unless { principal in '
            'Role::"owner" };'
        },
        "health": {
            "cedar": 'forbid(principal, action in [Action::"field.read", '
            'Action::"field.write"], resource == Field::"claim.health_notes") '
            'unless { principal in Group::"claims" };'
        },
    },
}


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def bare_cedar(n: int) -> list[float]:
    """The same record decision on cedarpy alone, written by hand (no Plinth code): the
    analyst's permit, the five app policies, a pre-parsed policy set, the principal with its
    role and group and a claim with its attributes, one `is_authorized` call per decision."""
    import cedarpy

    texts = ['permit(principal in Role::"analyst", action == Action::"data.read", resource);']
    texts += [p["cedar"] for p in APP["policies"].values()]
    policies = cedarpy.PolicySet.from_str("\n".join(texts))
    principal = {
        "uid": {"type": "User", "id": "ana"},
        "attrs": {"country": "FR"},
        "parents": [{"type": "Role", "id": "analyst"}, {"type": "Group", "id": "claims"}],
    }
    parents = [
        {"uid": {"type": t, "id": i}, "attrs": {}, "parents": []}
        for t, i in (("Role", "analyst"), ("Group", "claims"))
    ]
    claims = [
        {
            "uid": {"type": "claim", "id": str(i)},
            "attrs": {"country": ("FR", "DE")[i % 2], "amount": i * 10, "status": "open"},
            "parents": [],
        }
        for i in range(100)
    ]
    lat: list[float] = []
    for i in range(n + 50):
        claim = claims[i % 100]
        request = {
            "principal": {"type": "User", "id": "ana"},
            "action": {"type": "Action", "id": "data.read"},
            "resource": claim["uid"],
            "context": {},
        }
        t0 = time.perf_counter_ns()
        result = cedarpy.is_authorized(request, policies, [principal, *parents, claim])
        if i >= 50:  # the first 50 warm up
            lat.append((time.perf_counter_ns() - t0) / 1000)
        assert result.allowed == (i % 2 == 0), (i, result.allowed)
    return lat


def bench_decisions(n: int) -> None:
    authz = CedarAuthorizer()
    authz.install("t", "claims", APP)
    roles = RoleAuthorizer()
    ana = Principal(
        "user:ana",
        "user",
        frozenset({"analyst"}),
        "t",
        attrs={"country": "FR", "groups": ["claims"]},
    )
    rows = [
        Resource(
            "record",
            "claim",
            "t",
            attrs={
                "app": "claims",
                "entity": "claim",
                "record": {
                    "id": str(i),
                    "country": ("FR", "DE")[i % 2],
                    "amount": i * 10,
                    "status": "open",
                },
            },
        )
        for i in range(100)
    ]
    for r in rows[:50]:  # warm up
        authz.decide(ana, "data.read", r)
    lat: list[float] = []
    start = time.perf_counter()
    for i in range(n):
        t0 = time.perf_counter_ns()
        authz.decide(ana, "data.read", rows[i % 100])
        lat.append((time.perf_counter_ns() - t0) / 1000)
    cedar_s = time.perf_counter() - start
    start = time.perf_counter()
    for i in range(n):
        roles.decide(ana, "data.read", rows[i % 100])
    base_s = time.perf_counter() - start
    app_res = Resource("app", "claims", "t")
    lat2: list[float] = []
    for _ in range(n):
        t0 = time.perf_counter_ns()
        authz.decide(ana, "draft.read", app_res)
        lat2.append((time.perf_counter_ns() - t0) / 1000)
    print(
        f"decide metadata action (cached per policy version): p50 "
        f"{statistics.median(lat2):.1f} µs  p99 {percentile(lat2, 0.99):.1f} µs"
    )
    print(
        f"decide (cedar, 5 app policies + defaults): {n / cedar_s:,.0f}/s  "
        f"p50 {statistics.median(lat):.1f} µs  p99 {percentile(lat, 0.99):.1f} µs  "
        f"(baseline RoleAuthorizer {n / base_s:,.0f}/s, ratio {cedar_s / base_s:.0f}x)"
    )
    bare = bare_cedar(n)
    print(
        f"bare cedarpy.is_authorized, same decision by hand: p50 {statistics.median(bare):.1f}"
        f" µs  p99 {percentile(bare, 0.99):.1f} µs  (decide / bare: p50 "
        f"{statistics.median(lat) / statistics.median(bare):.2f}x, p99 "
        f"{percentile(lat, 0.99) / percentile(bare, 0.99):.2f}x)"
    )
    lat = []
    for _ in range(max(200, n // 20)):
        t0 = time.perf_counter_ns()
        authz.row_filter(ana, "data.read", "t", "claims", "claim")
        lat.append((time.perf_counter_ns() - t0) / 1000)
    print(
        f"row_filter (partial evaluation + translation): p50 {statistics.median(lat):.0f} µs"
        f"  p99 {percentile(lat, 0.99):.0f} µs"
    )


async def bench_audit(url: str, label: str, n: int) -> None:
    db = Database(url)
    await db.migrate()
    master = os.urandom(32)
    ledger = AuditLedger(db, lambda: master)  # keyed chain + a signed checkpoint per batch
    plain = sa.table("audit_probe", sa.column("id"), sa.column("at"), sa.column("body"))
    async with db.transaction() as conn:
        await conn.execute(
            sa.text("CREATE TABLE audit_probe (id INTEGER, at TIMESTAMP WITH TIME ZONE, body TEXT)")
        )
    t0 = time.perf_counter()
    for i in range(n):
        async with db.transaction() as conn:
            await conn.execute(plain.insert().values(id=i, at=utcnow(), body="x"))
    base = n / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    for i in range(n):
        await ledger.append("single", AuditEntry("bench", "bench.event", f"r/{i}", data={"i": i}))
    single = n / (time.perf_counter() - t0)

    async def writer(w: int) -> None:
        for i in range(n // 4):
            await ledger.append("shared", AuditEntry(f"w{w}", "bench.event", f"r/{i}"))

    t0 = time.perf_counter()
    await asyncio.gather(*(writer(w) for w in range(4)))
    four = (n // 4 * 4) / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    for _ in range(n // 100):
        await ledger.append_many("batched", [AuditEntry("bench", "bench.event")] * 100)
    batched = n / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    report = await ledger.verify("single")
    verify = report.checked / (time.perf_counter() - t0)
    assert report.ok
    print(
        f"audit {label}: single writer {single:,.0f}/s (plain INSERT baseline {base:,.0f}/s, "
        f"{single / base:.2f}x), 4 writers {four:,.0f}/s, batches of 100 {batched:,.0f}/s, "
        f"verify {verify:,.0f} events/s"
    )
    await db.dispose()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--decisions", type=int, default=20000)
    parser.add_argument("--appends", type=int, default=1000)
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    bench_decisions(args.decisions)
    with tempfile.TemporaryDirectory() as tmp:
        await bench_audit(f"sqlite+aiosqlite:///{tmp}/bench.db", "SQLite", args.appends)
    if args.pg:
        import asyncpg

        name = f"plinth_bench_{secrets.token_hex(4)}"
        admin = await asyncpg.connect(args.pg)
        await admin.execute(f'CREATE DATABASE "{name}"')
        try:
            base = args.pg.rpartition("/")[0]
            await bench_audit(
                f"{base}/{name}".replace("postgresql://", "postgresql+asyncpg://"),
                "PostgreSQL",
                args.appends,
            )
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await admin.close()


if __name__ == "__main__":
    asyncio.run(main())
