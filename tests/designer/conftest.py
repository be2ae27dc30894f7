"""A real HTTP/WebSocket server (uvicorn on 127.0.0.1) around the test platform."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import uvicorn

from plinth.server import Platform, create_app
from tests.conftest import ADMIN_TOKEN
from tests.helpers import free_port


@dataclass
class Served:
    platform: Platform
    http: str
    ws: str
    server: uvicorn.Server
    task: asyncio.Task[None]

    def sync_url(self, tenant: str, app: str) -> str:
        return f"{self.ws}/api/t/{tenant}/apps/{app}/draft/sync"

    async def shutdown(self) -> None:
        self.server.should_exit = True
        await self.task


async def serve(platform: Platform) -> Served:
    """Start uvicorn for `platform` (already started) and wait until it listens."""
    port = free_port()
    config = uvicorn.Config(
        create_app(platform=platform),
        host="127.0.0.1",
        port=port,
        lifespan="off",
        log_level="warning",
        ws="websockets-sansio",
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 - uvicorn exposes only a flag
        await asyncio.sleep(0.01)
    return Served(platform, f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}", server, task)


NODE_DIR = Path(__file__).parent / "node"


@pytest.fixture(scope="session", autouse=True)
def node_client_installed() -> None:
    """Install the stock yjs + y-websocket client the protocol test runs (once)."""
    if (NODE_DIR / "node_modules" / "y-websocket").exists() or shutil.which("npm") is None:
        return
    subprocess.run(
        ["npm", "ci", "--no-audit", "--no-fund"],
        cwd=NODE_DIR,
        check=False,
        capture_output=True,
        timeout=300,
    )


@pytest.fixture
async def served(platform: Platform) -> AsyncIterator[Served]:
    s = await serve(platform)
    try:
        yield s
    finally:
        await s.shutdown()


@pytest.fixture
async def http(served: Served) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=served.http, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=60
    ) as c:
        yield c
