"""Runtime enforcement cost: writes and reads of an encrypted + masked field vs a plain one.

    PYTHONPATH=src python bench/compliance_runtime.py [records] [--db sqlite|postgresql]
        [--subject]

One platform, one tenant, one app with two entities of identical shape: `plain` (a string
field) and `sealed` (the same field `classification: pci.pan`, `encrypted`, `masked`, and
`audit_reads` as PCI DSS asks). Through the record service (no HTTP), rounds alternate
between the two: create N records, read each by id, list them in pages of 50, as a caller who
may not unmask (so `sealed` is decrypted and masked). Without `--subject` every record is its
own data subject (a key each); with it the records belong to 10 subjects
(`subject.key_field`). Printed: records/s per operation and the sealed/plain ratio; medians
of 3 rounds.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

from plinth.governance.principal import PLATFORM_ADMIN, Principal
from plinth.server import Platform
from plinth.settings import Settings

FIELD = {"type": "string", "maxLength": 19}
APP = {
    "entities": {
        "plain": {"fields": {"number": FIELD, "label": {"type": "string"}}},
        "sealed": {
            "fields": {
                "number": {**FIELD, "classification": "pci.pan", "encrypted": True, "masked": True},
                "label": {"type": "string"},
            },
            "retention": {"days": 365, "action": "delete"},
            "audit_reads": True,
        },
    }
}
if "--subject" in sys.argv:  # cards of 10 customers: one key per customer, not per record
    APP["entities"]["sealed"]["subject"] = {"key_field": "label"}


async def round_(
    platform: Platform, tenant, who: Principal, entity: str, n: int
) -> dict[str, float]:
    rec = platform.records
    t0 = time.perf_counter()
    ids = [
        (
            await rec.create(
                tenant, "bench", entity, {"number": f"4111{i:012d}", "label": f"c{i % 10}"}, who
            )
        )["id"]
        for i in range(n)
    ]
    t1 = time.perf_counter()
    for rid in ids:
        await rec.get(tenant, "bench", entity, rid, who)
    t2 = time.perf_counter()
    cursor, seen = None, 0
    while True:
        page = await rec.query(tenant, "bench", entity, who, limit=50, cursor=cursor)
        seen += len(page["items"])
        cursor = page["next_cursor"]
        if not cursor:
            break
    t3 = time.perf_counter()
    return {"create": n / (t1 - t0), "get": n / (t2 - t1), "list": seen / (t3 - t2)}


async def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 and sys.argv[1].isdigit() else 300
    db = sys.argv[sys.argv.index("--db") + 1] if "--db" in sys.argv else "sqlite"
    with tempfile.TemporaryDirectory() as tmp:
        url = (
            f"sqlite+aiosqlite:///{Path(tmp) / 'plinth.db'}"
            if db == "sqlite"
            else "postgresql+asyncpg://postgres@127.0.0.1:5432/plinth_bench_c8"
        )
        platform = Platform(Settings(data_dir=Path(tmp), database_url=url, embedded_worker=False))
        await platform.start()
        try:
            admin = Principal("admin", "user", frozenset({PLATFORM_ADMIN}), None)
            tenant = await platform.tenants.create("bench")
            await platform.metadata.create_app(tenant, "bench")
            await platform.metadata.put_draft(tenant, "bench", APP)
            await platform.metadata.publish(tenant, "bench", admin)
            who = Principal("user:d", "user", frozenset({"designer"}), tenant.id, name="d")
            results: dict[str, list[dict[str, float]]] = {"plain": [], "sealed": []}
            for _ in range(3):
                for entity in ("plain", "sealed"):
                    results[entity].append(await round_(platform, tenant, who, entity, n))
            print(f"{db}, {n} records per round, medians of 3 rounds (records/s)")
            for op in ("create", "get", "list"):
                plain = statistics.median(r[op] for r in results["plain"])
                sealed = statistics.median(r[op] for r in results["sealed"])
                print(
                    f"{op:7} plain {plain:9.0f}   sealed {sealed:9.0f}   "
                    f"ratio {sealed / plain:4.2f}x"
                )
        finally:
            await platform.stop()


if __name__ == "__main__":
    asyncio.run(main())
