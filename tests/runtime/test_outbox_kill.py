"""A record's side effects are part of its transaction: a real `plinth serve` SIGKILLed
between the record's commit and its side effects (and again between the dispatch and the
clean-up of the outbox) has, after a restart, the record's audit entry, its webhook delivery
and its workflow start, each exactly once."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import ADMIN_TOKEN
from tests.helpers import free_port
from tests.integration.helpers import published

ROOT = Path(__file__).resolve().parents[2]

APP: dict[str, Any] = {
    "entities": {
        "claim": {"fields": {"title": {"type": "string", "required": True}}},
    },
    "workflows": {
        "triage": {
            "start": [{"type": "record", "entity": "claim", "event": "created"}],
            "first": "seen",
            "nodes": {
                "seen": {"type": "assign", "set": {"seen": "vars.record.id"}, "next": "end"},
                "end": {"type": "end"},
            },
        }
    },
    "connectors": {
        "out": {
            "kind": "webhook_out",
            # Nothing listens there: the delivery stays in the log, retrying or dead.
            "url": "http://127.0.0.1:9/hook",
            "events": ["record.created"],
            "secret": {"secret": "hook"},
        }
    },
}


class Server:
    """`plinth serve` in its own process, killed for real."""

    def __init__(self, env: dict[str, str], port: int) -> None:
        self.env, self.http = env, f"http://127.0.0.1:{port}"
        self.process: asyncio.subprocess.Process | None = None

    async def start(self, **extra: str) -> None:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "plinth.cli.main", "serve", env={**self.env, **extra}
        )
        async with httpx.AsyncClient() as c:
            for _ in range(1200):
                try:
                    if (await c.get(f"{self.http}/healthz")).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                assert self.process.returncode is None, "the server exited"
                await asyncio.sleep(0.05)
        raise AssertionError("the server did not start")

    async def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        await self.process.wait()


async def _killed_while_creating(server: Server, marker: Path, title: str) -> None:
    """POST a claim; the server pauses at the switch (touching `marker`) and is killed."""
    async with httpx.AsyncClient(base_url=server.http, headers=_auth()) as http:
        request = asyncio.create_task(
            http.post("/api/t/acme/apps/crm/data/claim", json={"title": title})
        )
        deadline = time.monotonic() + 30
        while not os.path.exists(marker):  # noqa: ASYNC240  (a stat, polled)
            assert time.monotonic() < deadline, "the write never reached its commit"
            assert not request.done(), "the write finished instead of pausing"
            await asyncio.sleep(0.02)
        await server.kill()
        request.cancel()
        await asyncio.gather(request, return_exceptions=True)


def _auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {ADMIN_TOKEN}"}


async def _effects(http: httpx.AsyncClient, record_id: str) -> tuple[int, int, int]:
    """How many audit entries and workflow instances the record has, and how many webhook
    deliveries there are (one per claim created; the log does not show their payloads)."""
    r = await http.get(
        "/api/t/acme/audit", params={"resource": f"crm/claim/{record_id}", "limit": 1000}
    )
    assert r.status_code == 200, r.text
    audit = [e for e in r.json()["items"] if e["action"] == "record.created"]
    r = await http.get("/api/t/acme/apps/crm/connectors/out/deliveries")
    assert r.status_code == 200, r.text
    deliveries = [d for d in r.json()["items"] if d["topic"] == "record.created"]
    r = await http.get("/api/t/acme/workflow-instances", params={"workflow": "triage"})
    assert r.status_code == 200, r.text
    started = [i for i in r.json() if i.get("business_key") == record_id]
    return len(audit), len(deliveries), len(started)


async def _record_id(http: httpx.AsyncClient, title: str) -> str:
    r = await http.get("/api/t/acme/apps/crm/data/claim", params={"limit": 500})
    assert r.status_code == 200, r.text
    [found] = [c for c in r.json()["items"] if c["title"] == title]
    return str(found["id"])


async def _exactly_once(server: Server, title: str, claims: int) -> None:
    """The claim `title` has one audit entry and one workflow instance, and each of the
    `claims` created so far one delivery."""
    expected = (1, claims, 1)
    async with httpx.AsyncClient(base_url=server.http, headers=_auth()) as http:
        record_id = await _record_id(http, title)  # the commit survived the kill
        deadline = time.monotonic() + 20
        while (found := await _effects(http, record_id)) != expected:
            assert all(f <= e for f, e in zip(found, expected, strict=True)), (
                f"an effect ran twice: {found}"
            )
            assert time.monotonic() < deadline, f"effects after the restart: {found}"
            await asyncio.sleep(0.2)
        await asyncio.sleep(2.5)  # another sweep of the outbox changes nothing
        assert await _effects(http, record_id) == expected


async def test_a_kill_between_commit_and_effects_loses_and_doubles_nothing(
    database_url: str, tmp_path: Path
) -> None:
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": f"{ROOT / 'src'}:{ROOT}",
        "PLINTH_DATA_DIR": str(tmp_path / "data"),
        "PLINTH_DATABASE_URL": database_url,
        "PLINTH_ADMIN_TOKEN": ADMIN_TOKEN,
        "PLINTH_PORT": str(port),
        "PLINTH_LOG_LEVEL": "warning",
    }
    server = Server(env, port)
    committed, dispatched = tmp_path / "committed", tmp_path / "dispatched"
    try:
        # Killed after the record's commit, before any effect ran.
        await server.start(PLINTH_TEST_PAUSE_AFTER_COMMIT=str(committed))
        async with httpx.AsyncClient(base_url=server.http, headers=_auth()) as http:
            await published(http, "acme", "crm", APP, secrets={"hook": "s3cret-hook-key"})
        await _killed_while_creating(server, committed, "before the effects")

        # The restart dispatches what the killed process left (its worker's first sweep).
        # Then killed after a write's effects committed, before its outbox rows were cleaned
        # up: the next restart finds them again and must not repeat their effects.
        await server.start(PLINTH_TEST_PAUSE_AFTER_DISPATCH=str(dispatched))
        await _exactly_once(server, "before the effects", 1)
        await _killed_while_creating(server, dispatched, "after the effects")

        await server.start()
        await _exactly_once(server, "after the effects", 2)
        await _exactly_once(server, "before the effects", 2)
    finally:
        if server.process is not None and server.process.returncode is None:
            await server.kill()
