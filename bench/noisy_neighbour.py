"""A tenant creating records while another floods hostile plugin calls (sleep, spin, memory).

    PYTHONPATH=src .venv/bin/python bench/noisy_neighbour.py [-n 400] [--flood 50]
        [--concurrency 4] [--rounds 1] [--polite] [--flood-in-process] [--flood-one-client]
        [--database-url postgresql+asyncpg://…]

A real `plinth serve` runs in its own process (SQLite by default). Tenant `quiet` creates
records over HTTP (`--concurrency` at a time, `-n` in all) from this process, twice in the same
run: once alone, then while tenant `noisy` keeps `--flood` hostile plugin calls in flight (a
third each of `time.sleep(30)`, an infinite loop, and a memory bomb; each finished call is
replaced at once, whatever its answer; `--polite`: after waiting the Retry-After of a refusal)
from a second process, as two tenants' clients are; each attacker has a connection (and an
httpx client) of its own, as 50 attackers' machines would. `--flood-one-client`: one client
and pool for all 50, whose pool scans and per-request imports cost this machine ~4x the CPU
(a third of a core), which no remote attacker takes from a server. `--flood-in-process` runs
the flood in this process's event loop instead (the bench's first version): the quiet
tenant's timings then also include the time its own client spends on the flood's responses.
`--rounds R` alternates the two phases R times (-n/R records each; the flood drains for 7 s
before each quiet phase after the first): the machine's other load, when it changes during a
run, then falls on both phases alike. It prints the quiet tenant's latency percentiles in both
phases, their ratio, and what the noisy tenant's calls were answered.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import socket
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from plinth.extensions.build import build, default_cache_dir  # noqa: E402
from plinth.extensions.package import pack  # noqa: E402

TOKEN = "plt_bench_admin_token_0123456789abcdef"
HOSTILE = ROOT / "tests/extensions/plugins/hostile"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
APP = {"entities": {"note": {"fields": {"text": {"type": "string"}, "n": {"type": "integer"}}}}}
DRAIN = 7.0  # seconds for a stopped flood's calls to end (5 s deadline) and workers to respawn
ATTACKS = tuple(os.environ.get("BENCH_ATTACKS", "sleep,loop,membomb").split(","))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _start(env: dict[str, str], base: str) -> asyncio.subprocess.Process:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "plinth.cli.main", "serve", env=env
    )
    async with httpx.AsyncClient() as c:
        for _ in range(1200):
            try:
                if (await c.get(f"{base}/healthz")).status_code == 200:
                    return process
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.05)
    raise SystemExit("the server did not start")


async def _setup(c: httpx.AsyncClient, wasm: bytes) -> None:
    for slug in ("noisy", "quiet"):
        assert (await c.post("/api/tenants", json={"slug": slug})).status_code == 201
    text = (HOSTILE / "plinth-plugin.toml").read_text()
    r = await c.post("/api/plugins", content=pack(text, wasm), timeout=600)
    assert r.status_code == 201, r.text
    grant = {"capabilities": ["log", "records.write"]}
    r = await c.post("/api/t/noisy/plugins", json={"name": "hostile", "grant": grant})
    assert r.status_code == 201, r.text
    # The quiet tenant's own rate limit (200 a second by default) is not what is measured: on
    # an idle machine 4 writers go past it.
    limits = {"limits": {"per_second": 100_000}}
    assert (await c.put("/api/t/quiet/gateway", json=limits)).status_code == 200
    assert (await c.post("/api/t/quiet/apps", json={"slug": "notes"})).status_code == 201
    assert (await c.put("/api/t/quiet/apps/notes/draft", json=APP)).status_code == 200
    assert (await c.post("/api/t/quiet/apps/notes/publish", json={})).status_code == 201
    # One call of each kind first: the component is loaded, the pool started.
    r = await c.post("/api/t/noisy/plugins/hostile/actions/echo", json={}, timeout=120)
    assert r.status_code == 200, r.text


async def _quiet(c: httpx.AsyncClient, n: int, concurrency: int) -> list[float]:
    found: list[float] = []
    counter = itertools.count()

    async def writer() -> None:
        while (i := next(counter)) < n:
            started = time.perf_counter()
            r = await c.post(
                "/api/t/quiet/apps/notes/data/note", json={"text": f"n{i}", "n": i}, timeout=120
            )
            found.append(time.perf_counter() - started)
            assert r.status_code == 201, r.text

    await asyncio.gather(*(writer() for _ in range(concurrency)))
    return found


async def _flood(
    base: str,
    shared: httpx.AsyncClient | None,
    width: int,
    stop: asyncio.Event,
    codes: Counter[str],
    polite: bool,
) -> None:
    """`width` attackers, each on a connection (and client) of its own unless `shared`."""

    async def attacker(kind: str) -> None:
        async with contextlib.AsyncExitStack() as stack:
            c = shared or await stack.enter_async_context(
                httpx.AsyncClient(base_url=base, headers=AUTH)
            )
            while not stop.is_set():
                try:
                    r = await c.post(
                        f"/api/t/noisy/plugins/hostile/actions/{kind}",
                        json={"seconds": 30},
                        timeout=60,
                    )
                    codes[f"{kind} {r.status_code} {r.json().get('code', 'ok')}"] += 1
                    if polite and "retry-after" in r.headers:
                        await asyncio.sleep(float(r.headers["retry-after"]))
                except httpx.HTTPError as exc:
                    codes[f"{kind} {type(exc).__name__}"] += 1

    await asyncio.gather(*(attacker(ATTACKS[i % len(ATTACKS)]) for i in range(width)))


async def _flood_process(base: str, width: int, polite: bool, one_client: bool) -> None:
    """The flood in its own process: floods until stdin closes, then prints its answers."""
    limits = httpx.Limits(max_connections=width + 10)
    stop, codes = asyncio.Event(), Counter[str]()
    async with httpx.AsyncClient(base_url=base, headers=AUTH, limits=limits) as c:
        flood = asyncio.create_task(
            _flood(base, c if one_client else None, width, stop, codes, polite)
        )
        print("flooding", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
        stop.set()
        await flood
    print(json.dumps(codes), flush=True)


class _Flood:
    """The noisy tenant's flood, in a process of its own (or this one's event loop)."""

    def __init__(self, base: str, c: httpx.AsyncClient, args: argparse.Namespace) -> None:
        self.base, self.c, self.args = base, c, args
        self.codes: Counter[str] = Counter()
        self.stop = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        a = self.args
        if a.flood_in_process:
            self.task = asyncio.create_task(
                _flood(
                    self.base,
                    self.c if a.flood_one_client else None,
                    a.flood,
                    self.stop,
                    self.codes,
                    a.polite,
                )
            )
            return
        argv = [__file__, "--flood-process", self.base, "--flood", str(a.flood)]
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            *argv,
            *(["--polite"] if a.polite else []),
            *(["--flood-one-client"] if a.flood_one_client else []),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        assert self.process.stdout is not None
        assert (await self.process.stdout.readline()).strip() == b"flooding"

    async def end(self) -> None:
        if self.task is not None:
            self.stop.set()
            await self.task
            return
        assert self.process is not None and self.process.stdin is not None
        self.process.stdin.close()
        out, _ = await self.process.communicate()
        self.codes.update(json.loads(out.decode().strip().splitlines()[-1]))


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def main(args: argparse.Namespace) -> None:
    wasm = build(HOSTILE, default_cache_dir()).read_bytes()
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT / "src"),
            "PLINTH_DATA_DIR": f"{tmp}/data",
            "PLINTH_ADMIN_TOKEN": TOKEN,
            "PLINTH_PORT": str(port),
            "PLINTH_EMBEDDED_WORKER": "false",
            "PLINTH_LOG_LEVEL": "warning",
        }
        if args.database_url:
            env["PLINTH_DATABASE_URL"] = args.database_url
        server = await _start(env, base)
        try:
            limits = httpx.Limits(max_connections=args.flood + args.concurrency + 10)
            async with httpx.AsyncClient(base_url=base, headers=AUTH, limits=limits) as c:
                await _setup(c, wasm)
                await _quiet(c, 50, args.concurrency)  # warm-up
                quiet: list[float] = []
                noisy: list[float] = []
                codes: Counter[str] = Counter()
                for i in range(args.rounds):
                    if i:  # the last flood's calls run on to their deadline (5 s) first
                        await asyncio.sleep(DRAIN)
                    share = args.n // args.rounds + (i < args.n % args.rounds)
                    quiet += await _quiet(c, share, args.concurrency)
                    flood = _Flood(base, c, args)
                    await flood.start()
                    await asyncio.sleep(2.0)  # the flood is in full swing
                    noisy += await _quiet(c, share, args.concurrency)
                    await flood.end()
                    codes.update(flood.codes)
        finally:
            server.kill()
            await server.wait()
    db = "PostgreSQL" if args.database_url else "SQLite"
    print(f"noisy neighbour ({db}, {os.cpu_count()} cores): quiet tenant creates {args.n} records")
    where = "this process" if args.flood_in_process else "another process"
    print(
        f"  {args.concurrency} at a time; noisy tenant keeps {args.flood} hostile calls in flight"
        f" from {where}{', waiting Retry-After' if args.polite else ''}"
        + (f"; {args.rounds} rounds of quiet then flood" if args.rounds > 1 else "")
    )
    for name, values in (("quiet", quiet), ("noisy", noisy)):
        print(
            f"  {name:5}  p50 {_pct(values, 0.5):7.1f} ms  p95 {_pct(values, 0.95):7.1f} ms  "
            f"p99 {_pct(values, 0.99):7.1f} ms  max {max(values) * 1000:7.1f} ms  "
            f"mean {statistics.mean(values) * 1000:6.1f} ms"
        )
    print(f"  p99 noisy/quiet: {_pct(noisy, 0.99) / _pct(quiet, 0.99):.2f}x (bound: 1.5x)")
    print("  noisy tenant's calls answered:")
    for key, count in sorted(codes.items()):
        print(f"    {count:5}  {key}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=400)
    parser.add_argument("--flood", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="alternate quiet and flood phases this many times (each -n/rounds records), so "
        "that a change in the machine's other load falls on both phases alike",
    )
    parser.add_argument("--database-url", default=None)
    parser.add_argument(
        "--polite", action="store_true", help="the noisy tenant waits Retry-After when refused"
    )
    parser.add_argument(
        "--flood-in-process",
        action="store_true",
        help="flood from this process's event loop (the quiet timings include its client work)",
    )
    parser.add_argument(
        "--flood-one-client",
        action="store_true",
        help="all attackers share one httpx client (its pool costs the shared CPU far more)",
    )
    parser.add_argument("--flood-process", metavar="BASE", help=argparse.SUPPRESS)
    parsed = parser.parse_args()
    if parsed.flood_process:
        asyncio.run(
            _flood_process(
                parsed.flood_process, parsed.flood, parsed.polite, parsed.flood_one_client
            )
        )
    else:
        asyncio.run(main(parsed))
