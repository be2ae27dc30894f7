"""Designer internals, each against a baseline inside Plinth: update latency A -> B through one
node vs two nodes relayed over Redis, room load after a long update log vs compacted, and live
validation of a 10k-component draft (whole draft vs only the touched documents). Servers and
clients share one process (uvicorn in-process, the tests' Python Yjs client), so these are
component measurements; the comparison with a peer over real sockets is bench/designer.py.

Run: PYTHONPATH=src:. .venv/bin/python bench/designer_internals.py [--db URL] [--redis URL]
Defaults to a temporary SQLite file and redis://127.0.0.1:6379/0 for the two-node case.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from pycrdt import Map
from tests.designer.conftest import serve
from tests.designer.yclient import YClient
from tests.helpers import CLAIMS, make_app, make_tenant

from plinth.designer import shape
from plinth.designer.service import compact_app
from plinth.designer.validation import LiveValidator
from plinth.metadata import definition as definitions
from plinth.metadata.files import read_folder
from plinth.server import Platform
from plinth.settings import Settings

TOKEN = "plt_bench_admin_token_0123456789abcdef"


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


class Watch:
    """Time from A's local change to B applying it."""

    def __init__(self, b: YClient) -> None:
        self.seen: dict[str, float] = {}
        self.event = asyncio.Event()
        self._sub = b.doc.get("entities", type=Map).observe_deep(self._on)

    def _on(self, events: Any) -> None:
        now = time.perf_counter()
        for ev in events:
            for key in ev.keys:
                self.seen.setdefault(str(key), now)
        self.event.set()


async def latency(a: YClient, b: YClient, n: int, tag: str) -> list[float]:
    watch = Watch(b)
    ent = next(iter(a.doc.get("entities", type=Map).values()))
    out = []
    for i in range(n):
        key = f"{tag}{i}"
        start = time.perf_counter()
        ent["attrs"][key] = i
        while key not in watch.seen:
            watch.event.clear()
            await asyncio.wait_for(watch.event.wait(), 5)
        out.append(watch.seen[key] - start)
    return out


def big_draft(pages: int = 50, per_page: int = 200) -> dict[str, Any]:
    """The demo app plus `pages` pages of `per_page` components each."""
    definition = read_folder(Path(__file__).parents[1] / "src/plinth/demo/claims")[1]
    for n in range(pages):
        components: dict[str, Any] = {"root": {"kind": "stack", "parent": None, "order": 0}}
        for i in range(1, per_page):
            components[f"c{i}"] = {
                "kind": "text",
                "parent": "root",
                "order": i,
                "props": {"text": f"Line {i} of page {n}", "variant": "p"},
            }
        definition["pages"][f"big{n}"] = {
            "title": f"Big {n}",
            "path": f"/big/{n}",
            "components": components,
        }
    return definition


def validation(edits: int = 20) -> None:
    """Per-update validation cost: the whole draft (before) vs touched documents (now)."""
    from pycrdt import Doc

    doc = Doc()
    shape.apply_definition(doc, big_draft())
    validator = LiveValidator()
    validator.watch(doc)
    assert not validator.run(doc)[1], "the bench draft must be valid"
    pages = doc.get("pages", type=Map)
    full, live, entity_live = [], [], []
    for i in range(edits):
        pages[f"big{i % 50}"]["components"]["c7"]["attrs"]["props"]["text"] = f"edit {i}"
        start = time.perf_counter()
        definition, faults = shape.to_definition(doc)
        assert not (faults or definitions.validate(definition))
        full.append(time.perf_counter() - start)
        start = time.perf_counter()
        assert not validator.run(doc)[1]
        live.append(time.perf_counter() - start)
    ent = next(iter(doc.get("entities", type=Map).values()))
    for i in range(edits):  # an entity edit re-checks every page that reads entities
        ent["attrs"]["label"] = f"Label {i}"
        start = time.perf_counter()
        assert not validator.run(doc)[1]
        entity_live.append(time.perf_counter() - start)
    base = statistics.median(full) * 1000
    one = statistics.median(live) * 1000
    ent_ms = statistics.median(entity_live) * 1000
    print(f"validation, 10k components, whole draft   : {base:7.2f} ms/update  (baseline)")
    print(
        f"validation, touched page only             : {one:7.2f} ms/update  "
        f"(x{base / one:.0f} faster)"
    )
    print(
        f"validation, entity edit (pages re-checked): {ent_ms:7.2f} ms/update  "
        f"(x{base / ent_ms:.1f} faster)"
    )


MASTER = base64.b64encode(os.urandom(32)).decode()


async def node(settings: Settings, redis: str | None) -> tuple[Platform, Any]:
    # Scaled-out nodes share one master key (the ledger's and the vault's keys derive from it).
    update = {"redis_url": redis, "master_key": MASTER} if redis else {}
    p = Platform(settings.model_copy(update=update))
    p.designer.limits.updates_per_second = 10_000
    p.designer.limits.burst = 10_000
    p.designer.limits.compact_every = 10**9
    await p.start()
    return p, await serve(p)


async def main(db: str | None, redis: str) -> None:
    tmp = Path(tempfile.mkdtemp())
    settings = Settings(
        data_dir=tmp,
        database_url=db or f"sqlite+aiosqlite:///{tmp}/b.db",
        admin_token=TOKEN,
        embedded_worker=False,
    )
    one, s1 = await node(settings, redis)
    two, s2 = await node(settings, redis)
    async with httpx.AsyncClient(
        base_url=s1.http, headers={"Authorization": f"Bearer {TOKEN}"}
    ) as http:
        await make_tenant(http, "bench")
        await make_app(http, "bench", "claims", CLAIMS)
    url1, url2 = s1.sync_url("bench", "claims"), s2.sync_url("bench", "claims")
    print(f"database: {settings.resolved_database_url.split(':')[0]}")
    validation()
    try:
        async with YClient(url1, TOKEN) as a, YClient(url1, TOKEN) as b, YClient(url2, TOKEN) as c:
            for x in (a, b, c):
                await x.synced.wait()
            same = await latency(a, b, 300, "s")
            cross = await latency(a, c, 300, "x")
        p50_1, p99_1 = pct(same, 0.5), pct(same, 0.99)
        p50_2, p99_2 = pct(cross, 0.5), pct(cross, 0.99)
        print(f"A->B latency, one node : p50 {p50_1:6.2f} ms  p99 {p99_1:6.2f} ms  (baseline)")
        print(
            f"A->B latency, two nodes: p50 {p50_2:6.2f} ms  p99 {p99_2:6.2f} ms  "
            f"(x{p50_2 / p50_1:.2f} p50, x{p99_2 / p99_1:.2f} p99)"
        )

        # room load: a long log vs the same state compacted
        async with YClient(url1, TOKEN) as a:
            await a.synced.wait()
            ent = next(iter(a.doc.get("entities", type=Map).values()))
            for i in range(3000):
                ent["attrs"][f"k{i % 50}"] = i
                if i % 100 == 0:
                    await asyncio.sleep(0.01)
            await asyncio.sleep(1.0)
        room = next(iter(one.designer.rooms.values()))
        tenant = room.tenant

        async def load_ms() -> float:
            times = []
            for _ in range(5):
                one.designer.rooms.clear()
                start = time.perf_counter()
                await one.designer.room(tenant, "claims")
                times.append(time.perf_counter() - start)
            return statistics.median(times) * 1000

        long_ms = await load_ms()
        folded = await compact_app(one.db, tenant.id, room.app_id, min_age=0)
        short_ms = await load_ms()
        print(f"room load, compacted     : {short_ms:7.2f} ms  (baseline)")
        print(f"room load, {folded}-update log: {long_ms:7.2f} ms  (x{long_ms / short_ms:.1f})")

    finally:
        for p, s in ((one, s1), (two, s2)):
            await s.shutdown()
            await p.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--db", default=None)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args()
    asyncio.run(main(args.db, args.redis))
