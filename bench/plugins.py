"""A full Plinth plugin call against the same component on bare wasmtime, in the same run.

    .venv/bin/python bench/plugins.py [--calls 300] [--db sqlite,postgresql]

The example fraud scorer's `score` action (`examples/plugins/fraud-scorer`, built once with
componentize-py and cached) is called, interleaved call by call so noise hits every row alike:

- **full call_action**: `platform.plugins.call_action` — policy and grant checks, input schema,
  fuel budget, the call handed to the service's pool of worker processes, the call in Plinth's
  sandbox there (fuel, epochs, limits; the scorer is stateless, so its warm instance, and its
  peak memory that instance's linear memory at the end), output schema, the metering row and
  the audit event (batched, written off the call) in the platform database;
- **full call_action, fresh instance**: the same, for the same component published without
  `stateless = true` (as `fraud-scorer-fresh`): a new store and instance per call, its peak
  memory metered (the settings' default);
- **Plinth sandbox only**: `Sandbox.call` with the same settings and compiled artifact, in
  this process, a fresh instance: no pool, no database (what the service adds is the
  difference);
- **raw wasmtime, instantiate + call**: `baseline/rawwasm.py`, wasmtime's default configuration
  (copy-on-write memory images), a new store and instance per call — the baseline;
- **raw wasmtime, warm instance**: one instance, called again and again (what a pool of
  pre-instantiated instances could reach);
- **plain Python**: `score_claim` imported in-process, for scale.

Printed: p50/p99 per row and ratios to both raw rows, plus the cold first calls.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
import types
from collections.abc import Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

from baseline.rawwasm import RawWasm, WarmInstance
from rig import databases, peers
from rig.servers import load_average

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from plinth.extensions import manifest as manifests  # noqa: E402
from plinth.extensions.build import build  # noqa: E402
from plinth.extensions.models import DEFAULT_LIMITS  # noqa: E402
from plinth.extensions.package import pack, read_modules  # noqa: E402
from plinth.extensions.sandbox import Sandbox  # noqa: E402
from plinth.governance.principal import PLATFORM_ADMIN, Principal  # noqa: E402
from plinth.server.platform import Platform  # noqa: E402
from plinth.settings import Settings  # noqa: E402

SRC = ROOT / "examples/plugins/fraud-scorer"
CLAIM = {"amount": 12000, "country": "FR", "description": "urgent, lost receipt", "prior_claims": 1}
ADMIN = Principal("bench", "token", frozenset({PLATFORM_ADMIN}), name="bench")


def plain_python_scorer() -> Callable[[dict[str, Any]], dict[str, Any]]:
    """The plugin's own score_claim, imported in-process (the SDK stubbed out)."""
    sdk = types.ModuleType("plinth_sdk")
    sdk.Reject = Exception  # type: ignore[attr-defined]
    sdk.action = lambda name: lambda fn: fn  # type: ignore[attr-defined]
    sdk.before_write = lambda fn: fn  # type: ignore[attr-defined]
    sdk.log = lambda *a, **k: None  # type: ignore[attr-defined]
    sys.modules["plinth_sdk"] = sdk
    namespace: dict[str, Any] = {}
    exec(compile((SRC / "plugin.py").read_text(), "plugin.py", "exec"), namespace)
    return namespace["score_claim"]  # type: ignore[no-any-return]


class NoHost:
    """The sandbox-only row's host: every host call allowed, none doing anything."""

    def call(self, capability: str, func: str, args: tuple[Any, ...]) -> tuple[str, str]:
        return "ok", ""


def fmt(seconds: float) -> str:
    return f"{seconds * 1e3:9.3f} ms" if seconds >= 1e-3 else f"{seconds * 1e6:9.1f} µs"


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=1000, method="inclusive")[int(q * 10) - 1]


async def run(db: str, url: str, calls: int, wasm: bytes, raw: RawWasm) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        platform = Platform(
            Settings(
                data_dir=Path(tmp),
                database_url=url.replace("postgresql://", "postgresql+asyncpg://") or None,
                embedded_worker=False,
            )
        )
        await platform.start()
        try:
            await platform.tenants.create("acme", "Acme")
            text = (SRC / "plinth-plugin.toml").read_text()
            # The scorer ships a UI element (`ui` capability): its module goes in the package.
            modules = read_modules(manifests.parse(text), SRC)
            package = pack(text, wasm, modules=modules)
            await platform.plugins.publish(package, ADMIN)
            await platform.plugins.install(
                "acme", "fraud-scorer", ADMIN, capabilities=["log", "ui"]
            )
            # The same component, not declared stateless: a fresh instance per call.
            fresh_text = text.replace('name = "fraud-scorer"', 'name = "fraud-scorer-fresh"')
            fresh_text = fresh_text.replace("\nstateless = true", "")
            assert not manifests.parse(fresh_text).stateless
            await platform.plugins.publish(pack(fresh_text, wasm, modules=modules), ADMIN)
            await platform.plugins.install(
                "acme", "fraud-scorer-fresh", ADMIN, capabilities=["log", "ui"]
            )
            svc = platform.plugins
            svc.fuel_per_minute = 10**18  # the bench calls faster than a tenant's budget

            async def full() -> None:
                await svc.call_action("acme", "fraud-scorer", "score", CLAIM, ADMIN)

            async def full_fresh() -> None:
                await svc.call_action("acme", "fraud-scorer-fresh", "score", CLAIM, ADMIN)

            t = time.perf_counter()
            await full()
            first = time.perf_counter() - t
            v = await svc.version("fraud-scorer")
            # Calls run in the service's pool of worker processes; this row runs the same
            # sandbox (same settings, same compiled artifact) here, without the pool.
            sandbox = Sandbox(svc.cache_dir, measure_memory=platform.settings.plugin_measure_memory)
            component, _ = sandbox.component(v.sha256, svc.blob_dir / f"{v.sha256}.wasm")
            limits = DEFAULT_LIMITS["action"]
            payload = json.dumps(CLAIM)
            peak = sandbox.call(
                component, "action", ("score", payload), limits, NoHost()
            ).peak_memory
            await full_fresh()
            warm = WarmInstance(raw)
            rows: dict[str, list[float]] = {
                "full call_action (Plinth)": [],
                "full call_action, fresh instance": [],
                "Plinth sandbox only": [],
                "raw wasmtime, instantiate + call": [],
                "raw wasmtime, warm instance": [],
            }
            steps: list[Callable[[], Any]] = [
                full,
                full_fresh,
                lambda: sandbox.call(component, "action", ("score", payload), limits, NoHost()),
                lambda: raw.call_fresh("score", payload),
                lambda: warm.call("score", payload),
            ]
            for _ in range(10):  # warm-up, not counted
                for step in steps:
                    if asyncio.iscoroutine(result := step()):
                        await result
            load = [load_average()]
            for i in range(calls):
                for name, step in zip(rows, steps, strict=True):
                    t = time.perf_counter()
                    if asyncio.iscoroutine(result := step()):
                        await result
                    rows[name].append(time.perf_counter() - t)
                if i % 50 == 0:
                    load.append(load_average())
            load.append(load_average())
        finally:
            await platform.stop()
    sandbox.stop()
    score_claim = plain_python_scorer()
    plain = []
    for _ in range(calls * 10):
        t = time.perf_counter()
        score_claim(json.loads(payload))
        plain.append(time.perf_counter() - t)
    rows["plain Python in-process"] = plain

    fresh = statistics.median(rows["raw wasmtime, instantiate + call"])
    kept = statistics.median(rows["raw wasmtime, warm instance"])
    print(
        f"\n{db}: fraud-scorer 'score', {calls} calls per row, interleaved; "
        f"load average {min(load):.1f}-{max(load):.1f}"
    )
    print(f"  first call_action of the process (artifact from disk or compiled): {fmt(first)}")
    if peak is not None:
        print(f"  peak linear memory of a call: {peak / (1 << 20):.1f} MiB")
    print(f"  {'':<36}{'p50':>12}{'p99':>13}{'calls/s':>10}{'x raw inst.':>13}{'x raw warm':>12}")
    for name, values in rows.items():
        p50 = statistics.median(values)
        print(
            f"  {name:<36}{fmt(p50)}  {fmt(pct(values, 99))}{1 / statistics.mean(values):>10.0f}"
            f"{p50 / fresh:>13.2f}{p50 / kept:>12.1f}"
        )


async def main(args: argparse.Namespace) -> None:
    wasm = await asyncio.to_thread(build, SRC)
    print("loading the component into bare wasmtime (compiled once, then cached) …", flush=True)
    raw = await asyncio.to_thread(RawWasm, wasm, peers.cache_dir() / "wasm")
    for db in args.db:
        async with AsyncExitStack() as stack:
            url = ""
            if db == "postgresql":
                url = await stack.enter_async_context(databases.throwaway("bench_plugins"))
            await run(db, url, args.calls, await asyncio.to_thread(wasm.read_bytes), raw)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--db", default="sqlite,postgresql", type=lambda s: s.split(","))
    asyncio.run(main(parser.parse_args()))
