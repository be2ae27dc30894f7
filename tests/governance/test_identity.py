"""Identity: password login, JWT access tokens, refresh rotation, expiry, API key revocation."""

from __future__ import annotations

from datetime import timedelta

import httpx

from plinth.governance.identity import IdentityService
from plinth.server import Platform
from tests.helpers import as_user, make_tenant, token_for


async def _user(client: httpx.AsyncClient, **extra: object) -> dict:
    body = {
        "username": "ana",
        "password": "correct horse battery",
        "roles": ["analyst"],
        "attrs": {"country": "FR"},
        **extra,
    }
    r = await client.post("/api/t/acme/users", json=body)
    assert r.status_code == 201, r.text
    return r.json()


async def test_login_issues_jwt_that_authenticates_and_refresh_rotates(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    await make_tenant(client, "acme")
    await _user(client)
    r = await client.post(
        "/api/auth/acme/login", json={"username": "ana", "password": "correct horse battery"}
    )
    assert r.status_code == 200, r.text
    session = r.json()
    assert session["expires_in"] == 900
    anon = {"Authorization": f"Bearer {session['access_token']}"}
    assert (await client.get("/api/t/acme/apps", headers=anon)).status_code == 200
    # an analyst may read but not create apps
    r = await client.post("/api/t/acme/apps", json={"slug": "x"}, headers=anon)
    assert r.status_code == 403
    r = await client.post(
        "/api/auth/acme/refresh", json={"refresh_token": session["refresh_token"]}
    )
    assert r.status_code == 200 and r.json()["refresh_token"] != session["refresh_token"]
    again = await client.post(
        "/api/auth/acme/refresh", json={"refresh_token": session["refresh_token"]}
    )
    assert again.status_code == 401  # a refresh token works once


async def test_wrong_password_is_refused_and_audited(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    await make_tenant(client, "acme")
    await _user(client)
    r = await client.post("/api/auth/acme/login", json={"username": "ana", "password": "nope"})
    assert r.status_code == 401 and "nope" not in r.text
    r = await client.post("/api/auth/acme/login", json={"username": "who", "password": "x"})
    assert r.status_code == 401
    tid = (await platform.tenants.get("acme")).id
    events = await platform.governance.audit.list(tid, action="auth.login")
    assert [e["outcome"] for e in events] == ["failed", "failed"]


async def test_expired_access_token_is_refused(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    await make_tenant(client, "acme")
    user = await _user(client)
    tid = (await platform.tenants.get("acme")).id
    short = IdentityService(
        platform.db, platform.governance.identity._key, access_ttl=timedelta(seconds=-1)
    )
    found = await short.get_user(tid, user["id"])
    assert found is not None
    r = await client.get(
        "/api/t/acme/apps", headers={"Authorization": f"Bearer {short.access_token(found)}"}
    )
    assert r.status_code == 401 and "expired" in r.text
    r = await client.get("/api/t/acme/apps", headers={"Authorization": "Bearer a.b.c"})
    assert r.status_code == 401


async def test_api_key_revocation_is_immediate_and_audited(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    await make_tenant(client, "acme")
    r = await client.post("/api/t/acme/tokens", json={"name": "ci", "role": "designer"})
    key = r.json()
    assert (
        await client.get("/api/t/acme/apps", headers=as_user(client, key["token"]))
    ).status_code == 200
    assert (await client.delete(f"/api/t/acme/tokens/{key['id']}")).status_code == 204
    assert (
        await client.get("/api/t/acme/apps", headers=as_user(client, key["token"]))
    ).status_code == 401
    tid = (await platform.tenants.get("acme")).id
    actions = [e["action"] for e in await platform.governance.audit.list(tid)]
    assert "token.issued" in actions and "token.revoked" in actions
    assert await token_for(client, "acme", "viewer")


async def test_a_refresh_token_works_only_at_its_own_tenant(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    await make_tenant(client, "acme")
    await make_tenant(client, "globex")
    await _user(client)
    r = await client.post(
        "/api/auth/acme/login", json={"username": "ana", "password": "correct horse battery"}
    )
    refresh = {"refresh_token": r.json()["refresh_token"]}
    for elsewhere in ("globex", "nowhere"):
        r = await client.post(f"/api/auth/{elsewhere}/refresh", json=refresh)
        assert r.status_code == 401, (elsewhere, r.text)
    # Logging out says nothing about the token (204 whether or not it was one), and at
    # another tenant revokes nothing.
    assert (await client.post("/api/auth/globex/logout", json=refresh)).status_code == 204
    assert (await client.post("/api/auth/nowhere/logout", json=refresh)).status_code == 401
    # Neither refused attempt used nor revoked it: at its own tenant it still works, once.
    r = await client.post("/api/auth/acme/refresh", json=refresh)
    assert r.status_code == 200, r.text
    assert (await client.post("/api/auth/acme/refresh", json=refresh)).status_code == 401
