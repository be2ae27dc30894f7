"""Embedded mode stays coherent: a publish or rollback by the CLI (another process) on the data
dir a running server uses reaches that server within a second, and the data API never answers
500 meanwhile."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import ADMIN_TOKEN
from tests.helpers import free_port, make_app, make_tenant, run_cli
from tests.runtime.test_outbox_kill import Server

ROOT = Path(__file__).resolve().parents[2]
DATA = "/api/t/acme/apps/crm/data/claim"
V1: dict[str, Any] = {"entities": {"claim": {"fields": {"title": {"type": "string"}}}}}
V2: dict[str, Any] = {
    "entities": {"claim": {"fields": {"title": {"type": "string"}, "amount": {"type": "integer"}}}}
}


async def _cli(env: dict[str, str], *args: str) -> None:
    """`plinth ARGS` in this process, beside the server's: on a thread, its own event loop
    (a fresh interpreter would pay seconds of imports per command)."""
    await asyncio.to_thread(run_cli, {**env, "PLINTH_REDIS_URL": None}, *args)  # type: ignore[dict-item]


async def _until(http: httpx.AsyncClient, body: dict[str, Any], status: int) -> float:
    """Seconds until the server answers `status` to creating `body`; never a 500."""
    start = time.monotonic()
    while True:
        r = await http.post(DATA, json=body)
        assert r.status_code < 500, r.text
        if r.status_code == status:
            return time.monotonic() - start
        assert time.monotonic() - start < 5, f"still {r.status_code}: {r.text}"
        await asyncio.sleep(0.02)


async def test_a_cli_publish_and_rollback_reach_the_running_server(
    database_url: str, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": f"{ROOT / 'src'}:{ROOT}",
        "PLINTH_DATA_DIR": str(tmp_path / "data"),
        "PLINTH_DATABASE_URL": database_url,
        "PLINTH_ADMIN_TOKEN": ADMIN_TOKEN,
        "PLINTH_LOG_LEVEL": "warning",
    }
    env.pop("PLINTH_REDIS_URL", None)  # one machine, no Redis
    port = free_port()
    server = Server({**env, "PLINTH_PORT": str(port)}, port)
    await server.start()
    auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    try:
        async with httpx.AsyncClient(base_url=server.http, headers=auth) as http:
            await make_tenant(http, "acme")
            await make_app(http, "acme", "crm", V1)
            r = await http.post("/api/t/acme/apps/crm/publish", json={})
            assert r.status_code in (200, 201), r.text
            r = await http.post(DATA, json={"title": "a", "amount": 5})
            assert r.status_code == 422, r.text  # version 1 has no amount (and is compiled)

            r = await http.put("/api/t/acme/apps/crm/draft", json=V2)
            assert r.status_code == 200, r.text
            await _cli(env, "app", "publish", "acme", "crm")
            took = await _until(http, {"title": "b", "amount": 7}, 201)
            assert took < 1.0, f"the server served version 2 after {took:.2f} s"
            r = await http.get(DATA)
            assert [c["amount"] for c in r.json()["items"]] == [7]

            await _cli(env, "app", "rollback", "acme", "crm", "1", "--allow-destructive")
            took = await _until(http, {"title": "c", "amount": 9}, 422)
            assert took < 1.0, f"the server served version 1 again after {took:.2f} s"
            r = await http.post(DATA, json={"title": "d"})
            assert r.status_code == 201, r.text
    finally:
        if server.process is not None and server.process.returncode is None:
            await server.kill()


async def _hammer(http: httpx.AsyncClient, stop: asyncio.Event, seen: list[httpx.Response]) -> None:
    """Read and write the claims as fast as one client can until `stop`."""
    while not stop.is_set():
        seen.append(await http.get(DATA))
        seen.append(await http.post(DATA, json={"title": "x", "amount": 1}))
        await asyncio.sleep(0.01)  # under the tenant's rate limit


async def test_a_cli_publish_dropping_a_column_never_makes_the_server_answer_500(
    database_url: str, tmp_path: Path
) -> None:
    """Between the CLI's migration and the server hearing of it (up to 0.25 s), the server's
    compiled app names a column the table lost: it retries on the new version instead."""
    env = {
        **os.environ,
        "PYTHONPATH": f"{ROOT / 'src'}:{ROOT}",
        "PLINTH_DATA_DIR": str(tmp_path / "data"),
        "PLINTH_DATABASE_URL": database_url,
        "PLINTH_ADMIN_TOKEN": ADMIN_TOKEN,
        "PLINTH_LOG_LEVEL": "warning",
    }
    env.pop("PLINTH_REDIS_URL", None)
    port = free_port()
    server = Server({**env, "PLINTH_PORT": str(port)}, port)
    await server.start()
    auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    try:
        async with httpx.AsyncClient(base_url=server.http, headers=auth) as http:
            await make_tenant(http, "acme")
            await make_app(http, "acme", "crm", V2)
            r = await http.post("/api/t/acme/apps/crm/publish", json={})
            assert r.status_code in (200, 201), r.text
            assert (await http.post(DATA, json={"title": "a", "amount": 5})).status_code == 201

            r = await http.put("/api/t/acme/apps/crm/draft", json=V1)  # amount is dropped
            assert r.status_code == 200, r.text
            stop, seen = asyncio.Event(), []  # type: ignore[var-annotated]
            hammer = asyncio.create_task(_hammer(http, stop, seen))
            await _cli(env, "app", "publish", "acme", "crm", "--allow-destructive")
            deadline = time.monotonic() + 10
            while not any(r.status_code == 422 for r in seen):  # it serves version 3 now
                assert time.monotonic() < deadline, "the server never heard of version 3"
                await asyncio.sleep(0.02)
            stop.set()
            await hammer
            assert [r.text for r in seen if r.status_code >= 500] == []
            # Served by version 2, then version 3: an amount is refused at the end.
            assert seen[1].status_code == 201, seen[1].text
            r = await http.post(DATA, json={"title": "y", "amount": 1})
            assert r.status_code == 422, r.text
            r = await http.get(DATA)
            assert r.status_code == 200 and all("amount" not in c for c in r.json()["items"])
    finally:
        if server.process is not None and server.process.returncode is None:
            await server.kill()
