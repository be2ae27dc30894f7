"""Attack: keep a co-editing socket open after losing access. A disabled user's or a revoked
token's socket is closed within the token cache's trust (a second), not kept editing."""

from __future__ import annotations

import asyncio

import httpx

from tests.designer.conftest import Served
from tests.designer.test_sync import add_field, draft_fields, setup_app
from tests.designer.yclient import YClient, eventually
from tests.helpers import as_user


async def test_a_disabled_designer_loses_the_open_socket(
    served: Served, http: httpx.AsyncClient
) -> None:
    await setup_app(http)
    body = {"username": "ana", "password": "correct horse battery", "roles": ["designer"]}
    ana = (await http.post("/api/t/acme/users", json=body)).json()
    login = {"username": "ana", "password": "correct horse battery"}
    access = (await http.post("/api/auth/acme/login", json=login)).json()["access_token"]
    url = served.sync_url("acme", "claims")
    async with YClient(url, access) as editor:
        await asyncio.wait_for(editor.synced.wait(), 5)
        r = await http.patch(f"/api/t/acme/users/{ana['id']}", json={"disabled": True})
        assert r.status_code == 200, r.text
        await eventually(lambda: editor.closed is not None, within=3)
        assert editor.closed is not None and editor.closed[0] == 4401
        add_field(editor, "claim", "fld_late", "after_disable", type="string")
        await asyncio.sleep(0.3)
    assert "after_disable" not in await draft_fields(http)


async def test_a_revoked_token_loses_the_open_socket(
    served: Served, http: httpx.AsyncClient
) -> None:
    await setup_app(http)
    r = await http.post("/api/t/acme/tokens", json={"name": "ci", "role": "designer"})
    assert r.status_code == 201, r.text
    issued = r.json()
    url = served.sync_url("acme", "claims")
    async with YClient(url, issued["token"]) as editor:
        await asyncio.wait_for(editor.synced.wait(), 5)
        r = await http.delete(f"/api/t/acme/tokens/{issued['id']}")
        assert r.status_code in (200, 204), r.text
        await eventually(lambda: editor.closed is not None, within=3)
        assert editor.closed is not None and editor.closed[0] == 4401
    denied = await httpx.AsyncClient(base_url=served.http).get(
        "/api/t/acme/apps", headers=as_user(http, issued["token"])
    )
    assert denied.status_code == 401
