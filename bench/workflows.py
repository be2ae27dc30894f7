"""Workflow engine bench: steps/s and start-to-end latency of the demo claims workflow.

Runs the low-value path of `demo/claims/workflows/claims_process.yaml` (fraud score, assign,
gateway, approve, payout, close, end: 7 steps, 3 record writes) with 1 and 4 worker processes,
on SQLite and on PostgreSQL, in one run. Ratios are against SQLite with 1 worker.

    PYTHONPATH=src python bench/workflows.py [--instances 200] [--latency-runs 20]

Everything is real: claims and payouts are written through the runtime (validation, policy,
record events), and triage calls the fraud-scorer example plugin in its wasmtime sandbox
(built once with componentize-py and compiled once, both cached in the user cache dir).
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

import asyncpg
import yaml
from sqlalchemy import text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from plinth.extensions import build  # noqa: E402
from plinth.extensions import manifest as manifests  # noqa: E402
from plinth.extensions.package import Package  # noqa: E402
from plinth.governance.principal import Principal  # noqa: E402
from plinth.server.platform import Platform  # noqa: E402
from plinth.settings import Settings  # noqa: E402
from plinth.workflows import store  # noqa: E402

PG = "postgresql://postgres@127.0.0.1:5432"
ADMIN = Principal("bench", "token", frozenset({"platform_admin"}), name="bench")
DEMO = ROOT / "src/plinth/demo/claims/workflows/claims_process.yaml"
PLUGIN = ROOT / "examples/plugins/fraud-scorer"
CACHE = build.default_cache_dir()
ENTITIES = {
    "claim": {
        "fields": {
            "country": {"type": "enum", "values": ["DE", "FR"]},
            "amount": {"type": "decimal", "precision": 12, "scale": 2, "min": 0},
            "currency": {"type": "enum", "values": ["EUR"]},
            "description": {"type": "text"},
            "status": {
                "type": "enum",
                "values": ["open", "approved", "rejected", "closed"],
                "default": "open",
            },
            "fraud_score": {"type": "integer"},
        }
    },
    "payout": {
        "fields": {
            "claim": {"type": "reference", "entity": "claim", "required": True},
            "amount": {"type": "decimal", "precision": 12, "scale": 2, "min": 0},
            "currency": {"type": "enum", "values": ["EUR"]},
        }
    },
}


def _platform(url: str) -> Platform:
    return Platform(
        Settings(
            database_url=url,
            embedded_worker=False,
            data_dir=Path(tempfile.gettempdir()) / "plinth-bench",
            plugin_cache_dir=CACHE / "compiled",
        )
    )


async def worker(url: str) -> None:
    """One worker process (spawned by the bench)."""
    platform = _platform(url)
    await platform.start()
    await platform.workflows.engine.work(asyncio.Event(), poll=0.05)


async def _install_plugin(platform: Platform) -> None:
    wasm = await asyncio.to_thread(build.build, PLUGIN, CACHE)
    text_ = (PLUGIN / build.MANIFEST).read_text()
    await platform.plugins.publish_package(
        Package(text_, manifests.parse(text_), wasm.read_bytes()), ADMIN
    )
    await platform.plugins.install("bench", "fraud-scorer", ADMIN, capabilities=["log"])


async def _fresh(kind: str, tmp: Path) -> str:
    if kind == "sqlite":
        return f"sqlite+aiosqlite:///{tmp / f'bench-{secrets.token_hex(4)}.db'}"
    name = f"plinth_bench_{secrets.token_hex(4)}"
    conn = await asyncpg.connect(f"{PG}/postgres")
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    return f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"


async def _drop(url: str) -> None:
    if url.startswith("postgresql"):
        conn = await asyncpg.connect(f"{PG}/postgres")
        await conn.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')
        await conn.close()


async def _wait_done(platform: Platform, ids: list[str], limit_s: float = 600) -> None:
    deadline = time.time() + limit_s
    i = store.instances
    while time.time() < deadline:
        async with platform.db.read() as conn:
            left = (
                await conn.execute(text(f"SELECT count(*) FROM {i.name} WHERE status = 'running'"))
            ).scalar()
        if not left:
            return
        await asyncio.sleep(0.02)
    raise TimeoutError("instances did not finish")


async def run(
    kind: str, workers: int, instances: int, latency_runs: int, tmp: Path
) -> dict[str, float]:
    url = await _fresh(kind, tmp)
    platform = _platform(url)
    await platform.start()
    procs = []
    try:
        tenant = await platform.tenants.create("bench", "Bench")
        await _install_plugin(platform)
        await platform.metadata.create_app(tenant, "claims")
        doc = yaml.safe_load(DEMO.read_text())
        await platform.metadata.put_draft(
            tenant, "claims", {"entities": ENTITIES, "workflows": {"claims": doc}}
        )
        await platform.metadata.publish(tenant, "claims", ADMIN)
        procs = [
            await asyncio.create_subprocess_exec(sys.executable, __file__, "--worker", url)
            for _ in range(workers)
        ]

        async def one() -> str:
            # Filing the claim is first notice of loss: its record event starts the workflow.
            rec = await platform.records.create(
                tenant,
                "claims",
                "claim",
                {
                    "country": "FR",
                    "amount": "300.00",
                    "currency": "EUR",
                    "description": "Water damage in the kitchen",
                },
                ADMIN,
            )
            return str(rec["id"])  # type: ignore[call-overload]

        await _wait_done(platform, [await one()])  # warm the workers
        latencies = []
        for _ in range(latency_runs):  # start-to-end with an idle queue
            t0 = time.perf_counter()
            await _wait_done(platform, [await one()])
            latencies.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        ids = [await one() for _ in range(instances)]
        await _wait_done(platform, ids)
        elapsed = time.perf_counter() - t0
        async with platform.db.read() as conn:
            steps = (
                await conn.execute(text("SELECT count(*) FROM wf_steps WHERE status = 'completed'"))
            ).scalar() or 0
        per_instance = steps / (instances + latency_runs + 1)
        return {
            "steps_per_s": per_instance * instances / elapsed,
            "p50_ms": statistics.median(latencies) * 1000,
            "p95_ms": sorted(latencies)[int(len(latencies) * 0.95) - 1] * 1000,
        }
    finally:
        for p in procs:
            p.kill()
            await p.wait()
        await platform.stop()
        await _drop(url)


async def main(args: argparse.Namespace) -> None:
    results: dict[tuple[str, int], dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for kind in ("sqlite", "postgresql"):
            for workers in (1, 4):
                results[kind, workers] = await run(
                    kind, workers, args.instances, args.latency_runs, Path(tmp)
                )
    base = results["sqlite", 1]
    print(
        f"claims workflow, low-value path (7 steps), {args.instances} instances queued; "
        f"latency over {args.latency_runs} sequential runs"
    )
    print(
        f"{'database':<11}{'workers':>8}{'steps/s':>10}{'x base':>8}{'p50 ms':>9}"
        f"{'p95 ms':>9}{'x base':>8}"
    )
    for (kind, workers), r in results.items():
        print(
            f"{kind:<11}{workers:>8}{r['steps_per_s']:>10.1f}"
            f"{r['steps_per_s'] / base['steps_per_s']:>8.2f}{r['p50_ms']:>9.1f}"
            f"{r['p95_ms']:>9.1f}{r['p50_ms'] / base['p50_ms']:>8.2f}"
        )


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--worker":
        asyncio.run(worker(sys.argv[2]))
        sys.exit(0)
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--instances", type=int, default=200)
    parser.add_argument("--latency-runs", type=int, default=20)
    asyncio.run(main(parser.parse_args()))
