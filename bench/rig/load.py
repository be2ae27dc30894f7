"""The load generator: wrk in its own process with `bench/load/wrk.lua`, and the merge of
several rounds into one throughput figure and one latency distribution."""

from __future__ import annotations

import asyncio
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "load" / "wrk.lua"


@dataclass(frozen=True)
class Round:
    """One wrk run against one side."""

    requests: int
    seconds: float
    errors: dict[str, int]
    percentiles_us: dict[float, int]
    cpu_seconds: float  # the server's CPU over the run
    load: float  # 1-minute load average at the end of the run


@dataclass
class Totals:
    """Rounds of one side and operation, merged."""

    rounds: list[Round] = field(default_factory=list)

    @property
    def requests(self) -> int:
        return sum(r.requests for r in self.rounds)

    @property
    def errors(self) -> int:
        return sum(sum(r.errors.values()) for r in self.rounds)

    @property
    def rps(self) -> float:
        return self.requests / sum(r.seconds for r in self.rounds)

    @property
    def cpu_ms_per_request(self) -> float:
        return 1000 * sum(r.cpu_seconds for r in self.rounds) / max(1, self.requests)

    def percentile_ms(self, q: float) -> float:
        """Quantile `q` (0-100) of all rounds' latencies: each round's percentile grid is a
        sample weighted by its request count (exact to the grid's 0.5 % steps)."""
        points: list[tuple[int, float]] = []
        for r in self.rounds:
            weight = r.requests / len(r.percentiles_us)
            points += [(v, weight) for v in r.percentiles_us.values()]
        points.sort()
        total = sum(w for _, w in points)
        seen = 0.0
        for value, weight in points:
            seen += weight
            if seen >= total * q / 100:
                return value / 1000
        return points[-1][0] / 1000


def wrk_path() -> str:
    found = shutil.which("wrk")
    if found is None:
        raise SystemExit("wrk is not installed (Debian: apt-get install wrk)")
    return found


async def run_wrk(
    url: str,
    op: str,
    path: str,
    *,
    token: str,
    ids_file: Path | None,
    seconds: float,
    threads: int,
    connections: int,
) -> tuple[int, float, dict[str, int], dict[float, int]]:
    """One wrk run: requests, seconds, errors by kind, latency percentiles in µs."""
    argv = [
        wrk_path(),
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",  # wrk takes whole seconds
        "--timeout",
        "10s",
        "-H",
        f"Authorization: Bearer {token}",
        "-s",
        str(SCRIPT),
        url,
        "--",
        op,
        path,
    ]
    if ids_file is not None:
        argv.append(str(ids_file))
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await proc.communicate()
    for line in out.decode().splitlines():
        if line.startswith("wrk-result "):
            data = json.loads(line.removeprefix("wrk-result "))
            return (
                int(data["requests"]),
                data["duration_us"] / 1e6,
                {k: int(v) for k, v in data["errors"].items()},
                {float(k): int(v) for k, v in data["percentiles_us"].items()},
            )
    raise RuntimeError(f"wrk gave no result ({proc.returncode}): {out.decode()}{err.decode()}")
