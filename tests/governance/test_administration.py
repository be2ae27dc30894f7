"""Administration: users listed, invited, edited, disabled, reset; groups, roles, tokens; the
IDE's own cookie sign-in; every step in the audit viewer; and all of it refused to non-admins
and across tenants."""

from __future__ import annotations

import httpx

from plinth.server import Platform
from tests.helpers import as_user, make_tenant, token_for

IDE = {"X-Plinth-IDE": "1"}


async def _user(client: httpx.AsyncClient, tenant: str = "acme", **extra: object) -> dict:
    body = {"username": "ana", "password": "correct horse battery", "roles": ["designer"]}
    r = await client.post(f"/api/t/{tenant}/users", json=body | extra)
    assert r.status_code == 201, r.text
    return r.json()


async def _sign_in(anon: httpx.AsyncClient, username: str, password: str) -> httpx.Response:
    return await anon.post(
        "/api/auth/acme/session/login",
        json={"username": username, "password": password},
        headers=IDE,
    )


async def test_owner_administers_users_and_each_step_is_in_the_audit_viewer(
    client: httpx.AsyncClient, anon: httpx.AsyncClient, platform: Platform
) -> None:
    await make_tenant(client, "acme")
    owner = as_user(client, await token_for(client, "acme", "owner"))
    ana = await _user(client, attrs={"country": "FR"})
    await _user(client, username="bob", roles=["analyst"], groups=["claims"])
    await _user(client, username="carla", roles=["viewer"], groups=["claims", "audit"])

    # list with filters, a page at a time
    r = await client.get("/api/t/acme/users", headers=owner)
    assert r.status_code == 200, r.text
    assert [u["username"] for u in r.json()["items"]] == ["ana", "bob", "carla"]
    assert "password_hash" not in r.text and "argon2" not in r.text
    r = await client.get("/api/t/acme/users?group=claims&limit=1", headers=owner)
    page = r.json()
    assert [u["username"] for u in page["items"]] == ["bob"] and page["next_cursor"] == "bob"
    r = await client.get(
        f"/api/t/acme/users?group=claims&cursor={page['next_cursor']}", headers=owner
    )
    assert [u["username"] for u in r.json()["items"]] == ["carla"]
    r = await client.get("/api/t/acme/users?role=designer&q=AN", headers=owner)
    assert [u["username"] for u in r.json()["items"]] == ["ana"]

    # edit attributes and groups
    r = await client.patch(
        f"/api/t/acme/users/{ana['id']}",
        json={"attrs": {"country": "DE"}, "groups": ["claims"]},
        headers=owner,
    )
    assert r.status_code == 200, r.text
    assert r.json()["attrs"] == {"country": "DE"} and r.json()["groups"] == ["claims"]
    groups = (await client.get("/api/t/acme/groups", headers=owner)).json()["items"]
    assert {"name": "claims", "members": 3} in groups

    # her session carries the new attributes; disabling her ends it and her sign-in
    r = await _sign_in(anon, "ana", "correct horse battery")
    assert r.status_code == 200, r.text
    assert r.json()["user"]["attrs"] == {"country": "DE"}
    assert r.json()["user"]["can"]["design"] is True
    assert r.json()["user"]["can"]["administer"] is False
    access = as_user(anon, r.json()["access_token"])
    assert (await anon.get("/api/t/acme/me", headers=access)).status_code == 200
    r = await client.patch(f"/api/t/acme/users/{ana['id']}", json={"disabled": True}, headers=owner)
    assert r.status_code == 200 and r.json()["disabled"] is True
    # her access token stops working at once, not when it expires
    r = await anon.get("/api/t/acme/me", headers=access)
    assert r.status_code == 401 and "ended" in r.json()["detail"]
    r = await anon.post("/api/auth/acme/session/refresh", headers=IDE)
    assert r.status_code == 401, r.text
    assert (await _sign_in(anon, "ana", "correct horse battery")).status_code == 401
    r = await client.get("/api/t/acme/users?disabled=true", headers=owner)
    assert [u["username"] for u in r.json()["items"]] == ["ana"]
    r = await client.patch(
        f"/api/t/acme/users/{ana['id']}", json={"disabled": False}, headers=owner
    )
    assert r.json()["disabled"] is False

    # reset: a one-time link; the old password stops working, the new one works once set
    r = await client.post(f"/api/t/acme/users/{ana['id']}/password-reset", headers=owner)
    assert r.status_code == 201, r.text
    reset = r.json()["token"]
    assert reset in r.json()["url"]
    r = await anon.post(
        "/api/auth/acme/password", json={"token": reset, "password": "new pass 123"}
    )
    assert r.status_code == 204, r.text
    again = await anon.post("/api/auth/acme/password", json={"token": reset, "password": "x" * 9})
    assert again.status_code == 401 and again.headers["content-type"] == "application/problem+json"
    assert (await _sign_in(anon, "ana", "correct horse battery")).status_code == 401
    assert (await _sign_in(anon, "ana", "new pass 123")).status_code == 200

    # revoke her sessions
    r = await client.delete(f"/api/t/acme/users/{ana['id']}/sessions", headers=owner)
    assert r.status_code == 200 and r.json()["revoked"] >= 1
    assert (await anon.post("/api/auth/acme/session/refresh", headers=IDE)).status_code == 401

    # every step, filtered in the audit viewer (newest first)
    r = await client.get(
        "/api/t/acme/audit",
        params={"action": "user.", "resource": f"user:{ana['id']}", "order": "desc"},
        headers=owner,
    )
    assert r.status_code == 200, r.text
    actions = [e["action"] for e in r.json()["items"]]
    assert actions == [
        "user.sessions_revoked",
        "user.password_set",
        "user.password_reset",
        "user.enabled",
        "user.disabled",
        "user.updated",
        "user.created",
    ]
    updated = r.json()["items"][-2]
    assert updated["data"]["changed"] == ["attrs", "groups"]
    assert updated["actor"] == "owner-key"


async def test_invited_user_sets_a_password_and_signs_in_to_the_ide(
    client: httpx.AsyncClient, anon: httpx.AsyncClient, platform: Platform
) -> None:
    await make_tenant(client, "acme")
    r = await client.post(
        "/api/t/acme/users", json={"username": "dina", "roles": ["designer"], "groups": ["ops"]}
    )
    assert r.status_code == 201, r.text
    invite = r.json()["invite"]
    assert r.json()["has_password"] is False
    assert (await _sign_in(anon, "dina", "whatever1")).status_code == 401
    r = await anon.post(
        "/api/auth/acme/password", json={"token": invite["token"], "password": "short"}
    )
    assert r.status_code == 422 and r.json()["errors"][0]["path"] == "password"
    r = await anon.post(
        "/api/auth/acme/password", json={"token": invite["token"], "password": "dina's pass"}
    )
    assert r.status_code == 204, r.text

    r = await anon.post(
        "/api/auth/acme/session/login", json={"username": "dina", "password": "dina's pass"}
    )
    assert r.status_code == 403 and r.json()["path"] == "headers.x-plinth-ide"
    r = await _sign_in(anon, "dina", "dina's pass")
    assert r.status_code == 200, r.text
    assert "plinth_ide_refresh" not in r.text  # the refresh token only in the cookie
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "samesite=strict" in cookie.lower()
    assert "Path=/api/auth/acme/session" in cookie
    access = r.json()["access_token"]
    me = (await anon.get("/api/t/acme/me", headers=as_user(anon, access))).json()
    assert me["name"] == "dina" and me["groups"] == ["ops"]
    assert me["can"] == {
        "design": True,
        "publish": True,
        "create_apps": True,
        "delete_apps": False,
        "administer": False,
        "tokens": False,
        "audit": False,
    }
    # the same session drives the IDE's API calls and is refreshed from the cookie
    r = await anon.post("/api/t/acme/apps", json={"slug": "claims"}, headers=as_user(anon, access))
    assert r.status_code == 201, r.text
    r = await anon.post("/api/auth/acme/session/refresh", headers=IDE)
    assert r.status_code == 200 and r.json()["user"]["name"] == "dina"
    assert (await anon.post("/api/auth/acme/session/logout", headers=IDE)).status_code == 204
    assert (await anon.post("/api/auth/acme/session/refresh", headers=IDE)).status_code == 401
    providers = (await anon.get("/api/auth/acme/session/providers")).json()
    assert providers == {"password": True, "oidc": None}


async def test_tokens_are_listed_without_secrets_and_revoked(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    await make_tenant(client, "acme")
    owner = as_user(client, await token_for(client, "acme", "owner"))
    r = await client.post(
        "/api/t/acme/tokens", json={"name": "ci", "role": "designer"}, headers=owner
    )
    issued = r.json()
    r = await client.get("/api/t/acme/tokens", headers=owner)
    assert r.status_code == 200, r.text
    listed = {t["name"]: t for t in r.json()["items"]}
    assert set(listed) == {"ci", "owner-key"}
    assert issued["token"] not in r.text and listed["ci"]["prefix"] == issued["token"][:8]
    assert (
        await client.delete(f"/api/t/acme/tokens/{issued['id']}", headers=owner)
    ).status_code == 204
    r = await client.get("/api/t/acme/tokens", headers=owner)
    assert {t["name"] for t in r.json()["items"]} == {"owner-key"}
    r = await client.get("/api/t/acme/tokens?include_revoked=true", headers=owner)
    assert {t["name"] for t in r.json()["items"]} == {"ci", "owner-key"}


async def test_groups_roles_and_memberships(client: httpx.AsyncClient, platform: Platform) -> None:
    await make_tenant(client, "acme")
    ana = await _user(client, roles=["claims_handler"])
    r = await client.put(f"/api/t/acme/groups/claims/members/{ana['id']}")
    assert r.status_code == 204
    assert (await client.get(f"/api/t/acme/users/{ana['id']}")).json()["groups"] == ["claims"]
    r = await client.delete(f"/api/t/acme/groups/claims/members/{ana['id']}")
    assert r.status_code == 204
    assert (await client.get("/api/t/acme/groups")).json()["items"] == []
    roles = {r["name"]: r for r in (await client.get("/api/t/acme/roles")).json()["items"]}
    assert "user.manage" in roles["owner"]["actions"] and roles["owner"]["builtin"]
    assert "app.publish" not in roles["analyst"]["actions"]
    assert roles["claims_handler"] == {"name": "claims_handler", "builtin": False, "actions": []}
    r = await client.put("/api/t/acme/groups/claims/members/nobody")
    assert r.status_code == 404 and r.json()["path"] == "user_id"


async def test_non_admins_and_other_tenants_are_refused(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    await make_tenant(client, "acme")
    await make_tenant(client, "globex")
    ana = await _user(client)
    designer = as_user(client, await token_for(client, "acme", "designer"))
    for method, path in (
        ("GET", "/api/t/acme/users"),
        ("PATCH", f"/api/t/acme/users/{ana['id']}"),
        ("GET", "/api/t/acme/tokens"),
        ("GET", "/api/t/acme/groups"),
        ("DELETE", f"/api/t/acme/users/{ana['id']}/sessions"),
    ):
        r = await client.request(
            method, path, headers=designer, json={} if method == "PATCH" else None
        )
        assert r.status_code == 403, (method, path, r.text)
        assert r.headers["content-type"] == "application/problem+json"
    globex = as_user(client, await token_for(client, "globex", "owner"))
    assert (await client.get("/api/t/acme/users", headers=globex)).status_code == 403
    # globex's owner cannot reach acme's user through globex's own routes either
    r = await client.get(f"/api/t/globex/users/{ana['id']}", headers=globex)
    assert r.status_code == 404
    r = await client.patch(
        f"/api/t/globex/users/{ana['id']}", json={"disabled": True}, headers=globex
    )
    assert r.status_code == 404
    r = await client.patch(f"/api/t/acme/users/{ana['id']}", json={"roles": ["platform_admin"]})
    assert r.status_code == 400 and r.json()["path"] == "roles.0"
    denied = await client.get("/api/t/acme/audit?action=access.denied")
    assert denied.status_code == 200


async def test_apps_are_cloned_with_their_draft(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    await make_tenant(client, "acme")
    await client.post("/api/t/acme/apps", json={"slug": "claims", "name": "Claims"})
    definition = {"entities": {"note": {"fields": {"text": {"type": "string"}}}}}
    r = await client.put("/api/t/acme/apps/claims/draft", json=definition)
    assert r.status_code == 200, r.text
    r = await client.post("/api/t/acme/apps/claims/clone", json={"slug": "claims-copy"})
    assert r.status_code == 201, r.text
    assert r.json()["name"] == "Claims (copy)"
    draft = (await client.get("/api/t/acme/apps/claims-copy/draft")).json()
    assert draft["definition"]["entities"]["note"]["fields"]["text"]["type"] == "string"
    r = await client.post("/api/t/acme/apps/claims/clone", json={"slug": "claims-copy"})
    assert r.status_code == 409 and r.json()["path"] == "slug"
    r = await client.get("/api/t/acme/audit", params={"action": "app.created", "order": "desc"})
    assert r.json()["items"][0]["data"]["cloned_from"] == "claims"
