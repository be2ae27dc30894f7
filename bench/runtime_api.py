"""Plinth's data API against a hand-written app and Directus, over real HTTP.

    .venv/bin/python bench/runtime_api.py [--db postgresql,sqlite] [--workers 1] [--rows 100000]
        [--seconds 10] [--rounds 2] [--threads 2] [--connections 16] [--no-directus] [--json F]

Every side is a real server process on its own port, driven by wrk (a separate process) with
`bench/load/wrk.lua`:

- **plinth**: `plinth serve` on a throw-away PostgreSQL database (or its embedded SQLite), an
  app `shop` with the entity `order` published through the HTTP API, requests made with a
  tenant API token of role `owner`, the tenant's rate limit raised out of the way;
- **hand-written**: `bench/baseline/app.py` (FastAPI, pydantic, asyncpg/aiosqlite, a token set
  in memory, uvicorn with uvloop and httptools), which imports nothing from Plinth: it shares
  only the database server;
- **directus** (PostgreSQL only, if `bench/peers/install.sh` ran): Directus 12.4.0 on Node 22,
  its own database, a collection `orders` of the same shape with the same validation, read and
  written with a static token of a non-admin user whose policy allows both.

All sides hold the same 100k rows (the same ids, names, amounts, statuses, quantities; Directus
numbers its own ids) and the same index on (status, amount). Operations: POST one order, GET one
order by a random seeded id, GET a page of 20 orders with status 'open' sorted by amount
descending. Sides run in turn, A B A B, for each operation, so drift on the shared machine hits
them alike. Printed per side and operation: req/s, p50/p99 latency, the server's CPU ms per
request (its process tree's utime+stime from /proc, before/after each run), and on PostgreSQL
what the side's database did per request (transactions, new sessions, ms executing statements,
from pg_stat_database), then the ratios Plinth / hand-written and Plinth / Directus.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import random
import secrets
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from baseline import schema as baseline_schema
from rig import databases, peers
from rig.load import Round, Totals, run_wrk
from rig.servers import Server, free_port, load_average

BENCH = Path(__file__).resolve().parent
# Reads first, so every side reads the same rows (creates add more where a side is faster).
OPS = ("one", "list", "create")
OP_TITLES = {"create": "POST create", "one": "GET one", "list": "GET list of 20, filter + sort"}
STATUSES = ("open", "paid", "void")
ENTITY = {
    "fields": {
        "name": {"type": "string", "required": True, "maxLength": 100},
        "amount": {"type": "decimal", "precision": 12, "scale": 2, "min": 0},
        "status": {"type": "enum", "values": list(STATUSES), "default": "open"},
        "qty": {"type": "integer", "min": 0},
    },
    "indexes": [{"fields": ["status", "amount"]}],
}
PLINTH_TABLE = "shop__order"  # Plinth names an entity's table <app>__<entity>


@dataclass(frozen=True)
class Order:
    id: str
    name: str
    amount: Decimal
    status: str
    qty: int
    created_at: datetime


def dataset(rows: int) -> list[Order]:
    """The rows every side holds: reproducible, ids shaped like Plinth's (22 url-safe chars)."""
    rng = random.Random(18)
    start = datetime.now(UTC) - timedelta(seconds=rows)
    return [
        Order(
            base64.urlsafe_b64encode(rng.randbytes(16)).decode().rstrip("="),
            f"order {i}",
            Decimal(f"{rng.randint(0, 9999)}.{rng.randint(0, 99):02d}"),
            rng.choice(STATUSES),
            rng.randint(0, 100),
            start + timedelta(seconds=i),
        )
        for i in range(rows)
    ]


@dataclass
class Side:
    """One server under test and how to address it."""

    name: str
    server: Server
    token: str
    collection: str  # path of the collection; one record is <collection>/<id>
    list_path: str
    ids_file: Path
    items: Callable[[Any], list[dict[str, Any]]]
    database_url: str | None = None  # PostgreSQL: read its pg_stat_database counters
    notes: list[str] = field(default_factory=list)

    def path(self, op: str) -> str:
        return self.list_path if op == "list" else self.collection


def write_ids(path: Path, ids: list[str]) -> Path:
    path.write_text("\n".join(ids) + "\n")
    return path


# -- Plinth ------------------------------------------------------------------------------------


def plinth_argv(workers: int) -> tuple[list[str], int]:
    """`plinth serve`, with --workers if this Plinth has it (else one process)."""
    exe = Path(sys.executable).with_name("plinth")
    argv = [str(exe)] if exe.exists() else [sys.executable, "-m", "plinth.cli.main"]
    helptext = subprocess.run([*argv, "serve", "--help"], capture_output=True, text=True).stdout
    if "--workers" in helptext:
        return [*argv, "serve", "--workers", str(workers)], workers
    return [*argv, "serve"], 1


async def plinth_side(
    kind: str, db_url: str | None, tmp: Path, workers: int, data: list[Order]
) -> Side:
    argv, _ = plinth_argv(workers)
    port = free_port()
    admin = "plt_bench_admin_" + secrets.token_hex(16)
    argv += ["--host", "127.0.0.1", "--port", str(port), "--data-dir", str(tmp / "plinth")]
    if db_url is not None:
        argv += ["--database-url", db_url.replace("postgresql://", "postgresql+asyncpg://")]
    server = Server(
        "plinth",
        argv,
        f"http://127.0.0.1:{port}",
        tmp / "plinth.log",
        env={"PLINTH_ADMIN_TOKEN": admin},
    )
    server.start()
    server.wait_ready("/readyz")
    base = "/api/t/bench/apps/shop"
    async with httpx.AsyncClient(
        base_url=server.url, headers={"Authorization": f"Bearer {admin}"}, timeout=120
    ) as http:
        for method, path, body in (
            ("POST", "/api/tenants", {"slug": "bench", "name": "Bench"}),
            ("POST", "/api/t/bench/apps", {"slug": "shop"}),
            ("PUT", f"{base}/draft", {"entities": {"order": ENTITY}}),
            ("POST", f"{base}/publish", {}),
            # The default tenant limit (200 req/s) would refuse the load we mean to measure.
            ("PUT", "/api/t/bench/gateway", {"limits": {"per_second": 10**6}}),
        ):
            r = await http.request(method, path, json=body)
            assert r.status_code < 300, f"{method} {path}: {r.status_code} {r.text}"
        r = await http.post("/api/t/bench/tokens", json={"name": "bench", "role": "owner"})
        assert r.status_code == 201, r.text
        token = r.json()["token"]
        # One record through the API: creates nothing new but shows how rows are stored.
        r = await http.post(
            f"{base}/data/order",
            json={"name": "probe", "amount": "1.00", "status": "open", "qty": 1},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert r.status_code == 201, r.text
    if db_url is None:
        seed_plinth_sqlite(tmp / "plinth", data)
    else:
        await seed_plinth_postgresql(db_url, data)
    return Side(
        "plinth",
        server,
        token,
        f"{base}/data/order",
        f"{base}/data/order?filter=status%20eq%20'open'&sort=-amount&limit=20",
        write_ids(tmp / "plinth-ids.txt", [o.id for o in data]),
        lambda body: list(body["items"]),
        db_url,
    )


async def seed_plinth_postgresql(db_url: str, data: list[Order]) -> None:
    """100k API calls would take the better part of an hour: the rows go straight into the
    entity's table, shaped like the probe record the API wrote."""
    conn = await asyncpg.connect(db_url)
    try:
        schema = await conn.fetchval(
            "SELECT table_schema FROM information_schema.tables WHERE table_name = $1",
            PLINTH_TABLE,
        )
        assert schema, f"no table {PLINTH_TABLE}"
        probe = await conn.fetchrow(f'SELECT * FROM "{schema}"."{PLINTH_TABLE}" LIMIT 1')
        assert probe is not None
        by = probe["created_by"]
        await conn.copy_records_to_table(
            PLINTH_TABLE,
            schema_name=schema,
            columns=list(baseline_schema.COLUMNS),
            records=[
                (o.id, 1, o.created_at, o.created_at, by, by, o.name, o.amount, o.status, o.qty)
                for o in data
            ],
        )
        await conn.execute(f'ANALYZE "{schema}"."{PLINTH_TABLE}"')
    finally:
        await conn.close()


def seed_plinth_sqlite(data_dir: Path, data: list[Order]) -> None:
    for path in data_dir.rglob("*.db"):
        conn = sqlite3.connect(path, timeout=30, isolation_level=None)
        try:
            if not conn.execute(
                "SELECT 1 FROM sqlite_master WHERE name = ?", (PLINTH_TABLE,)
            ).fetchone():
                continue
            probe = conn.execute(f"SELECT created_at, created_by FROM {PLINTH_TABLE}").fetchone()
            stamp, by = probe
            # SQLite keeps what SQLAlchemy wrote: a naive UTC timestamp as text.
            shape = _sqlite_stamp(datetime.now(UTC))
            assert len(stamp) == len(shape), f"unexpected timestamp {stamp!r}"
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(
                f"INSERT INTO {PLINTH_TABLE} ({', '.join(baseline_schema.COLUMNS)})"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (o.id, 1, _sqlite_stamp(o.created_at), _sqlite_stamp(o.created_at), by, by)
                    + (o.name, str(o.amount), o.status, o.qty)
                    for o in data
                ],
            )
            conn.execute("COMMIT")
            conn.execute("ANALYZE")
            return
        finally:
            conn.close()
    raise RuntimeError(f"no SQLite file under {data_dir} holds {PLINTH_TABLE}")


def _sqlite_stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")


# -- hand-written ------------------------------------------------------------------------------


async def hand_side(
    kind: str, db_url: str | None, tmp: Path, workers: int, data: list[Order]
) -> Side:
    token = secrets.token_urlsafe(24)
    rows = [
        (o.id, 1, o.created_at, o.created_at, "seed", "seed", o.name, o.amount, o.status, o.qty)
        for o in data
    ]
    if db_url is None:
        path = tmp / "orders.db"
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        for ddl in baseline_schema.SQLITE:
            conn.execute(ddl)
        conn.execute("BEGIN")
        conn.executemany(
            "INSERT INTO orders VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [r[:2] + (str(r[2]), str(r[3])) + r[4:7] + (str(r[7]),) + r[8:] for r in rows],
        )
        conn.execute("COMMIT")
        conn.execute("ANALYZE")
        conn.close()
        database = f"sqlite:///{path}"
    else:
        conn_pg = await asyncpg.connect(db_url)
        try:
            for ddl in baseline_schema.POSTGRESQL:
                await conn_pg.execute(ddl)
            await conn_pg.copy_records_to_table(
                "orders", columns=list(baseline_schema.COLUMNS), records=rows
            )
            await conn_pg.execute("ANALYZE orders")
        finally:
            await conn_pg.close()
        database = db_url
    port = free_port()
    server = Server(
        "hand-written",
        [
            sys.executable,
            "-m",
            "uvicorn",
            "app:app",
            "--app-dir",
            str(BENCH / "baseline"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--loop",
            "uvloop",
            "--http",
            "httptools",
        ],
        f"http://127.0.0.1:{port}",
        tmp / "hand.log",
        env={"ORDERS_DATABASE": database, "ORDERS_TOKENS": token},
    )
    server.start()
    server.wait_ready("/orders")
    return Side(
        "hand-written",
        server,
        token,
        "/orders",
        "/orders?status=open&sort=-amount&limit=20",
        write_ids(tmp / "hand-ids.txt", [o.id for o in data]),
        lambda body: list(body["items"]),
        db_url,
    )


# -- Directus ----------------------------------------------------------------------------------


def _directus_fields() -> list[dict[str, Any]]:
    """The `order` entity as Directus fields, with the same constraints as validation rules,
    and Directus's optional system fields standing for Plinth's created/updated columns."""
    return [
        {
            "field": "id",
            "type": "integer",
            "meta": {"hidden": True, "readonly": True},
            "schema": {"is_primary_key": True, "has_auto_increment": True},
        },
        {
            "field": "name",
            "type": "string",
            "meta": {"required": True},
            "schema": {"max_length": 100, "is_nullable": False},
        },
        {
            "field": "amount",
            "type": "decimal",
            "meta": {"validation": {"amount": {"_gte": 0}}},
            "schema": {"numeric_precision": 12, "numeric_scale": 2},
        },
        {
            "field": "status",
            "type": "string",
            "meta": {
                "interface": "select-dropdown",
                "options": {"choices": [{"text": s, "value": s} for s in STATUSES]},
                "validation": {"status": {"_in": list(STATUSES)}},
            },
            "schema": {"max_length": 16, "default_value": "open"},
        },
        {
            "field": "qty",
            "type": "bigInteger",
            "meta": {"validation": {"qty": {"_gte": 0}}},
            "schema": {},
        },
        {"field": "date_created", "type": "timestamp", "meta": {"special": ["date-created"]}},
        {"field": "date_updated", "type": "timestamp", "meta": {"special": ["date-updated"]}},
        {"field": "user_created", "type": "uuid", "meta": {"special": ["user-created"]}},
        {"field": "user_updated", "type": "uuid", "meta": {"special": ["user-updated"]}},
    ]


async def directus_side(db_url: str, tmp: Path, data: list[Order]) -> Side:
    node, cli = peers.node(), peers.directus_cli()
    name = db_url.rsplit("/", 1)[1]
    admin = secrets.token_urlsafe(24)
    port = free_port()
    home = tmp / "directus"
    home.mkdir()
    env = {
        "DB_CLIENT": "pg",
        "DB_HOST": "127.0.0.1",
        "DB_PORT": "5432",
        "DB_DATABASE": name,
        "DB_USER": "postgres",
        "DB_PASSWORD": "",
        "SECRET": secrets.token_urlsafe(32),
        "ADMIN_EMAIL": "admin@example.com",
        "ADMIN_PASSWORD": secrets.token_urlsafe(16),
        "ADMIN_TOKEN": admin,
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "PUBLIC_URL": f"http://127.0.0.1:{port}",
        "TELEMETRY": "false",
        # Directus answers 503 when its event loop lags (a default meant for production); the
        # bench measures what it serves, as for the other sides, so that guard is off.
        "PRESSURE_LIMITER_ENABLED": "false",
    }
    log = tmp / "directus.log"
    with log.open("ab") as out:
        boot = await asyncio.create_subprocess_exec(
            str(node),
            str(cli),
            "bootstrap",
            cwd=home,
            env={**os.environ, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        if await asyncio.wait_for(boot.wait(), 600):
            raise RuntimeError(f"directus bootstrap failed, see {log}")
    server = Server(
        "directus", [str(node), str(cli), "start"], f"http://127.0.0.1:{port}", log, env, home
    )
    server.start()
    server.wait_ready("/server/ping")
    token = secrets.token_urlsafe(24)
    async with httpx.AsyncClient(
        base_url=server.url, headers={"Authorization": f"Bearer {admin}"}, timeout=120
    ) as http:

        async def call(method: str, path: str, body: Any) -> Any:
            r = await http.request(method, path, json=body)
            assert r.status_code < 300, f"directus {method} {path}: {r.status_code} {r.text}"
            return r.json().get("data") if r.content else None

        await call(
            "POST",
            "/collections",
            {"collection": "orders", "meta": {}, "schema": {}, "fields": _directus_fields()},
        )
        policy = await call(
            "POST",
            "/policies",
            {
                "name": "bench orders",
                "admin_access": False,
                "app_access": False,
                "permissions": [
                    {"collection": "orders", "action": action, "fields": ["*"]}
                    for action in ("create", "read")
                ],
            },
        )
        role = await call(
            "POST", "/roles", {"name": "bench", "policies": [{"policy": policy["id"]}]}
        )
        await call(
            "POST",
            "/users",
            {"email": "bench-api@example.com", "role": role["id"], "token": token},
        )
    conn = await asyncpg.connect(db_url)
    try:
        # The index Plinth and the hand-written app have (Directus's API makes one-column
        # indexes only; a DBA would add this one).
        await conn.execute("CREATE INDEX orders_status_amount ON orders (status, amount)")
        await conn.copy_records_to_table(
            "orders",
            columns=["id", "name", "amount", "status", "qty", "date_created"],
            records=[
                (i + 1, o.name, o.amount, o.status, o.qty, o.created_at) for i, o in enumerate(data)
            ],
        )
        await conn.execute("SELECT setval(pg_get_serial_sequence('orders', 'id'), $1)", len(data))
        await conn.execute("ANALYZE orders")
    finally:
        await conn.close()
    return Side(
        "directus",
        server,
        token,
        "/items/orders",
        "/items/orders?filter[status][_eq]=open&sort=-amount&limit=20",
        write_ids(tmp / "directus-ids.txt", [str(i + 1) for i in range(len(data))]),
        lambda body: list(body["data"]),
        db_url,
    )


# -- checks and runs ---------------------------------------------------------------------------


async def check(side: Side, data: list[Order]) -> None:
    """Each side answers each operation correctly before it is timed."""
    ids = side.ids_file.read_text().split()
    async with httpx.AsyncClient(
        base_url=side.server.url, headers={"Authorization": f"Bearer {side.token}"}, timeout=60
    ) as http:
        r = await http.post(
            side.collection, json={"name": "check", "amount": "3.10", "status": "paid", "qty": 2}
        )
        assert r.status_code in (200, 201), f"{side.name} create: {r.status_code} {r.text}"
        r = await http.get(f"{side.collection}/{ids[7]}")
        assert r.status_code == 200, f"{side.name} get: {r.status_code} {r.text}"
        got = r.json().get("data", r.json())
        assert Decimal(str(got["amount"])) == data[7].amount, f"{side.name} get: {got}"
        r = await http.get(side.list_path)
        assert r.status_code == 200, f"{side.name} list: {r.status_code} {r.text}"
        items = side.items(r.json())
        amounts = [Decimal(str(i["amount"])) for i in items]
        top = sorted((o.amount for o in data if o.status == "open"), reverse=True)[:20]
        assert len(items) == 20 and all(i["status"] == "open" for i in items), side.name
        assert amounts == top, f"{side.name} list order: {amounts} != {top}"
        r = await http.get(f"{side.collection}/{ids[7]}", headers={"Authorization": "Bearer no"})
        assert r.status_code in (401, 403), f"{side.name} answered a bad token: {r.status_code}"


async def measure(side: Side, op: str, args: argparse.Namespace, seconds: float) -> Round:
    cpu = side.server.cpu_seconds()
    requests, elapsed, errors, percentiles = await run_wrk(
        side.server.url,
        op,
        side.path(op),
        token=side.token,
        ids_file=side.ids_file if op == "one" else None,
        seconds=seconds,
        threads=args.threads,
        connections=args.connections,
    )
    return Round(
        requests, elapsed, errors, percentiles, side.server.cpu_seconds() - cpu, load_average()
    )


@dataclass
class Report:
    kind: str
    workers: int
    sides: list[str]
    totals: dict[tuple[str, str], Totals] = field(default_factory=dict)
    db: dict[tuple[str, str], databases.DatabaseCounters] = field(default_factory=dict)
    idle_db: dict[str, databases.DatabaseCounters] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


async def run_kind(kind: str, args: argparse.Namespace, data: list[Order]) -> Report:
    _, plinth_workers = plinth_argv(args.workers)
    workers = plinth_workers
    notes = [f"started {time.strftime('%Y-%m-%d %H:%M:%S %Z')}"]
    if plinth_workers != args.workers:
        notes.append(
            f"`plinth serve` has no --workers: one process per side instead of {args.workers}"
        )
    with tempfile.TemporaryDirectory(prefix="plinth-bench-") as tmp_name:
        tmp = Path(tmp_name)
        async with AsyncExitStack() as stack:
            sides: list[Side] = []
            try:
                plinth_db = hand_db = None
                if kind == "postgresql":
                    plinth_db = await stack.enter_async_context(databases.throwaway("bench_plinth"))
                    hand_db = await stack.enter_async_context(databases.throwaway("bench_hand"))
                print(f"[{kind}] starting Plinth and seeding {len(data)} rows …", flush=True)
                sides.append(await plinth_side(kind, plinth_db, tmp, workers, data))
                print(f"[{kind}] starting the hand-written app …", flush=True)
                sides.append(await hand_side(kind, hand_db, tmp, workers, data))
                if kind == "postgresql" and args.directus:
                    why = peers.missing(peers.node(), peers.directus_cli())
                    if why:
                        notes.append(f"directus skipped: {why}")
                    else:
                        print(f"[{kind}] bootstrapping Directus …", flush=True)
                        url = await stack.enter_async_context(databases.throwaway("bench_directus"))
                        sides.append(await directus_side(url, tmp, data))
                        if workers > 1:
                            notes.append("Directus runs one process (no cluster mode of its own)")
                for side in sides:
                    await check(side, data)
                report = Report(kind, workers, [s.name for s in sides], notes=notes)
                await run_ops(report, sides, args)
                return report
            finally:
                for side in sides:
                    side.server.stop()


async def run_ops(report: Report, sides: list[Side], args: argparse.Namespace) -> None:
    pg = report.kind == "postgresql"
    print(f"[{report.kind}] warming up …", flush=True)
    for op in args.ops:
        for side in sides:
            await measure(side, op, args, args.warmup)
    snap: dict[str, databases.DatabaseCounters] = {}
    if pg:
        await databases.settle()
        first = {s.name: await databases.counters(s.database_url or "") for s in sides}
        await databases.settle()
        for s in sides:
            snap[s.name] = await databases.counters(s.database_url or "")
            report.idle_db[s.name] = snap[s.name] - first[s.name]
    for op in args.ops:
        for r in range(args.rounds):
            for side in sides:
                got = await measure(side, op, args, args.seconds)
                report.totals.setdefault((op, side.name), Totals()).rounds.append(got)
                print(
                    f"[{report.kind}] {op:6s} round {r + 1} {side.name:12s} "
                    f"{got.requests / got.seconds:8.1f} req/s  load {got.load:.1f}",
                    flush=True,
                )
        if pg:
            await databases.settle()
            for s in sides:
                now = await databases.counters(s.database_url or "")
                report.db[op, s.name] = now - snap[s.name]
                snap[s.name] = now


# -- output ------------------------------------------------------------------------------------


def print_report(report: Report, args: argparse.Namespace) -> None:
    pg = report.kind == "postgresql"
    print(
        f"\n{report.kind}: {report.workers} server process(es) per side, wrk -t{args.threads} "
        f"-c{args.connections}, {args.rounds} rounds x {args.seconds:g} s per side and "
        f"operation, sides alternated; {args.rows} rows"
    )
    for note in report.notes:
        print(f"  note: {note}")
    head = f"  {'operation':<30}{'side':<14}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}"
    head += f"{'cpu ms/req':>11}"
    if pg:
        head += f"{'db ms/req':>10}{'xact/req':>9}{'conn/req':>9}"
    print(head + f"{'errors':>8}{'load':>7}")
    for op in args.ops:
        for name in report.sides:
            t = report.totals[op, name]
            line = (
                f"  {OP_TITLES[op]:<30}{name:<14}{t.rps:>9.1f}{t.percentile_ms(50):>9.2f}"
                f"{t.percentile_ms(99):>9.2f}{t.cpu_ms_per_request:>11.2f}"
            )
            if pg:
                d = report.db[op, name]
                n = max(1, t.requests)
                line += f"{d.active_ms / n:>10.2f}{d.transactions / n:>9.2f}{d.sessions / n:>9.3f}"
            load = max(r.load for r in t.rounds)
            print(line + f"{t.errors:>8}{load:>7.1f}")
    for op in args.ops:
        for name in report.sides:
            kinds: dict[str, int] = {}
            for r in report.totals[op, name].rounds:
                for kind, count in r.errors.items():
                    kinds[kind] = kinds.get(kind, 0) + count
            if any(kinds.values()):
                found = ", ".join(f"{k} {v}" for k, v in kinds.items() if v)
                print(f"  errors of {name} on {OP_TITLES[op]}: {found} (wrk: status = 4xx/5xx)")
    if pg and report.idle_db:
        idle = ", ".join(
            f"{name} {c.transactions / databases.SETTLE_SECONDS:.1f} xact/s"
            for name, c in report.idle_db.items()
        )
        print(f"  idle database traffic (included above): {idle}")
    for peer in report.sides[1:]:
        print(f"  Plinth / {peer}:")
        for op in args.ops:
            p, h = report.totals[op, "plinth"], report.totals[op, peer]
            print(
                f"    {OP_TITLES[op]:<30} throughput {p.rps / h.rps:5.2f}x   "
                f"p50 {p.percentile_ms(50) / h.percentile_ms(50):5.2f}x   "
                f"p99 {p.percentile_ms(99) / h.percentile_ms(99):5.2f}x   "
                f"cpu/req {p.cpu_ms_per_request / max(h.cpu_ms_per_request, 1e-9):5.2f}x"
            )


def as_json(report: Report) -> dict[str, Any]:
    out: dict[str, Any] = {"db": report.kind, "workers": report.workers, "notes": report.notes}
    for (op, name), t in report.totals.items():
        entry = {
            "rps": t.rps,
            "p50_ms": t.percentile_ms(50),
            "p99_ms": t.percentile_ms(99),
            "cpu_ms_per_request": t.cpu_ms_per_request,
            "requests": t.requests,
            "errors": t.errors,
            "load": [r.load for r in t.rounds],
        }
        if (op, name) in report.db:
            d = report.db[op, name]
            entry |= {
                "db_active_ms_per_request": d.active_ms / max(1, t.requests),
                "transactions_per_request": d.transactions / max(1, t.requests),
                "sessions_per_request": d.sessions / max(1, t.requests),
            }
        out.setdefault(op, {})[name] = entry
    return out


async def main(args: argparse.Namespace) -> None:
    data = dataset(args.rows)
    results = []
    for kind in args.db:
        report = await run_kind(kind, args, data)
        print_report(report, args)
        results.append(as_json(report))
    if args.json:
        with open(args.json, "w") as out:  # noqa: ASYNC230 - once, after the measurements
            json.dump(results, out, indent=2)


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--db", default="postgresql,sqlite", type=lambda s: s.split(","))
    p.add_argument("--ops", default=",".join(OPS), type=lambda s: s.split(","))
    p.add_argument("--workers", type=int, default=1, help="server processes per side")
    p.add_argument("--rows", type=int, default=100_000)
    p.add_argument("--seconds", type=float, default=10.0, help="per round, side and operation")
    p.add_argument("--warmup", type=float, default=3.0, help="seconds per side and operation")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--threads", type=int, default=2, help="wrk threads")
    p.add_argument("--connections", type=int, default=16, help="wrk connections")
    p.add_argument("--no-directus", dest="directus", action="store_false")
    p.add_argument("--json", help="also write the results to this file")
    args = p.parse_args()
    unknown = set(args.ops) - set(OPS) or set(args.db) - {"postgresql", "sqlite"}
    if unknown:
        p.error(f"unknown: {', '.join(sorted(unknown))}")
    return args


if __name__ == "__main__":
    asyncio.run(main(parse()))
