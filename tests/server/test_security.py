"""Every /api endpoint needs a valid token, and tenant A never reaches tenant B."""

from __future__ import annotations

import re

from plinth.server import create_app
from tests.helpers import CLAIMS, as_user, make_app, make_tenant, token_for

# Endpoints that authenticate some other way, by design: sign-in itself, and incoming webhooks
# (an HMAC signature, checked by their own tests).
PUBLIC = (re.compile(r"^/api/auth/"), re.compile(r"^/api/t/[^/]+/apps/[^/]+/hooks/"))


def api_operations(platform) -> list[tuple[str, str]]:
    """Every (method, path) of the API, path parameters filled with plausible values."""
    spec = create_app(platform=platform).openapi()
    ops = []
    for path, methods in spec["paths"].items():
        if not path.startswith("/api") or any(p.match(path) for p in PUBLIC):
            continue
        concrete = re.sub(r"\{tenant\}", "acme", path)
        concrete = re.sub(r"\{app\}", "claims", concrete)
        concrete = re.sub(r"\{[^}]+\}", "1", concrete)
        for method in methods:
            ops.append((method.upper(), concrete))
    return ops


async def test_every_api_endpoint_requires_a_token(client, anon, platform):
    await make_tenant(client, "acme")
    await make_app(client, "acme", "claims", CLAIMS)
    ops = api_operations(platform)
    assert len(ops) >= 15
    for method, path in ops:
        r = await anon.request(method, path, json={})
        assert r.status_code == 401, (method, path, r.status_code, r.text)
        assert r.headers["content-type"] == "application/problem+json"
        assert r.headers["www-authenticate"] == "Bearer"
        r = await anon.request(
            method, path, json={}, headers={"Authorization": "Bearer plt_not_a_real_token"}
        )
        assert r.status_code == 401, (method, path)


async def test_tenant_a_never_sees_tenant_b(client):
    await make_tenant(client, "alpha")
    await make_tenant(client, "beta")
    await make_app(client, "alpha", "secret-app", CLAIMS)
    await make_app(client, "beta", "beta-app")
    beta_owner = as_user(client, await token_for(client, "beta", "owner"))
    # listing tenants shows only its own
    r = await client.get("/api/tenants", headers=beta_owner)
    assert [t["slug"] for t in r.json()["items"]] == ["beta"]
    # every way into alpha is refused, and says nothing about alpha's apps
    for method, path in [
        ("GET", "/api/t/alpha"),
        ("GET", "/api/t/alpha/apps"),
        ("GET", "/api/t/alpha/apps/secret-app"),
        ("GET", "/api/t/alpha/apps/secret-app/draft"),
        ("PUT", "/api/t/alpha/apps/secret-app/draft"),
        ("POST", "/api/t/alpha/apps/secret-app/publish"),
        ("DELETE", "/api/t/alpha/apps/secret-app"),
        ("POST", "/api/t/alpha/tokens"),
        ("GET", "/api/t/nonexistent/apps"),
    ]:
        r = await client.request(method, path, headers=beta_owner, json={})
        assert r.status_code == 403, (method, path, r.text)
        body = r.json()
        assert "secret-app" not in body["detail"] and "Policyholder" not in r.text
    # its own tenant works
    r = await client.get("/api/t/beta/apps", headers=beta_owner)
    assert [a["slug"] for a in r.json()["items"]] == ["beta-app"]
    # and tenant creation is for platform admins only
    r = await client.post("/api/tenants", json={"slug": "gamma"}, headers=beta_owner)
    assert r.status_code == 403


async def test_roles_limit_what_a_tenant_token_may_do(client):
    await make_tenant(client, "acme")
    await make_app(client, "acme", "claims", CLAIMS)
    viewer = as_user(client, await token_for(client, "acme", "viewer"))
    designer = as_user(client, await token_for(client, "acme", "designer"))
    assert (await client.get("/api/t/acme/apps/claims/draft", headers=viewer)).status_code == 200
    r = await client.put("/api/t/acme/apps/claims/draft", json={}, headers=viewer)
    assert r.status_code == 403 and r.json()["action"] == "draft.edit"
    r = await client.post("/api/t/acme/apps/claims/publish", headers=designer)
    assert r.status_code == 201
    r = await client.delete("/api/t/acme/apps/claims", headers=designer)
    assert r.status_code == 403


async def test_revoked_and_expired_tokens_stop_working(client):
    await make_tenant(client, "acme")
    r = await client.post("/api/t/acme/tokens", json={"name": "ci", "role": "viewer"})
    token_id, token = r.json()["id"], r.json()["token"]
    headers = as_user(client, token)
    assert (await client.get("/api/t/acme/apps", headers=headers)).status_code == 200
    assert (await client.delete(f"/api/t/acme/tokens/{token_id}")).status_code == 204
    assert (await client.get("/api/t/acme/apps", headers=headers)).status_code == 401
    r = await client.post(
        "/api/t/acme/tokens",
        json={"name": "old", "role": "viewer", "expires_at": "2001-01-01T00:00:00Z"},
    )
    r = await client.get("/api/t/acme/apps", headers=as_user(client, r.json()["token"]))
    assert r.status_code == 401 and "expired" in r.json()["detail"]


async def test_tokens_are_stored_hashed(client, platform):
    import sqlalchemy as sa

    await make_tenant(client, "acme")
    token = await token_for(client, "acme", "viewer")
    async with platform.db.read() as conn:
        rows = (await conn.execute(sa.text("SELECT token_hash, prefix FROM api_tokens"))).all()
    assert all(token not in (row.token_hash + row.prefix) for row in rows)
    assert any(len(row.token_hash) == 64 for row in rows)
