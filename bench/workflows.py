"""Plinth's workflow engine against DBOS on the same PostgreSQL: a 5-step workflow, steps/s.

    .venv/bin/python bench/workflows.py [--instances 100] [--workers 1,4] [--rounds 2]
        [--concurrency 10] [--poll 0.05] [--variants plain,plugin]

One workflow, written idiomatically for each engine: score the claim, route it (low value and
clean → approve), decide, write a note, finish. Plinth runs it as a published workflow
(`assign`, `gateway`, `assign`, `assign`, `end`) executed by `plinth worker` processes; DBOS as
five `@DBOS.step` functions in a `@DBOS.workflow` (`baseline/dbos_app.py`), enqueued on a DBOS
queue and executed by worker processes of its own, on its own throw-away database. Variant
`plugin`: the first step is the fraud scorer — Plinth's `service_task` calling the plugin in
its sandbox; DBOS's step calling the same WebAssembly component on bare wasmtime.

Each run starts W worker processes per side (each processing up to `--concurrency` instances
at once: Plinth's `--concurrency`, DBOS's `worker_concurrency`), waits until they idle, warms
them up, then starts `--instances` instances at once and times until all have finished. Sides
alternate A B A B. Printed: steps/s, the workers' CPU ms per step, and the transactions per
step their database counted (pg_stat_database), with the ratio Plinth / DBOS.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
from rig import databases, peers
from rig.servers import Server, load_average

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from plinth.extensions import manifest as manifests  # noqa: E402
from plinth.extensions.build import build  # noqa: E402
from plinth.extensions.package import pack, read_modules  # noqa: E402
from plinth.governance.principal import PLATFORM_ADMIN, Principal  # noqa: E402
from plinth.server.platform import Platform  # noqa: E402
from plinth.settings import Settings  # noqa: E402

ADMIN = Principal("bench", "token", frozenset({PLATFORM_ADMIN}), name="bench")
PLUGIN = ROOT / "examples/plugins/fraud-scorer"
CLAIM = {"amount": 300.0, "country": "FR", "description": "Water damage in the kitchen"}


def tail(score: str) -> dict[str, Any]:
    """Steps 2-5: route on the amount and the score, decide, note, end."""
    clean = f"double(vars.amount) <= 1000.0 && {score} < 30"
    return {
        "route": {
            "type": "gateway",
            "branches": [{"when": clean, "next": "approve"}],
            "default": "review",
        },
        "approve": {"type": "assign", "set": {"decision": "'approved'"}, "next": "note"},
        "review": {"type": "assign", "set": {"decision": "'to review'"}, "next": "note"},
        "note": {
            "type": "assign",
            "set": {"summary": "vars.decision + ': ' + string(double(vars.amount))"},
            "next": "done",
        },
        "done": {"type": "end"},
    }


WORKFLOWS = {
    "plain": {
        "start": [{"type": "manual"}],
        "first": "facts",
        "nodes": {
            "facts": {
                "type": "assign",
                "set": {"score": "double(vars.amount) > 500.0 ? 10 : 0"},
                "next": "route",
            },
            **tail("vars.score"),
        },
    },
    "plugin": {
        "start": [{"type": "manual"}],
        "first": "triage",
        "nodes": {
            "triage": {
                "type": "service_task",
                "action": "plugin",
                "plugin": "fraud-scorer",
                "operation": "score",
                "input": {
                    "amount": "double(vars.amount)",
                    "country": "vars.country",
                    "description": "vars.description",
                },
                "output": "fraud",
                "next": "route",
            },
            **tail("int(vars.fraud.score)"),
        },
    },
}


@dataclass
class Run:
    steps: int
    seconds: float
    cpu_seconds: float
    transactions: int | None
    failed: int
    enqueue_seconds: float
    load: float


@dataclass
class Results:
    runs: dict[tuple[str, str, int], list[Run]] = field(default_factory=dict)

    def add(self, side: str, variant: str, workers: int, run: Run) -> None:
        self.runs.setdefault((side, variant, workers), []).append(run)

    def steps_per_s(self, key: tuple[str, str, int]) -> float:
        runs = self.runs[key]
        return sum(r.steps for r in runs) / sum(r.seconds for r in runs)


async def wait_idle(servers: list[Server], limit_s: float = 180.0) -> None:
    """Until every worker process has finished starting: under 30% of a core for 1 s (an idle
    worker still polls its queue)."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        before = [s.cpu_seconds() for s in servers]
        await asyncio.sleep(1.0)
        for s in servers:
            if s.proc is not None and s.proc.poll() is not None:
                raise RuntimeError(f"{s.name} exited:\n{s.tail()}")
        if all(s.cpu_seconds() - b < 0.3 for s, b in zip(servers, before, strict=True)):
            return
    raise TimeoutError("workers did not settle")


class Side:
    """An engine under test: how to start its workers, start instances and count steps."""

    name: str
    url: str

    async def setup(self) -> None: ...
    async def ready(self, workers: list[Server]) -> None: ...
    def workers(self, n: int, variant: str, tmp: Path) -> list[Server]: ...
    async def start(self, variant: str, n: int) -> None: ...
    async def unfinished(self) -> int: ...
    async def tally(self) -> tuple[int, int]: ...  # (completed steps, failed instances) so far
    async def close(self) -> None: ...

    _conn: Any = None

    async def _scalar(self, sql: str) -> int:
        """One number from the side's database, on one connection kept for the run (the
        polling must not open a session every 20 ms: the server's 100 are shared)."""
        if self._conn is None or self._conn.is_closed():
            self._conn = await asyncpg.connect(self.url)
        return int(await self._conn.fetchval(sql) or 0)

    async def hang_up(self) -> None:
        if self._conn is not None:
            await self._conn.close()
            self._conn = None


class PlinthSide(Side):
    name = "plinth"

    def __init__(self, url: str, args: argparse.Namespace, tmp: Path) -> None:
        self.url = url
        self.args = args
        # The workers share the driver's data directory (its master key, the plugin's blob),
        # as `plinth worker`s beside a server do.
        self.data_dir = tmp / "plinth"
        self.platform = Platform(
            Settings(database_url=self._sa(url), embedded_worker=False, data_dir=self.data_dir)
        )

    @staticmethod
    def _sa(url: str) -> str:
        return url.replace("postgresql://", "postgresql+asyncpg://")

    async def setup(self) -> None:
        await self.platform.start()
        self.tenant = await self.platform.tenants.create("bench", "Bench")
        if "plugin" in self.args.variants:
            wasm = await asyncio.to_thread(build, PLUGIN)
            text = (PLUGIN / "plinth-plugin.toml").read_text()
            modules = read_modules(manifests.parse(text), PLUGIN)
            package = pack(text, await asyncio.to_thread(wasm.read_bytes), modules=modules)
            await self.platform.plugins.publish(package, ADMIN)
            await self.platform.plugins.install(
                self.tenant, "fraud-scorer", ADMIN, capabilities=["log", "ui"]
            )
        await self.platform.metadata.create_app(self.tenant, "claims")
        await self.platform.metadata.put_draft(
            self.tenant,
            "claims",
            {"workflows": {v: WORKFLOWS[v] for v in self.args.variants}},
        )
        await self.platform.metadata.publish(self.tenant, "claims", ADMIN)

    async def ready(self, workers: list[Server]) -> None:
        await wait_idle(workers)  # `plinth worker` says nothing when it starts polling

    def workers(self, n: int, variant: str, tmp: Path) -> list[Server]:
        exe = Path(sys.executable).with_name("plinth")
        return [
            Server(
                f"plinth worker {i}",
                [str(exe), "worker", "--concurrency", str(self.args.concurrency)],
                "",
                tmp / f"plinth-worker-{i}.log",
                env={
                    "PLINTH_DATABASE_URL": self._sa(self.url),
                    "PLINTH_DATA_DIR": str(self.data_dir),
                },
            )
            for i in range(n)
        ]

    async def start(self, variant: str, n: int) -> None:
        sem = asyncio.Semaphore(8)

        async def one() -> None:
            async with sem:
                await self.platform.workflows.start(self.tenant, "claims", variant, CLAIM, ADMIN)

        await asyncio.gather(*(one() for _ in range(n)))

    async def unfinished(self) -> int:
        return await self._scalar("SELECT count(*) FROM wf_instances WHERE status = 'running'")

    async def tally(self) -> tuple[int, int]:
        steps = await self._scalar("SELECT count(*) FROM wf_steps WHERE status = 'completed'")
        failed = await self._scalar(
            "SELECT count(*) FROM wf_instances WHERE status NOT IN ('running', 'completed')"
        )
        return steps, failed

    async def close(self) -> None:
        await self.platform.stop()


class DbosSide(Side):
    name = "dbos"

    def __init__(self, url: str, args: argparse.Namespace) -> None:
        self.url = url
        self.args = args

    async def setup(self) -> None:
        self.client: Any = None
        if "plugin" in self.args.variants:
            self.wasm = await asyncio.to_thread(build, PLUGIN)

    async def ready(self, workers: list[Server]) -> None:
        for w in workers:  # launched: its migrations are done and it listens to the queue
            await asyncio.to_thread(w.wait_log, "dbos worker ready")

    def workers(self, n: int, variant: str, tmp: Path) -> list[Server]:
        argv = [
            sys.executable,
            str(ROOT / "bench/baseline/dbos_app.py"),
            "--db",
            self.url,
            "--concurrency",
            str(self.args.concurrency),
            "--poll",
            str(self.args.poll),
        ]
        if variant == "plugin":
            argv += ["--plugin", str(self.wasm), "--cache", str(peers.cache_dir() / "wasm")]
        return [Server(f"dbos worker {i}", argv, "", tmp / f"dbos-{i}.log") for i in range(n)]

    async def start(self, variant: str, n: int) -> None:
        if self.client is None:  # after a worker has created DBOS's tables
            from dbos import DBOSClient

            self.client = DBOSClient(system_database_url=self.url)
        options: Any = {"queue_name": "claims", "workflow_name": "claim_flow"}
        sem = asyncio.Semaphore(8)

        async def one() -> None:
            async with sem:
                await self.client.enqueue_async(options, CLAIM)

        await asyncio.gather(*(one() for _ in range(n)))

    async def unfinished(self) -> int:
        return await self._scalar(
            "SELECT count(*) FROM dbos.workflow_status WHERE status IN ('ENQUEUED', 'PENDING')"
        )

    async def tally(self) -> tuple[int, int]:
        steps = await self._scalar("SELECT count(*) FROM dbos.operation_outputs")
        failed = await self._scalar(
            "SELECT count(*) FROM dbos.workflow_status WHERE status NOT IN "
            "('ENQUEUED', 'PENDING', 'SUCCESS')"
        )
        return steps, failed

    async def close(self) -> None:
        if self.client is not None:
            self.client.destroy()


async def until(check: Callable[[], Awaitable[int]], limit_s: float) -> None:
    deadline = time.monotonic() + limit_s
    while await check():
        if time.monotonic() > deadline:
            raise TimeoutError("instances did not finish")
        await asyncio.sleep(0.02)


async def one_run(side: Side, variant: str, workers: int, args: argparse.Namespace) -> Run:
    with tempfile.TemporaryDirectory(prefix="plinth-bench-wf-") as tmp:
        procs = side.workers(workers, variant, Path(tmp))
        try:
            for p in procs:
                p.start()
            await side.ready(procs)
            await side.start(variant, 2 * workers)  # warm-up: caches, plugin component
            await until(side.unfinished, 300)
            await databases.settle()  # the warm-up's statistics reach pg_stat_database
            db0 = await databases.counters(side.url) if side.url.startswith("postgres") else None
            steps0, failed0 = await side.tally()
            cpu0 = sum(p.cpu_seconds() for p in procs)
            t0 = time.perf_counter()
            await side.start(variant, args.instances)
            enqueued = time.perf_counter() - t0
            await until(side.unfinished, 900)
            elapsed = time.perf_counter() - t0
            cpu = sum(p.cpu_seconds() for p in procs) - cpu0
            load = load_average()
        finally:
            for p in procs:
                p.stop()  # a backend that ends flushes its statistics
        steps, failed = await side.tally()
        transactions = None
        if db0 is not None:
            await asyncio.sleep(1.5)
            transactions = (await databases.counters(side.url) - db0).transactions
        return Run(steps - steps0, elapsed, cpu, transactions, failed - failed0, enqueued, load)


async def main(args: argparse.Namespace) -> None:
    try:
        import dbos  # noqa: F401 - the peer must be installed before anything starts
    except ImportError:
        raise SystemExit("DBOS is not installed: run `sh bench/peers/install.sh`") from None
    results = Results()
    started = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    async with AsyncExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="plinth-bench-wf-")))
        plinth_url = await stack.enter_async_context(databases.throwaway("bench_wf_plinth"))
        dbos_url = await stack.enter_async_context(databases.throwaway("bench_wf_dbos"))
        plinth = PlinthSide(plinth_url, args, tmp)
        dbos = DbosSide(dbos_url, args)
        sides: list[Side] = [plinth, dbos]
        print("setting up: Plinth app and plugin, DBOS system database …", flush=True)
        await plinth.setup()
        stack.push_async_callback(plinth.close)
        stack.push_async_callback(plinth.hang_up)
        await dbos.setup()
        stack.push_async_callback(dbos.close)
        stack.push_async_callback(dbos.hang_up)
        for workers in args.workers:
            for variant in args.variants:
                for r in range(args.rounds):
                    for side in sides:
                        run = await one_run(side, variant, workers, args)
                        results.add(side.name, variant, workers, run)
                        print(
                            f"  {variant:6s} {workers} worker(s) round {r + 1} {side.name:6s} "
                            f"{run.steps / run.seconds:7.1f} steps/s  ({run.steps} steps in "
                            f"{run.seconds:.1f} s, started in {run.enqueue_seconds:.1f} s, "
                            f"{run.failed} failed)  load {run.load:.1f}",
                            flush=True,
                        )
    report(results, args, started)


def report(results: Results, args: argparse.Namespace, started: str) -> None:
    print(
        f"\n5-step workflow, {args.instances} instances per run, {args.rounds} rounds per cell "
        f"alternating Plinth/DBOS, up to {args.concurrency} instances in flight per worker, "
        f"PostgreSQL; started {started}"
    )
    print(
        f"  {'variant':<8}{'workers':>8}{'side':>8}{'steps/s':>10}{'cpu ms/step':>13}"
        f"{'xact/step':>11}{'failed':>8}{'load':>7}"
    )
    for workers in args.workers:
        for variant in args.variants:
            rates = {}
            for side in ("plinth", "dbos"):
                key = (side, variant, workers)
                runs = results.runs[key]
                steps = sum(r.steps for r in runs)
                rates[side] = results.steps_per_s(key)
                xacts = [r.transactions for r in runs if r.transactions is not None]
                print(
                    f"  {variant:<8}{workers:>8}{side:>8}{rates[side]:>10.1f}"
                    f"{1000 * sum(r.cpu_seconds for r in runs) / max(1, steps):>13.2f}"
                    f"{(sum(xacts) / max(1, steps)) if xacts else float('nan'):>11.2f}"
                    f"{sum(r.failed for r in runs):>8}{max(r.load for r in runs):>7.1f}"
                )
            print(f"  {'':<8}{'':>8}{'ratio':>8}{rates['plinth'] / rates['dbos']:>9.2f}x")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--instances", type=int, default=100)
    parser.add_argument("--workers", default="1,4", type=lambda s: [int(x) for x in s.split(",")])
    parser.add_argument("--variants", default="plain,plugin", type=lambda s: s.split(","))
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=10)
    # DBOS starts queued work only when it polls (default every 1 s); a busy Plinth worker
    # takes the next job at once, so DBOS gets a short interval to be measured at its pace.
    parser.add_argument("--poll", type=float, default=0.05, help="DBOS queue polling, s")
    parsed = parser.parse_args()
    unknown = set(parsed.variants) - set(WORKFLOWS)
    if unknown:
        parser.error(f"unknown variants: {', '.join(sorted(unknown))}")
    asyncio.run(main(parsed))
