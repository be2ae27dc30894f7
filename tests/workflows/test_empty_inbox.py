"""Someone whose roles carry no task work (a portal customer) has an empty inbox, not a 403;
a credential of another tenant is still refused."""

from __future__ import annotations

import httpx

from tests.helpers import as_user, make_tenant, token_for


async def test_a_customers_inbox_is_empty(client: httpx.AsyncClient) -> None:
    await make_tenant(client, "acme")
    await make_tenant(client, "globex")
    body = {"username": "cara", "password": "cara's password", "roles": ["customer"]}
    assert (await client.post("/api/t/acme/users", json=body)).status_code == 201
    r = await client.post(
        "/api/auth/acme/login", json={"username": "cara", "password": "cara's password"}
    )
    cara = as_user(client, r.json()["access_token"])
    r = await client.get("/api/t/acme/tasks", params={"app": "claims"}, headers=cara)
    assert r.status_code == 200 and r.json() == []
    denied = await client.get(
        "/api/t/acme/audit", params={"action": "access.denied", "actor": "cara"}
    )
    assert denied.json()["items"] == []  # an empty inbox is not a denial
    other = as_user(client, await token_for(client, "globex", "owner"))
    assert (await client.get("/api/t/acme/tasks", headers=other)).status_code == 403
