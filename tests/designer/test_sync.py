"""Co-editing a draft over the Yjs protocol: convergence, guards, REST bridge, persistence."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest
import websockets
from pycrdt import Map

from plinth.designer import protocol as p
from plinth.designer.service import compact_app
from plinth.server import Platform
from tests.conftest import ADMIN_TOKEN
from tests.designer.conftest import Served, serve
from tests.designer.yclient import YClient, eventually
from tests.helpers import CLAIMS, make_app, make_tenant, token_for


def entity(client: YClient, name: str) -> tuple[str, Map]:
    ents = client.doc.get("entities", type=Map)
    for eid in ents:
        if ents[eid]["name"] == name:
            return eid, ents[eid]
    raise KeyError(name)


def field_names(client: YClient, name: str) -> set[str]:
    _, ent = entity(client, name)
    return {f["name"] for f in ent["fields"].to_py().values()}


def add_field(client: YClient, ent_name: str, fid: str, name: str, **attrs: object) -> None:
    _, ent = entity(client, ent_name)
    ent["fields"][fid] = Map({"name": name, "pos": 99, "attrs": Map(attrs)})


async def setup_app(http: httpx.AsyncClient) -> None:
    await make_tenant(http, "acme")
    await make_app(http, "acme", "claims", CLAIMS)


async def draft_fields(http: httpx.AsyncClient, entity_name: str = "claim") -> set[str]:
    r = await http.get("/api/t/acme/apps/claims/draft")
    assert r.status_code == 200, r.text
    body = r.json()
    definition = body.get("definition", body)
    return set(definition["entities"][entity_name]["fields"])


async def test_two_editors_converge_and_the_rest_draft_follows(
    served: Served, http: httpx.AsyncClient
) -> None:
    await setup_app(http)
    url = served.sync_url("acme", "claims")
    async with YClient(url, ADMIN_TOKEN) as a, YClient(url, ADMIN_TOKEN) as b:
        await asyncio.wait_for(a.synced.wait(), 5)
        await asyncio.wait_for(b.synced.wait(), 5)
        assert "amount" in field_names(a, "claim")
        # both add a field to the same entity at once
        add_field(a, "claim", "fld_a1", "notes", type="text")
        add_field(b, "claim", "fld_b1", "region", type="string")
        want = {"holder", "amount", "status", "notes", "region"}
        await eventually(lambda: field_names(a, "claim") == want == field_names(b, "claim"))
        # the REST draft follows once the room settles
        for _ in range(100):
            if await draft_fields(http) == want:
                break
            await asyncio.sleep(0.05)
        assert await draft_fields(http) == want
        # a third joins late and sees everything
        async with YClient(url, ADMIN_TOKEN) as c:
            await asyncio.wait_for(c.synced.wait(), 5)
            assert field_names(c, "claim") == want


async def test_rest_changes_reach_live_editors(served: Served, http: httpx.AsyncClient) -> None:
    await setup_app(http)
    async with YClient(served.sync_url("acme", "claims"), ADMIN_TOKEN) as a:
        await asyncio.wait_for(a.synced.wait(), 5)
        r = await http.patch(
            "/api/t/acme/apps/claims/draft",
            json=[
                {
                    "op": "add",
                    "path": "/entities/claim/fields/reviewer",
                    "value": {"type": "string"},
                }
            ],
        )
        assert r.status_code == 200, r.text
        await eventually(lambda: "reviewer" in field_names(a, "claim"))
        # the live edit after the REST change is kept, and REST sees both
        add_field(a, "claim", "fld_x", "closed_on", type="date")
        await eventually_async(lambda: draft_fields(http), "closed_on")
        assert "reviewer" in await draft_fields(http)


async def test_an_invalid_merge_is_kept_live_and_reported(
    served: Served, http: httpx.AsyncClient
) -> None:
    await setup_app(http)
    async with YClient(served.sync_url("acme", "claims"), ADMIN_TOKEN) as a:
        await asyncio.wait_for(a.synced.wait(), 5)
        add_field(a, "claim", "fld_bad", "score", type="no_such_type")
        await eventually(lambda: bool(a.diagnostics()))
        paths = [d["path"] for d in a.diagnostics() or []]
        assert any(path.startswith("entities.claim.fields.score") for path in paths), paths
        assert "score" not in await draft_fields(http)  # REST keeps the last valid draft
        r = await http.get("/api/t/acme/apps/claims/draft/diagnostics")
        assert r.json()["valid"] is False
        _, ent = entity(a, "claim")
        ent["fields"]["fld_bad"]["attrs"]["type"] = "integer"
        await eventually(lambda: a.diagnostics() == [])
        await eventually_async(lambda: draft_fields(http), "score")


async def test_a_viewer_cannot_edit_and_is_resynced(
    served: Served, http: httpx.AsyncClient
) -> None:
    await setup_app(http)
    viewer = await token_for(http, "acme", "viewer")
    url = served.sync_url("acme", "claims")
    async with YClient(url, viewer) as v, YClient(url, ADMIN_TOKEN) as a:
        await asyncio.wait_for(v.synced.wait(), 5)
        await asyncio.wait_for(a.synced.wait(), 5)
        add_field(v, "claim", "fld_v", "sneaky", type="string")
        add_field(a, "claim", "fld_a", "legit", type="string")
        await eventually(lambda: "legit" in field_names(v, "claim"))
        await asyncio.sleep(0.5)
        assert "sneaky" not in field_names(a, "claim")
        assert "sneaky" not in await draft_fields(http)
        assert v.closed is None  # refused, not thrown out


async def test_authentication_and_tenant_policy_on_connect(
    served: Served, http: httpx.AsyncClient
) -> None:
    await setup_app(http)
    await make_tenant(http, "other")
    stranger = await token_for(http, "other", "owner")
    url = served.sync_url("acme", "claims")
    for token, code in ((None, 4401), ("plt_not_a_real_token", 4401), (stranger, 4403)):
        target = url if token is None else f"{url}?token={token}"
        async with websockets.connect(target) as ws:
            with pytest.raises(websockets.ConnectionClosed) as info:
                await asyncio.wait_for(ws.recv(), 5)
        assert info.value.rcvd is not None and info.value.rcvd.code == code
    async with websockets.connect(served.sync_url("acme", "nope") + f"?token={ADMIN_TOKEN}") as ws:
        with pytest.raises(websockets.ConnectionClosed) as info:
            await asyncio.wait_for(ws.recv(), 5)
    assert info.value.rcvd is not None and info.value.rcvd.code == 4404


async def test_a_malformed_update_closes_only_its_connection(
    served: Served, http: httpx.AsyncClient
) -> None:
    await setup_app(http)
    url = served.sync_url("acme", "claims")
    async with (
        YClient(url, ADMIN_TOKEN) as bad,
        YClient(url, ADMIN_TOKEN) as a,
        YClient(url, ADMIN_TOKEN) as b,
    ):
        for c in (bad, a, b):
            await asyncio.wait_for(c.synced.wait(), 5)
        await bad.send_raw(p.sync_message(p.UPDATE, b"\x07\xff\xfe garbage \x00\x01"))
        await eventually(lambda: bad.closed is not None)
        assert bad.closed is not None and bad.closed[0] == 4400
        big = YClient(url, ADMIN_TOKEN)
        async with big:
            await asyncio.wait_for(big.synced.wait(), 5)
            _, ent = entity(big, "claim")
            ent["attrs"]["label"] = "x" * (300 * 1024)
            await eventually(lambda: big.closed is not None)
            assert big.closed is not None and big.closed[0] == 4413
        add_field(a, "claim", "fld_ok", "still_fine", type="string")
        await eventually(lambda: "still_fine" in field_names(b, "claim"))


async def test_presence_identity_is_stamped_by_the_server(
    served: Served, http: httpx.AsyncClient
) -> None:
    await setup_app(http)
    designer = await token_for(http, "acme", "designer")
    url = served.sync_url("acme", "claims")
    async with YClient(url, designer) as a, YClient(url, ADMIN_TOKEN) as b:
        await asyncio.wait_for(a.synced.wait(), 5)
        await asyncio.wait_for(b.synced.wait(), 5)
        await a.set_presence(
            {
                "user": {"name": "the admin", "color": "#f00"},
                "selection": "entities.claim.fields.amount",
            }
        )
        await eventually(lambda: a.doc.client_id in b.awareness)
        state = b.awareness[a.doc.client_id]
        assert state["user"]["name"] == "designer-key"
        assert state["user"]["color"] == "#f00" and state["selection"].endswith("amount")
        # a client cannot overwrite another's presence
        entry = p.PresenceEntry(a.doc.client_id, 5, {"user": {"name": "spoof"}})
        await b.send_raw(p.awareness_message(p.encode_awareness([entry])))
        await asyncio.sleep(0.3)
        assert b.awareness[a.doc.client_id]["user"]["name"] == "designer-key"
        # leaving clears presence for those still there
        await a.close()
        await eventually(lambda: b.awareness.get(a.doc.client_id, 1) is None)


async def test_history_lists_who_changed_what(served: Served, http: httpx.AsyncClient) -> None:
    await setup_app(http)
    designer = await token_for(http, "acme", "designer")
    async with YClient(served.sync_url("acme", "claims"), designer) as a:
        await asyncio.wait_for(a.synced.wait(), 5)
        add_field(a, "claim", "fld_h", "history_field", type="string")
        await asyncio.sleep(0.4)
    r = await http.get("/api/t/acme/apps/claims/draft/history")
    assert r.status_code == 200, r.text
    items = r.json()["items"]
    assert items[0]["author"] == "designer-key"
    assert any("fld_h" in path for path in items[0]["paths"]), items[0]


async def test_restart_and_compaction_lose_nothing(platform: Platform) -> None:
    served = await serve(platform)
    async with httpx.AsyncClient(
        base_url=served.http, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
    ) as http:
        await setup_app(http)
    url = served.sync_url("acme", "claims")
    async with YClient(url, ADMIN_TOKEN) as a:
        await asyncio.wait_for(a.synced.wait(), 5)
        for i in range(30):
            add_field(a, "claim", f"fld_r{i}", f"f{i}", type="integer")
            await asyncio.sleep(0.005)
        await eventually(
            lambda: len(platform.designer.rooms) == 1 and len(field_names(a, "claim")) == 33
        )
        await asyncio.sleep(0.2)
    await served.shutdown()
    room = next(iter(platform.designer.rooms.values()))
    app_id, tenant_id = room.app_id, room.tenant.id
    await platform.stop()

    second = Platform(platform.settings)
    await second.start()
    try:
        served2 = await serve(second)
        try:
            async with YClient(served2.sync_url("acme", "claims"), ADMIN_TOKEN) as b:
                await asyncio.wait_for(b.synced.wait(), 5)
                assert len(field_names(b, "claim")) == 33
            folded = await compact_app(second.db, tenant_id, app_id, min_age=0)
            assert folded >= 30
            second.designer.rooms.clear()
            async with YClient(served2.sync_url("acme", "claims"), ADMIN_TOKEN) as c:
                await asyncio.wait_for(c.synced.wait(), 5)
                assert len(field_names(c, "claim")) == 33
        finally:
            await served2.shutdown()
    finally:
        await second.stop()
    # the fixture's stop() runs again on an already-stopped platform
    platform._on_stop.clear()


NODE_DIR = Path(__file__).parent / "node"


async def test_a_stock_yjs_y_websocket_client_joins(
    served: Served, http: httpx.AsyncClient
) -> None:
    # Installed by tests/designer/setup.sh (./scripts/test runs it): a missing client fails.
    assert (NODE_DIR / "node_modules" / "y-websocket").exists(), "run tests/designer/setup.sh"
    await setup_app(http)
    designer = await token_for(http, "acme", "designer")
    proc = await asyncio.create_subprocess_exec(
        "node",
        str(NODE_DIR / "protocol.mjs"),
        f"{served.ws}/api/t/acme/apps/claims/draft",
        designer,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err.decode()
    seen = json.loads(out.decode().strip().splitlines()[-1])
    assert seen["before"] == ["amount", "holder", "status"]
    assert "from_node" in seen["after"]
    assert seen["presence"]["name"] == "designer-key"  # stamped, not the client's "node-a"
    assert seen["diagnostics"] == []
    await eventually_async(lambda: draft_fields(http), "from_node")


async def test_a_login_jwt_opens_the_designer_like_an_api_token(
    served: Served, http: httpx.AsyncClient
) -> None:
    await setup_app(http)
    await make_tenant(http, "other")
    for tenant in ("acme", "other"):
        r = await http.post(
            f"/api/t/{tenant}/users",
            json={"username": "dora", "password": "correct horse battery", "roles": ["designer"]},
        )
        assert r.status_code == 201, r.text

    async def login(tenant: str) -> str:
        r = await http.post(
            f"/api/auth/{tenant}/login",
            json={"username": "dora", "password": "correct horse battery"},
        )
        assert r.status_code == 200, r.text
        return str(r.json()["access_token"])

    async with YClient(served.sync_url("acme", "claims"), await login("acme")) as dora:
        await asyncio.wait_for(dora.synced.wait(), 5)
        add_field(dora, "claim", "f_jwt", "via_jwt", type="string")
        await eventually_async(lambda: draft_fields(http), "via_jwt")
    # Another tenant's login JWT is refused like another tenant's API token.
    url = served.sync_url("acme", "claims") + f"?token={await login('other')}"
    async with websockets.connect(url) as ws:
        with pytest.raises(websockets.ConnectionClosed) as info:
            await asyncio.wait_for(ws.recv(), 5)
    assert info.value.rcvd is not None and info.value.rcvd.code == 4403
    async with websockets.connect(served.sync_url("acme", "claims") + "?token=a.b.c") as ws:
        with pytest.raises(websockets.ConnectionClosed) as info:
            await asyncio.wait_for(ws.recv(), 5)
    assert info.value.rcvd is not None and info.value.rcvd.code == 4401


async def eventually_async(read: object, name: str, within: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while name not in await read():  # type: ignore[operator]
        assert asyncio.get_running_loop().time() < deadline, f"{name} never reached the draft"
        await asyncio.sleep(0.02)
