"""Plugin call latency and throughput vs the same logic as plain Python, in the same run.

Run: PYTHONPATH=src /work/main/.venv/bin/python bench/plugins.py [--calls 300]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

from plinth.extensions.build import build  # noqa: E402
from plinth.extensions.models import DEFAULT_LIMITS  # noqa: E402
from plinth.extensions.package import pack  # noqa: E402
from plinth.extensions.sandbox import Sandbox  # noqa: E402
from plinth.governance.principal import PLATFORM_ADMIN, Principal  # noqa: E402
from plinth.server.platform import Platform  # noqa: E402
from plinth.settings import Settings  # noqa: E402

SRC = ROOT / "examples/plugins/fraud-scorer"
CLAIM = {"amount": 12000, "country": "FR", "description": "urgent, lost receipt", "prior_claims": 1}
ADMIN = Principal("bench", "token", frozenset({PLATFORM_ADMIN}), name="bench")


def plain_python_scorer():  # type: ignore[no-untyped-def]
    """The plugin's own score_claim, imported in-process (the SDK stubbed out)."""
    sdk = types.ModuleType("plinth_sdk")
    sdk.Reject = Exception  # type: ignore[attr-defined]
    sdk.action = lambda name: lambda fn: fn  # type: ignore[attr-defined]
    sdk.before_write = lambda fn: fn  # type: ignore[attr-defined]
    sdk.log = lambda *a, **k: None  # type: ignore[attr-defined]
    sys.modules["plinth_sdk"] = sdk
    namespace: dict[str, object] = {}
    exec(compile((SRC / "plugin.py").read_text(), "plugin.py", "exec"), namespace)
    return namespace["score_claim"]


def fmt(seconds: float) -> str:
    return f"{seconds * 1e3:8.3f} ms" if seconds >= 1e-3 else f"{seconds * 1e6:8.1f} µs"


async def main(calls: int) -> None:
    wasm = build(SRC)
    score_claim = plain_python_scorer()
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            data_dir=Path(tmp),
            admin_token="plt_bench_admin_0123456789abcdef",
            plugin_cache_dir=Path(tmp) / "compiled",
        )
        platform = Platform(settings)
        await platform.start()
        await platform.tenants.create("acme", "Acme")
        try:
            text = (SRC / "plinth-plugin.toml").read_text()
            await platform.plugins.publish(pack(text, wasm.read_bytes()), ADMIN)
            await platform.plugins.install("acme", "fraud-scorer", ADMIN, capabilities=["log"])
            svc = platform.plugins

            # Cold, no artifact on disk: compile + serialize + instantiate + call.
            t = time.perf_counter()
            await svc.call_action("acme", "fraud-scorer", "score", CLAIM, ADMIN)
            cold_compile = time.perf_counter() - t
            # Cold, artifact on disk (a new process, or after restart): deserialize_file.
            svc.sandbox._components.clear()
            t = time.perf_counter()
            await svc.call_action("acme", "fraud-scorer", "score", CLAIM, ADMIN)
            cold_disk = time.perf_counter() - t

            # Warm through the whole service (policy, grant, budget, sandbox, metering row,
            # audit event) and through the sandbox alone (fresh store + instantiate + call).
            svc.fuel_per_minute = 10**18
            full: list[float] = []
            for _ in range(calls):
                t = time.perf_counter()
                await svc.call_action("acme", "fraud-scorer", "score", CLAIM, ADMIN)
                full.append(time.perf_counter() - t)
            v = await svc.version("fraud-scorer")
            component, _ = svc.sandbox.component(v.sha256, svc.blob_dir / f"{v.sha256}.wasm")

            class NoHost:
                def call(self, capability: str, func: str, args: tuple) -> tuple[str, str]:
                    return "ok", ""

            import json

            limits = DEFAULT_LIMITS["action"]
            sandbox: list[float] = []
            for _ in range(calls):
                t = time.perf_counter()
                outcome = svc.sandbox.call(
                    component, "action", ("score", json.dumps(CLAIM)), limits, NoHost()
                )
                sandbox.append(time.perf_counter() - t)
            peak = outcome.peak_memory
            # The same without peak-memory metering (plugin_measure_memory=False): wasmtime's
            # own allocator with copy-on-write memory images; needs its own compiled artifact.
            cow_box = Sandbox(Path(tmp) / "cow", measure_memory=False)
            cow_component, _ = cow_box.component(v.sha256, svc.blob_dir / f"{v.sha256}.wasm")
            cow: list[float] = []
            for _ in range(calls):
                t = time.perf_counter()
                cow_box.call(
                    cow_component, "action", ("score", json.dumps(CLAIM)), limits, NoHost()
                )
                cow.append(time.perf_counter() - t)
            cow_box.stop()
            plain: list[float] = []
            n_plain = calls * 100
            t0 = time.perf_counter()
            for _ in range(n_plain):
                t = time.perf_counter()
                score_claim(json.loads(json.dumps(CLAIM)))
                plain.append(time.perf_counter() - t)
            plain_total = time.perf_counter() - t0
        finally:
            await platform.stop()

    p50 = statistics.median
    print(f"fraud-scorer 'score' action, {calls} calls each (plain Python: {n_plain})")
    print(f"  cold, compile (no artifact on disk) : {fmt(cold_compile)}")
    print(f"  peak linear memory of a call        : {peak / (1 << 20):.1f} MiB")
    print(f"  cold, deserialize artifact from disk: {fmt(cold_disk)}")
    print(
        f"  warm, full service call      p50 {fmt(p50(full))}  "
        f"{1 / statistics.mean(full):9.0f} calls/s  x{p50(full) / p50(plain):,.0f} plain"
    )
    print(
        f"  warm, sandbox only           p50 {fmt(p50(sandbox))}  "
        f"{1 / statistics.mean(sandbox):9.0f} calls/s  x{p50(sandbox) / p50(plain):,.0f} plain"
    )
    print(
        f"  warm, sandbox, no peak meter p50 {fmt(p50(cow))}  "
        f"{1 / statistics.mean(cow):9.0f} calls/s  x{p50(cow) / p50(plain):,.0f} plain"
        "  (copy-on-write memory)"
    )
    print(
        f"  plain Python in-process      p50 {fmt(p50(plain))}  "
        f"{n_plain / plain_total:9.0f} calls/s  (baseline)"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=300)
    asyncio.run(main(parser.parse_args().calls))
