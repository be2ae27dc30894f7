"""A quiet tenant's latency while another tenant floods the server, fairness off vs on.

    PYTHONPATH=src .venv/bin/python bench/integration_fairness.py [-n 200] [--rounds 2]
        [--flood-workers 8]

Each round starts a real server (uvicorn, its own process, SQLite), creates tenants `noisy`
(20 requests/s) and `quiet`, then measures the quiet tenant's sequential `GET /apps` latency
without a flood and during a flood of the noisy tenant from another process (N connections in
a loop, ignoring Retry-After). "off" is the gateway without its fairness measures (no deny
cache, no holding of refusals), "on" is the shipped gateway. Ratios are against the no-flood
baseline measured in the same round.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import sys
import tempfile
import textwrap
import time

import httpx

TOKEN = "plt_bench_admin_token_0123456789abcdef"
SERVER = (
    textwrap.dedent("""
    import sys, uvicorn
    from plinth.integration import Gateway, Quotas
    from plinth.server import create_app
    from plinth.settings import Settings
    port, data, fair = int(sys.argv[1]), sys.argv[2], sys.argv[3] == "on"
    if not fair:
        Quotas.deny_cache = False
        Gateway.HOLD_AFTER = 10**9
    settings = Settings(data_dir=data, admin_token=%r, embedded_worker=False)
    uvicorn.run(create_app(settings), host="127.0.0.1", port=port, log_level="warning",
                access_log=False)
""")
    % TOKEN
)
FLOOD = (
    textwrap.dedent("""
    import asyncio, json, sys, time, httpx
    async def main(url, seconds, workers):
        codes = {}
        async with httpx.AsyncClient(headers={"Authorization": "Bearer %s"}) as c:
            end = time.monotonic() + seconds
            async def worker():
                while time.monotonic() < end:
                    r = await c.get(url)
                    codes[r.status_code] = codes.get(r.status_code, 0) + 1
            await asyncio.gather(*[worker() for _ in range(workers)])
        print(json.dumps(codes))
    asyncio.run(main(sys.argv[1], float(sys.argv[2]), int(sys.argv[3])))
""")
    % TOKEN
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _latencies(client: httpx.AsyncClient, url: str, n: int) -> list[float]:
    found = []
    for _ in range(n):
        started = time.perf_counter()
        r = await client.get(url)
        found.append(time.perf_counter() - started)
        assert r.status_code == 200, r.text
        await asyncio.sleep(0.005)
    return found


def _cpu(pid: int) -> float:
    """CPU seconds (user + system) a process has used so far (Linux /proc)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _p(values: list[float], q: float) -> float:
    return sorted(values)[min(len(values) - 1, int(q * len(values)))] * 1000


async def _round(fair: str, n: int, workers: int) -> dict[str, object]:
    port = _free_port()
    with tempfile.TemporaryDirectory() as data:
        server = await asyncio.create_subprocess_exec(
            sys.executable, "-c", SERVER, str(port), data, fair, env={**os.environ}
        )
        base = f"http://127.0.0.1:{port}"
        try:
            async with httpx.AsyncClient(
                base_url=base, headers={"Authorization": f"Bearer {TOKEN}"}
            ) as client:
                for _ in range(200):
                    try:
                        if (await client.get("/healthz")).status_code == 200:
                            break
                    except httpx.TransportError:
                        await asyncio.sleep(0.1)
                for slug in ("noisy", "quiet"):
                    await client.post("/api/tenants", json={"slug": slug})
                await client.put("/api/t/noisy/gateway", json={"limits": {"per_second": 20}})
                await client.put("/api/t/quiet/gateway", json={"limits": {"per_second": 1000}})
                url = "/api/t/quiet/apps"
                await _latencies(client, url, 30)
                cpu, wall = _cpu(server.pid), time.monotonic()
                before = await _latencies(client, url, n)
                idle_cpu = (_cpu(server.pid) - cpu) / (time.monotonic() - wall)
                seconds = n * 0.03 + 2
                flood = await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-c",
                    FLOOD,
                    f"{base}/api/t/noisy/apps",
                    str(seconds),
                    str(workers),
                    stdout=asyncio.subprocess.PIPE,
                )
                await asyncio.sleep(0.5)
                cpu, wall = _cpu(server.pid), time.monotonic()
                during = await _latencies(client, url, n)
                flood_cpu = (_cpu(server.pid) - cpu) / (time.monotonic() - wall)
                out, _ = await flood.communicate()
        finally:
            server.terminate()
            await server.wait()
    codes = json.loads(out)
    return {
        "before": before,
        "during": during,
        "codes": codes,
        "seconds": seconds,
        "cpu": (idle_cpu, flood_cpu),
    }


async def main(n: int, workers: int, rounds: int) -> None:
    print(
        f"quiet tenant GET /apps latency, {n} sequential requests; noisy tenant flood of "
        f"{workers} connections ignoring Retry-After (20 req/s budget); server CPU is the "
        "share of one core the server process used while the quiet tenant was measured"
    )
    for fair in ("off", "on") * rounds:
        r = await _round(fair, n, workers)
        before, during = r["before"], r["during"]
        assert isinstance(before, list) and isinstance(during, list)
        codes = r["codes"]
        assert isinstance(codes, dict)
        rate = sum(codes.values()) / float(r["seconds"])  # type: ignore[arg-type]
        p50b, p50d = statistics.median(before) * 1000, statistics.median(during) * 1000
        print(
            f"  fairness {fair:3}: p50 {p50b:6.2f} -> {p50d:6.2f} ms (x{p50d / p50b:.2f}), "
            f"p95 {_p(before, 0.95):6.2f} -> {_p(during, 0.95):6.2f} ms; flood answered "
            f"{rate:4.0f} req/s {dict(sorted(codes.items()))}; server CPU "
            f"{r['cpu'][0]:.0%} -> {r['cpu'][1]:.0%}"
        )  # type: ignore[index]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=200)
    parser.add_argument("--flood-workers", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2, help="off/on pairs, alternated")
    args = parser.parse_args()
    asyncio.run(main(args.n, args.flood_workers, args.rounds))
