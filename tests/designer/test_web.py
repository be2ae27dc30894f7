"""The server hands out the built web IDE at / without shadowing any API path."""

from __future__ import annotations

import httpx
import pytest

from plinth.designer.api import WEB_DIST


async def test_api_paths_are_never_the_ide(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/no/such/thing")
    assert r.status_code == 404
    assert r.headers["content-type"].startswith("application/problem+json")


@pytest.mark.skipif(not (WEB_DIST / "index.html").exists(), reason="web IDE not built")
async def test_the_ide_is_served_at_root_and_for_client_routes(client: httpx.AsyncClient) -> None:
    for path in ("/", "/t/acme/apps/claims"):
        r = await client.get(path)
        assert r.status_code == 200 and "Plinth designer" in r.text
    asset = next((WEB_DIST / "assets").glob("*.js")).name
    r = await client.get(f"/assets/{asset}")
    assert r.status_code == 200 and "javascript" in r.headers["content-type"]
    assert (await client.get("/healthz")).json() == {"status": "ok"}
