"""The designer's log is the draft's truth: a server SIGKILLed at a random moment after
acknowledged updates loses none of them, in the CRDT document or in the REST draft."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sys
from pathlib import Path

import httpx

from tests.conftest import ADMIN_TOKEN
from tests.designer.test_sync import add_field, field_names
from tests.designer.yclient import YClient, eventually
from tests.helpers import CLAIMS, free_port

ROOT = Path(__file__).resolve().parents[2]
ROUNDS = 2
EDITS = 3


class Server:
    """`plinth serve` in its own process, so it can be killed for real."""

    def __init__(self, env: dict[str, str], port: int) -> None:
        self.env, self.port = env, port
        self.process: asyncio.subprocess.Process | None = None
        self.http = f"http://127.0.0.1:{port}"

    def sync_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/api/t/acme/apps/claims/draft/sync"

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "plinth.cli.main", "serve", env=self.env
        )
        async with httpx.AsyncClient() as c:
            for _ in range(600):
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


async def _draft_fields(http: httpx.AsyncClient) -> set[str]:
    r = await http.get("/api/t/acme/apps/claims/draft")
    assert r.status_code == 200, r.text
    return set(r.json()["definition"]["entities"]["claim"]["fields"])


async def _doc_fields(server: Server) -> set[str]:
    async with YClient(server.sync_url(), ADMIN_TOKEN) as fresh:
        await asyncio.wait_for(fresh.synced.wait(), 10)
        return field_names(fresh, "claim")


async def test_a_kill_after_acknowledged_updates_loses_none(
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
        "PLINTH_EMBEDDED_WORKER": "false",
        "PLINTH_LOG_LEVEL": "warning",
    }
    server = Server(env, port)
    await server.start()
    auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    rng = random.Random(1717)
    acked: list[str] = []
    try:
        async with httpx.AsyncClient(base_url=server.http, headers=auth) as http:
            assert (await http.post("/api/tenants", json={"slug": "acme"})).status_code == 201
            assert (await http.post("/api/t/acme/apps", json={"slug": "claims"})).status_code == 201
            r = await http.put("/api/t/acme/apps/claims/draft", json=CLAIMS)
            assert r.status_code == 200, r.text
        for round_ in range(ROUNDS):
            async with (
                YClient(server.sync_url(), ADMIN_TOKEN) as editor,
                YClient(server.sync_url(), ADMIN_TOKEN) as observer,
            ):
                await asyncio.wait_for(editor.synced.wait(), 10)
                await asyncio.wait_for(observer.synced.wait(), 10)
                for k in range(EDITS):
                    name = f"f{round_}_{k}"
                    acks = editor.acks
                    add_field(editor, "claim", f"fld_{name}", name, type="string")
                    await eventually(lambda n=name: n in field_names(observer, "claim"), 10)
                    # Acknowledged: the server's empty sync step 2 once its batch was logged.
                    await eventually(lambda a=acks: editor.acks > a, 10)
                    acked.append(name)
                # Killed at a random moment after the acknowledgement, mostly before the
                # room settles the REST draft (0.25 s after the last update).
                await asyncio.sleep(rng.uniform(0.0, 0.3))
                await server.kill()
            await server.start()
            async with httpx.AsyncClient(base_url=server.http, headers=auth) as http:
                # Read REST first in some rounds, the document first in others.
                if round_ % 2:
                    doc, draft = await _doc_fields(server), await _draft_fields(http)
                else:
                    draft, doc = await _draft_fields(http), await _doc_fields(server)
                assert set(acked) <= draft, (round_, set(acked) - draft)
                assert set(acked) <= doc, (round_, set(acked) - doc)
        # A REST write after a kill is applied to the document, never over it.
        async with httpx.AsyncClient(base_url=server.http, headers=auth) as http:
            async with YClient(server.sync_url(), ADMIN_TOKEN) as editor:
                await asyncio.wait_for(editor.synced.wait(), 10)
                add_field(editor, "claim", "fld_last", "last_live", type="string")
                await asyncio.sleep(0.05)
                await server.kill()
            await server.start()
            patch = [
                {
                    "op": "add",
                    "path": "/entities/claim/fields/via_patch",
                    "value": {"type": "string"},
                }
            ]
            r = await http.patch(
                "/api/t/acme/apps/claims/draft",
                json=patch,
                headers={"Content-Type": "application/json-patch+json"},
            )
            assert r.status_code == 200, r.text
            expected = {*acked, "via_patch"}
            assert expected <= await _draft_fields(http)
            assert expected <= await _doc_fields(server)
            r = await http.post("/api/t/acme/apps/claims/publish", json={})
            assert r.status_code == 201, r.text
            version = (await http.get("/api/t/acme/apps/claims/versions/1")).json()
            assert expected <= set(version["definition"]["entities"]["claim"]["fields"])
    finally:
        if server.process is not None and server.process.returncode is None:
            await server.kill()
