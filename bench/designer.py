"""Plinth's designer WebSocket against Hocuspocus, with the same Node Yjs clients.

    .venv/bin/python bench/designer.py [--editors 2,10,50,200] [--seconds 20] [--rounds 1]
        [--rate 5] [--grace 5] [--sides plinth,hocuspocus]

Servers are real processes: `plinth serve` on a throw-away PostgreSQL database, and Hocuspocus
(`peers/hocuspocus-server.mjs`: a token check and its database extension persisting to a
throw-away PostgreSQL database of its own) on Node 22. Clients are `peers/yclients.mjs` in
separate Node processes: stock yjs documents behind the y-websocket provider (Plinth speaks
that protocol) or @hocuspocus/provider. Every run gets a fresh room holding the same document:
a new Plinth app with the bench's `order` entity, and a Hocuspocus document seeded with the
state of another such app. N editors join, each adds a field of its own to the entity, then
sets its label `--rate` times a second for `--seconds`. Two editors are observers: they apply
every update and time each edit from the sender's clock to their own (same machine, same
clock); the others stop decoding what they receive once synced (the server still sends them
every update), so the clients do not starve a 2-core machine. Sides alternate per room size
(A B, A B with --rounds 2).

Printed per side and size: p50/p99 edit-to-peer latency, edits sent per second, the server's
CPU ms per edit (its process tree, from /proc, from the first edit until the server is idle
again), edits still not seen by an observer `--grace` s after the editors stopped, and how
long the server kept working after the clients left (drain; the next run waits for it), and
the CPU seconds the Node clients themselves used from joining to leaving.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from rig import databases, peers
from rig.servers import Server, free_port, load_average

BENCH = Path(__file__).resolve().parent
SCRIPTS = ("hocuspocus-server.mjs", "yclients.mjs")
ENTITY = {
    "fields": {
        "name": {"type": "string", "required": True, "maxLength": 100},
        "amount": {"type": "decimal", "precision": 12, "scale": 2, "min": 0},
        "status": {"type": "enum", "values": ["open", "paid", "void"], "default": "open"},
        "qty": {"type": "integer", "min": 0},
    }
}
QUIET_PER_PROCESS = 50
DRAIN_LIMIT = 600.0  # s; a server still busy then is reported as such


@dataclass
class Outcome:
    latencies: list[float]
    edits: int
    seconds: float
    cpu_seconds: float
    unseen: int  # edits an observer had not seen `grace` s after the last was sent
    drain: float  # s after the clients left until the server was idle again
    load: float
    client_cpu: float  # CPU seconds the Node clients used, join to exit


class Plinth:
    name = "plinth"

    def __init__(self, tmp: Path, db_url: str) -> None:
        port = free_port()
        self.admin = "plt_bench_admin_" + secrets.token_hex(16)
        exe = Path(sys.executable).with_name("plinth")
        self.server = Server(
            "plinth",
            [str(exe), "serve", "--host", "127.0.0.1", "--port", str(port)]
            + ["--data-dir", str(tmp / "plinth")]
            + ["--database-url", db_url.replace("postgresql://", "postgresql+asyncpg://")],
            f"http://127.0.0.1:{port}",
            tmp / "plinth.log",
            env={"PLINTH_ADMIN_TOKEN": self.admin},
        )
        self.rooms = 0

    async def start(self) -> None:
        self.server.start()
        await asyncio.to_thread(self.server.wait_ready, "/readyz")
        async with self._http(self.admin) as http:
            r = await http.post("/api/tenants", json={"slug": "bench", "name": "Bench"})
            assert r.status_code == 201, r.text
            r = await http.post("/api/t/bench/tokens", json={"name": "ed", "role": "designer"})
            assert r.status_code == 201, r.text
            self.token = str(r.json()["token"])

    def _http(self, token: str) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.server.url, headers={"Authorization": f"Bearer {token}"}, timeout=60
        )

    async def new_room(self) -> str:
        """A new app holding the `order` entity; its draft is the room."""
        self.rooms += 1
        slug = f"room{self.rooms}"
        async with self._http(self.admin) as http:
            r = await http.post("/api/t/bench/apps", json={"slug": slug})
            assert r.status_code == 201, r.text
            r = await http.put(
                f"/api/t/bench/apps/{slug}/draft", json={"entities": {"order": ENTITY}}
            )
            assert r.status_code == 200, r.text
        return slug

    def client(self, room: str) -> dict[str, Any]:
        ws = self.server.url.replace("http://", "ws://")
        return {"kind": "plinth", "url": f"{ws}/api/t/bench/apps/{room}/draft", "token": self.token}


class Hocuspocus:
    name = "hocuspocus"

    def __init__(self, tmp: Path, db_url: str, plinth: Plinth) -> None:
        port = free_port()
        self.token = secrets.token_urlsafe(24)
        self.plinth = plinth
        self.server = Server(
            "hocuspocus",
            [str(peers.node()), "hocuspocus-server.mjs", str(port), db_url, self.token],
            f"http://127.0.0.1:{port}",
            tmp / "hocuspocus.log",
            cwd=peers.hocuspocus_modules().parent,
        )
        self.url = f"ws://127.0.0.1:{port}"
        self.rooms = 0

    async def start(self) -> None:
        self.server.start()
        await asyncio.to_thread(self.server.wait_ready, "/")

    async def new_room(self) -> str:
        """A document holding the same state as a fresh Plinth room."""
        self.rooms += 1
        name = f"room{self.rooms}"
        state = await node_script(
            {"mode": "read", "entity": "order"} | self.plinth.client(await self.plinth.new_room())
        )
        await node_script(
            {"mode": "write", "state": state.strip(), "entity": "order"} | self.client(name)
        )
        return name

    def client(self, room: str) -> dict[str, Any]:
        return {"kind": "hocuspocus", "url": self.url, "room": room, "token": self.token}


Side = Plinth | Hocuspocus


async def node_script(config: dict[str, Any]) -> str:
    proc = await asyncio.create_subprocess_exec(
        str(peers.node()),
        "yclients.mjs",
        json.dumps(config),
        cwd=peers.hocuspocus_modules().parent,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 300)
    if proc.returncode:
        raise RuntimeError(f"yclients {config['mode']} failed: {err.decode()[-2000:]}")
    return out.decode()


async def run(side: Side, editors: int, args: argparse.Namespace) -> Outcome:
    room = await side.new_room()
    base = side.client(room) | {
        "mode": "edit",
        "entity": "order",
        "rate": args.rate,
        "seconds": args.seconds,
        "grace": args.grace,
    }
    observers = list(range(min(2, editors)))
    groups = [observers] + [
        list(range(i, min(i + QUIET_PER_PROCESS, editors)))
        for i in range(len(observers), editors, QUIET_PER_PROCESS)
    ]
    procs = []
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    for group in groups:
        config = base | {"editors": group, "observers": observers}
        procs.append(
            await asyncio.create_subprocess_exec(
                str(peers.node()),
                "yclients.mjs",
                json.dumps(config),
                cwd=peers.hocuspocus_modules().parent,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
        )
    try:
        for proc in procs:
            assert proc.stdout is not None
            line = await asyncio.wait_for(proc.stdout.readline(), 600)
            if line.strip() != b"ready":
                assert proc.stderr is not None
                err = await proc.stderr.read()
                raise RuntimeError(f"editors did not join: {line!r} {err.decode()[-2000:]}")
        cpu = side.server.cpu_seconds()
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write(b"go\n")
            await proc.stdin.drain()
        results = []
        for proc in procs:
            out, err = await asyncio.wait_for(proc.communicate(), args.seconds + args.grace + 120)
            lines = out.decode().strip().splitlines()
            if proc.returncode or not lines:
                raise RuntimeError(f"editors failed: {err.decode()[-2000:]}")
            results.append(json.loads(lines[-1]))
        load = load_average()
        # A server that fell behind keeps working after the clients left: that work is part of
        # the edits' cost, and must not land on the next run.
        drain = await asyncio.to_thread(side.server.wait_quiet, 0.2, DRAIN_LIMIT)
        cpu = side.server.cpu_seconds() - cpu
    finally:
        for proc in procs:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    client_cpu = (after.ru_utime + after.ru_stime) - (children.ru_utime + children.ru_stime)
    sent: dict[str, int] = {}
    latencies: list[float] = []
    seen: dict[str, dict[str, int]] = {}
    for r in results:
        sent |= r["sent"]
        latencies += r["latencies"]
        seen |= r["seen"]
    unseen = max(
        (sum(last - seen[o].get(n, 0) for n, last in sent.items() if n != o) for o in seen),
        default=0,
    )
    return Outcome(
        latencies, sum(sent.values()), args.seconds, cpu, unseen, drain, load, client_cpu
    )


def pct(values: list[float], q: int) -> float:
    """Percentile q of the latencies; NaN when the observers saw (almost) no edit at all."""
    if len(values) < 2:
        return float("nan")
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


async def main(args: argparse.Namespace) -> None:
    missing = peers.missing(peers.node(), peers.hocuspocus_modules() / "@hocuspocus/server")
    if missing:
        raise SystemExit(missing)
    for script in SCRIPTS:  # beside the peers' node_modules, so their imports resolve
        shutil.copy(BENCH / "peers" / script, peers.hocuspocus_modules().parent / script)
    started = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    outcomes: dict[tuple[str, int], list[Outcome]] = {}
    async with AsyncExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="plinth-bench-")))
        plinth = Plinth(tmp, await stack.enter_async_context(databases.throwaway("bench_ds")))
        hocus = Hocuspocus(
            tmp, await stack.enter_async_context(databases.throwaway("bench_hocus")), plinth
        )
        sides: list[Side] = [s for s in (plinth, hocus) if s.name in args.sides]
        running: list[Side] = [plinth, hocus] if hocus in sides else [plinth]  # seeds hocus
        try:
            for side in running:
                await side.start()
            for editors in args.editors:
                for r in range(args.rounds):
                    for side in sides:
                        got = await run(side, editors, args)
                        outcomes.setdefault((side.name, editors), []).append(got)
                        print(
                            f"  {editors:4d} editors round {r + 1} {side.name:10s} "
                            f"p50 {pct(got.latencies, 50):8.2f} ms  p99 "
                            f"{pct(got.latencies, 99):8.2f} ms  unseen {got.unseen}  "
                            f"drained in {got.drain:.0f} s  load {got.load:.1f}",
                            flush=True,
                        )
        finally:
            for side in running:
                side.server.stop()
    report(outcomes, args, started)


def report(
    outcomes: dict[tuple[str, int], list[Outcome]], args: argparse.Namespace, started: str
) -> None:
    print(
        f"\none room, editors each setting a field's label {args.rate}x/s for {args.seconds:g} s, "
        f"{args.rounds} round(s) per size, sides alternated; PostgreSQL; started {started}"
    )
    print(
        f"  {'editors':>7}  {'server':<11}{'p50 ms':>9}{'p99 ms':>9}{'edits/s':>9}"
        f"{'cpu ms/edit':>12}{'unseen':>8}{'drain s':>8}{'load':>7}{'clients cpu s':>14}"
    )
    for editors in args.editors:
        p99s = {}
        for name in args.sides:
            runs = outcomes[name, editors]
            lat = [x for o in runs for x in o.latencies]
            edits = sum(o.edits for o in runs)
            p99s[name] = pct(lat, 99)
            print(
                f"  {editors:>7}  {name:<11}{pct(lat, 50):>9.2f}{p99s[name]:>9.2f}"
                f"{edits / sum(o.seconds for o in runs):>9.0f}"
                f"{1000 * sum(o.cpu_seconds for o in runs) / max(1, edits):>12.2f}"
                f"{max(o.unseen for o in runs):>8}{max(o.drain for o in runs):>8.0f}"
                f"{max(o.load for o in runs):>7.1f}"
                f"{sum(o.client_cpu for o in runs):>14.1f}"
            )
        if len(p99s) < 2:
            continue
        ratio = p99s["plinth"] / p99s["hocuspocus"]
        shown = f"{ratio:8.2f}x" if ratio == ratio else "  (an observer saw no edit: nan)"
        print(f"  {'':>7}  {'p99 ratio':<11}{'':>9}{shown}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--editors", default="2,10,50,200", type=lambda s: [int(x) for x in s.split(",")]
    )
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--rate", type=float, default=5.0, help="edits per second per editor")
    parser.add_argument("--grace", type=float, default=5.0)
    parser.add_argument(
        "--sides",
        default="plinth,hocuspocus",
        type=lambda s: s.split(","),
        help="plinth, hocuspocus or both (one alone: to profile it)",
    )
    asyncio.run(main(parser.parse_args()))
