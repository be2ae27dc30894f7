"""Many tenants on one node: memory, open files, threads, start-up and request latency by N.

    .venv/bin/python bench/tenants.py [--db sqlite,postgresql] [--counts 10,1000,10000]
        [--sample 40] [--warm-up N] [--seed S] [--concurrency 16] [--workdir DIR] [--json F]
        [--keep DIR [--phase create|measure|all] [--first N]] [--statements N]

For each database, tenants are created in steps up to each count in `--counts`, each with one
small published app (`notes`, one entity) and one record. Then a real server process
(`uvicorn plinth.server.app:create_app`) is started on that data and measured:

- **start-up**: seconds from spawning the process until `/readyz` answers (Python's imports
  included: they are most of it, and the same at any N), and `platform start`: the platform's
  own part, `Platform(settings)` + `start()` in-process (migrations checked, ledgers sealed,
  nothing per tenant);
- **idle**: RSS, open files (`/proc/PID/fd`) and threads of the process right after start;
- **cold**: the first `GET` of one record from each of `--sample` tenants never touched since
  start (p50/p99), in turn; with `--warm-up N`, after N other tenants were served three times
  each (a cold tenant on a process that has served others, as on a long-running node, rather
  than among the first requests a new process serves). The tenants are drawn with
  `--seed` (default: the number of tenants, so runs on one data set draw the same ones): a
  new seed draws tenants no earlier run touched, whose data is not yet in the operating
  system's or PostgreSQL's caches (a first touch rather than a tenant idle for a while);
- **warm**: the same requests again, three rounds (p50/p99). Both are timed on one kept-alive
  connection of `http.client` (httpx, used for the rest, costs ~1 ms of client CPU a request:
  more than a warm request's whole server side);
- **touched**: RSS, open files and threads after that, and the metrics endpoint's open and
  evicted tenant files.

`RSS/tenant` is the growth of idle RSS from the smallest count to this one, per added tenant.

**Creating 10,000 tenants fast.** Over HTTP every step pays authentication, the gateway and a
request's overhead; here they are created in-process through the service layer (the same
calls the API makes: `tenants.create`, `metadata.create_app` with its draft, `publish`,
`records.create`), `--concurrency` tenants at a time on one event loop, so one tenant's
database I/O overlaps another's CPU work. The platform database is shared; each tenant's
publish writes its own file (SQLite) or schema (PostgreSQL). The rate is printed.

**Long runs** (`--keep DIR`): the data stays in `DIR/<db>/` (and the PostgreSQL database
named in `DIR/postgresql/url`) and every created tenant is appended to `DIR/<db>/records`,
so creation resumes where a stopped run left off; `--phase create` only creates (start it
early, niced), `--phase measure` only measures what is there (under the bench lock). A second
creating process on the same dir takes its own numbers (`--first 20000`), so two
processes use both cores.

**Prepared statements** (`--statements N`, PostgreSQL, instead of the server measurement): N
tenants' records are read in-process through `RecordService.get` (the lean read route's call),
a first round then three timed ones, one at a time; then every pooled connection is asked how
many statements it holds prepared (`pg_prepared_statements`). With one statement text per
tenant (schema-qualified tables) that grows with the tenants served, up to the caches' bounds.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import httpx
from rig import databases
from rig.servers import free_port, load_average

ROOT = Path(__file__).resolve().parents[1]
ADMIN = "plt_bench_tenants_admin_0123456789abcdef"
NOTES = {
    "entities": {
        "note": {
            "fields": {
                "text": {"type": "string", "required": True, "maxLength": 200},
                "done": {"type": "boolean"},
            }
        }
    }
}


async def create(
    settings: Any, start: int, stop: int, concurrency: int, journal: Path | None = None
) -> dict[str, str]:
    """Tenants number `start`..`stop`-1 with the app and a record each: slug -> record id.
    With a `journal`, each finished tenant is appended to it as it completes; a slug taken
    already (a tenant a stopped run left half-made) is skipped for the next free number."""
    from plinth.errors import Conflict
    from plinth.governance.principal import PLATFORM_ADMIN, Principal
    from plinth.server.platform import Platform

    operator = Principal("bench", "cli", frozenset({PLATFORM_ADMIN}), name="bench")
    platform = Platform(settings)
    await platform.start()
    made: dict[str, str] = {}
    numbers = iter(range(start, 10**9))
    began = time.monotonic()
    out = journal.open("a") if journal is not None else None
    todo = stop - start

    async def worker() -> None:
        nonlocal todo
        while todo > 0:
            todo -= 1
            i = next(numbers)
            try:
                tenant = await platform.tenants.create(f"t{i:05d}")
                await platform.metadata.create_app(tenant, "notes", draft=NOTES)
                await platform.metadata.publish(tenant, "notes", operator)
                record = await platform.records.create(
                    tenant, "notes", "note", {"text": f"first note of {tenant.slug}"}, operator
                )
            except Conflict:
                todo += 1
                continue
            except Exception as exc:  # e.g. SQLite's busy timeout under load: the next number
                print(f"  t{i:05d} left half-made: {exc!r:.200}", flush=True)
                todo += 1
                continue
            assert isinstance(record, dict)
            made[tenant.slug] = str(record["id"])
            if out is not None:
                out.write(f"{tenant.slug} {record['id']}\n")
                out.flush()
            if len(made) % 250 == 0:
                rate = len(made) / (time.monotonic() - began)
                print(f"  … {start + len(made)} tenants ({rate:.1f}/s)", flush=True)

    try:
        await asyncio.gather(*(worker() for _ in range(min(concurrency, stop - start))))
        return made
    finally:
        if out is not None:
            out.close()
        await platform.stop()


def proc_stats(pid: int) -> dict[str, float]:
    status = Path(f"/proc/{pid}/status").read_text().splitlines()
    values = {k: v.split()[0] for k, _, v in (line.partition(":") for line in status) if v.split()}
    return {
        "rss_mb": int(values["VmRSS"]) / 1024,
        "threads": int(values["Threads"]),
        "files": len(os.listdir(f"/proc/{pid}/fd")),
    }


def metrics(client: httpx.Client) -> dict[str, float]:
    text = client.get("/metrics").text
    return {
        line.split()[0]: float(line.split()[1])
        for line in text.splitlines()
        if line and not line.startswith("#")
    }


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def measure(
    env: dict[str, str],
    records: dict[str, str],
    sample: int,
    log: Path,
    warm_up: int = 0,
    seed: int | None = None,
) -> dict:
    port = free_port()
    argv = [sys.executable, "-m", "uvicorn", "--factory", "plinth.server.app:create_app"]
    began = time.monotonic()
    with log.open("w") as out:
        proc = subprocess.Popen(
            [*argv, "--port", str(port), "--log-level", "info"],
            env={**os.environ, **env, "PYTHONPATH": str(ROOT / "src")},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"the server exited:\n{log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        startup = time.monotonic() - began
        time.sleep(1.0)  # let start-up's background work settle before reading memory
        idle = proc_stats(proc.pid)
        chosen = random.Random(len(records) if seed is None else seed).sample(
            sorted(records), min(sample + warm_up, len(records))
        )
        picked, others = chosen[:sample], chosen[sample:]
        headers = {"Authorization": f"Bearer {ADMIN}"}
        cold: list[float] = []
        warm: list[float] = []
        # Timed on one kept-alive connection of the standard library's client: httpx spends
        # ~1 ms of the client's own CPU a request here, more than a warm request's server side,
        # and would hide most of what a cold tenant costs.
        timed = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        with httpx.Client(base_url=base, headers=headers, timeout=60) as client:
            metrics(client)  # the admin token's first use is not a tenant's

            def get(slug: str) -> float:
                t0 = time.perf_counter()
                timed.request(
                    "GET", f"/api/t/{slug}/apps/notes/data/note/{records[slug]}", headers=headers
                )
                r = timed.getresponse()
                body = r.read()
                took = (time.perf_counter() - t0) * 1000
                assert r.status == 200, body
                return took

            for _round in range(3):  # the process warmed up on other tenants first
                for slug in others:
                    get(slug)
            for slug in picked:
                cold.append(get(slug))
            for _round in range(3):
                for slug in picked:
                    warm.append(get(slug))
            counters = metrics(client)
        timed.close()
        touched = proc_stats(proc.pid)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:  # its start-up sweep of every tenant file (outbox)
            print("  (the server took over 60 s to stop: killed)", flush=True)
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return {
        "tenants": len(records),
        "startup_s": startup,
        "idle": idle,
        "touched": touched,
        "cold_p50": statistics.median(cold),
        "cold_p99": pct(cold, 0.99),
        "warm_p50": statistics.median(warm),
        "warm_p99": pct(warm, 0.99),
        "files_open": counters.get("plinth_tenant_files_open", 0),
        "files_evicted": counters.get("plinth_tenant_files_evicted_total", 0),
        "load": load_average(),
    }


async def statements(settings: Any, records: dict[str, str], sample: int) -> dict:
    """PostgreSQL: `sample` tenants' records read in-process (`records.get`, the lean read
    route's call; three rounds, one at a time, after a first round that loads each tenant),
    then what each pooled connection has prepared (`pg_prepared_statements`, asked on every
    idle connection at once)."""
    from sqlalchemy.util import greenlet_spawn

    from plinth.governance.principal import PLATFORM_ADMIN, Principal
    from plinth.server.platform import Platform

    operator = Principal("bench", "cli", frozenset({PLATFORM_ADMIN}), name="bench")
    platform = Platform(settings)
    await platform.start()
    try:
        picked = random.Random(len(records)).sample(sorted(records), min(sample, len(records)))
        tenants = {slug: await platform.tenants.find(slug) for slug in picked}

        async def read(slug: str) -> float:
            t0 = time.perf_counter()
            await platform.records.get(tenants[slug], "notes", "note", records[slug], operator)
            return (time.perf_counter() - t0) * 1000

        for slug in picked:
            await read(slug)
        engine = platform.db.engine
        took: list[float] = []
        for _round in range(3):
            for slug in picked:
                took.append(await read(slug))
        pool = engine.sync_engine.pool
        raws = [await engine.raw_connection() for _ in range(pool.checkedin())]
        try:
            held = [
                await raw.driver_connection.fetchval("SELECT count(*) FROM pg_prepared_statements")
                for raw in raws
            ]
        finally:
            for raw in raws:
                await greenlet_spawn(raw.close)
        return {
            "tenants": len(picked),
            "connections": len(held),
            "prepared_max": max(held, default=0),
            "prepared_total": sum(held),
            "get_p50": statistics.median(took),
            "get_p99": pct(took, 0.99),
            "load": load_average(),
        }
    finally:
        await platform.stop()


async def platform_start(settings: Any) -> float:
    """Seconds to build and start the platform on this data (what the server does first)."""
    from plinth.server.platform import Platform

    began = time.monotonic()
    platform = Platform(settings)
    await platform.start()
    took = time.monotonic() - began
    await platform.stop()
    return took


async def kept_database(folder: Path) -> str:
    """The PostgreSQL database a `--keep` run uses (created on first use, never dropped)."""
    import asyncpg

    saved = folder / "url"
    if saved.exists():
        return saved.read_text().strip()
    name = f"bench_tenants_keep_{os.urandom(4).hex()}"
    admin = await asyncpg.connect(f"{databases.SERVER}/postgres")
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    saved.write_text(f"{databases.SERVER}/{name}\n")
    return f"{databases.SERVER}/{name}"


def journal_records(journal: Path) -> dict[str, str]:
    if not journal.exists():
        return {}
    return dict(line.split() for line in journal.read_text().splitlines() if line.strip())


async def run_db(db: str, counts: list[int], args: argparse.Namespace) -> list[dict]:
    from plinth.settings import Settings

    rows: list[dict] = []
    async with AsyncExitStack() as stack:
        journal: Path | None = None
        if args.keep is not None:
            data_dir = args.keep / db
            data_dir.mkdir(parents=True, exist_ok=True)
            journal = data_dir / "records"
        else:
            # Outside /tmp's sweeps (a 10,000-tenant run takes most of an hour).
            folder = tempfile.TemporaryDirectory(prefix="tenants-", dir=args.workdir)
            data_dir = Path(stack.enter_context(folder))
        env = {
            "PLINTH_DATA_DIR": str(data_dir),
            "PLINTH_ADMIN_TOKEN": ADMIN,
            "PLINTH_LOG_LEVEL": "warning",
        }
        url = None
        if db == "postgresql":
            if args.keep is not None:
                raw = await kept_database(data_dir)
            else:
                raw = await stack.enter_async_context(databases.throwaway("bench_tenants"))
            url = raw.replace("postgresql://", "postgresql+asyncpg://", 1)
            env["PLINTH_DATABASE_URL"] = url
        settings = Settings(data_dir=data_dir, database_url=url, embedded_worker=False)
        records = journal_records(journal) if journal is not None else {}
        if args.phase == "measure":
            counts = [len(records)]
        for n in counts:
            began = time.monotonic()
            if n > len(records):
                numbers = [int(slug[1:]) for slug in records]
                first = max(numbers) + 1 if numbers else 0
                first = max(first, args.first)
                records |= await create(
                    settings, first, first + n - len(records), args.concurrency, journal
                )
            took = time.monotonic() - began
            print(f"{db}: {len(records)} tenants ({took:.0f} s for the last step)", flush=True)
            if args.phase == "create":
                continue
            if args.statements and db == "postgresql":
                found = await statements(settings, records, args.statements)
                print(f"{db}: statements after serving {found}", flush=True)
                if args.json:
                    args.json.write_text(json.dumps(found, indent=2))
                continue
            log = data_dir / f"server-{n}.log"
            row = measure(env, records, args.sample, log, args.warm_up, args.seed)
            row["warm_up"] = args.warm_up
            row["db"] = db
            row["create_s"] = took
            row["platform_start_s"] = await platform_start(settings)
            rows.append(row)
            report([row], rows[0])
            if args.json:  # after every step: a long run that dies keeps what it measured
                args.json.write_text(json.dumps(rows, indent=2))
    return rows


def report(rows: list[dict], first: dict) -> None:
    for r in rows:
        grown = r["idle"]["rss_mb"] - first["idle"]["rss_mb"]
        per = grown * 1024 / (r["tenants"] - first["tenants"]) if r is not first else 0.0
        print(
            f"{r['db']:<10} {r['tenants']:>6} tenants | start {r['startup_s']:.2f} s "
            f"(platform {r['platform_start_s']:.2f} s) | "
            f"idle RSS {r['idle']['rss_mb']:.0f} MB ({per:.1f} KB/tenant), "
            f"files {r['idle']['files']}, threads {r['idle']['threads']} | "
            f"touched RSS {r['touched']['rss_mb']:.0f} MB, files {r['touched']['files']}, "
            f"threads {r['touched']['threads']} | cold p50/p99 {r['cold_p50']:.1f}/"
            f"{r['cold_p99']:.1f} ms, warm {r['warm_p50']:.1f}/{r['warm_p99']:.1f} ms | "
            f"tenant files open {r['files_open']:.0f}, evicted {r['files_evicted']:.0f} | "
            f"warm-up {r.get('warm_up', 0)} | "
            f"load {r['load']:.1f}",
            flush=True,
        )


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", default="sqlite,postgresql")
    parser.add_argument("--counts", default="10,1000,10000")
    parser.add_argument("--sample", type=int, default=40)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--workdir", type=Path, default=None, help="where the data dir goes")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--keep", type=Path, default=None, help="a data dir kept across runs")
    parser.add_argument("--phase", choices=["create", "measure", "all"], default="all")
    parser.add_argument(
        "--warm-up",
        type=int,
        default=0,
        help="tenants outside the sample served 3 times before the cold round (a warmed process)",
    )
    parser.add_argument(
        "--seed", type=int, default=None, help="draws the sample (default: the tenant count)"
    )
    parser.add_argument(
        "--first",
        type=int,
        default=0,
        help="number tenants from here (a second creating process on the same --keep dir)",
    )
    parser.add_argument(
        "--statements", type=int, default=0, help="PostgreSQL: prepared statements after N"
    )
    args = parser.parse_args()
    counts = sorted(int(c) for c in args.counts.split(","))
    rows: list[dict] = []
    for db in args.db.split(","):
        rows += await run_db(db, counts, args)
    print()
    for db in args.db.split(","):
        if mine := [r for r in rows if r["db"] == db]:
            report(mine, mine[0])
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
