"""Attack: a user disabled (or signed out, or demoted) on one node keeps using the access token
she holds on another node of the same database. Ending sessions must reach every node, as a
token revocation does, within the relay's delay — not when the token expires (15 minutes)."""

from __future__ import annotations

import asyncio
import base64
import os
import time

import httpx

from plinth.server import Platform, create_app
from plinth.settings import Settings
from tests.conftest import ADMIN_TOKEN
from tests.helpers import as_user, make_tenant


async def test_a_disabled_user_is_refused_on_the_other_node(settings: Settings) -> None:
    # Two nodes on one database, no Redis: the change log relays between them.
    master = base64.b64encode(os.urandom(32)).decode()
    scaled = settings.model_copy(update={"master_key": master})
    nodes = [Platform(scaled), Platform(scaled)]
    for node in nodes:
        await node.start(listen=True)  # as a server does
    a, b = (
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=create_app(platform=n)),
            base_url="http://plinth.test",
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        )
        for n in nodes
    )
    try:
        await make_tenant(a, "acme")
        body = {"username": "ana", "password": "correct horse battery", "roles": ["owner"]}
        ana = (await a.post("/api/t/acme/users", json=body)).json()
        login = {"username": "ana", "password": "correct horse battery"}
        r = await a.post("/api/auth/acme/login", json=login)
        assert r.status_code == 200, r.text
        access = as_user(b, r.json()["access_token"])
        assert (await b.get("/api/t/acme/apps", headers=access)).status_code == 200

        r = await a.patch(f"/api/t/acme/users/{ana['id']}", json={"disabled": True})
        assert r.status_code == 200, r.text
        start = time.monotonic()
        while (await b.get("/api/t/acme/apps", headers=access)).status_code == 200:
            assert time.monotonic() - start < 3, "node B still serves the disabled user"
            await asyncio.sleep(0.05)
        r = await b.get("/api/t/acme/apps", headers=access)
        assert r.status_code == 401 and "ended" in r.json()["detail"]
    finally:
        for http in (a, b):
            await http.aclose()
        for node in nodes:
            await node.stop()
