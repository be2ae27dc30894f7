"""`/a/{tenant}/` is the tenant's portal (never the designer's sign-in): its one published
app, or a list of them; nothing published is a 404 problem, like an unknown tenant."""

from __future__ import annotations

from typing import Any

import httpx

from tests.helpers import make_app, make_tenant

PAGES: dict[str, Any] = {
    "entities": {"note": {"fields": {"text": {"type": "string"}}}},
    "pages": {
        "home": {
            "title": "Home",
            "path": "/",
            "components": {
                "root": {"kind": "stack", "parent": None, "order": 0},
                "hello": {
                    "kind": "text",
                    "parent": "root",
                    "order": 1,
                    "props": {"text": "Hello"},
                },
            },
        }
    },
}


async def test_the_tenant_address_opens_its_portal(client: httpx.AsyncClient) -> None:
    await make_tenant(client, "acme")
    r = await client.get("/a/acme/", follow_redirects=False)
    assert r.status_code == 404 and r.headers["content-type"] == "application/problem+json"
    await make_app(client, "acme", "claims", PAGES)
    assert (await client.post("/api/t/acme/apps/claims/publish", json={})).status_code == 201
    await make_app(client, "acme", "drafts", PAGES)  # never published: not offered
    for path in ("/a/acme/", "/a/acme"):
        r = await client.get(path, follow_redirects=False)
        assert r.status_code == 302 and r.headers["location"] == "/a/acme/claims/"

    await make_app(client, "acme", "travel", PAGES)
    assert (await client.post("/api/t/acme/apps/travel/publish", json={})).status_code == 201
    r = await client.get("/a/acme/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert 'href="/a/acme/claims/"' in r.text and 'href="/a/acme/travel/"' in r.text
    assert "/a/acme/drafts/" not in r.text
    assert (await client.get("/a/nobody/")).status_code == 404
