"""IDE sign-in with the tenant's OpenID Connect provider (a real local one): the same person
as in the portal, a cookie session for the IDE, and an administrator's "disabled" holds
whatever the provider says."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from oidc_provider_mock import User, run_server_in_thread

from plinth.server import Platform

IDE = {"X-Plinth-IDE": "1"}


@pytest.fixture
def provider() -> Iterator[str]:
    users = [User(sub="bea", claims={"email": "bea@acme.test", "groups": ["acme-designers"]})]
    with run_server_in_thread(user_claims=users) as server:
        yield f"http://localhost:{server.server_port}"


async def _sign_in(anon: httpx.AsyncClient, url: str, next_path: str) -> httpx.Response:
    r = await anon.get(url, params={"next": next_path})
    assert r.status_code == 302, r.text
    to = urlsplit(r.headers["location"])
    callback = "http://plinth.test/api/auth/acme/session/oidc/callback"
    assert parse_qs(to.query)["redirect_uri"] == [callback]
    async with httpx.AsyncClient(timeout=10) as browser:  # the person at the provider
        consent = await browser.post(r.headers["location"], data={"sub": "bea"})
    back = urlsplit(consent.headers["location"])
    return await anon.get(f"{back.path}?{back.query}")


async def test_oidc_sign_in_to_the_ide_and_disabled_users_stay_out(
    anon: httpx.AsyncClient, client: httpx.AsyncClient, platform: Platform, provider: str
) -> None:
    await platform.tenants.create(
        "acme",
        settings={
            "oidc": {
                "issuer": provider,
                "client_id": "plinth",
                "client_secret": "s3cret",
                "label": "Acme SSO",
                "role_map": {"acme-designers": "designer"},
            }
        },
    )
    offered = (await anon.get("/api/auth/acme/session/providers")).json()["oidc"]
    assert offered == {"label": "Acme SSO", "url": "/api/auth/acme/session/oidc/login"}
    evil = await anon.get(offered["url"], params={"next": "https://evil.test/"})
    assert evil.status_code == 400 and evil.json()["path"] == "next"  # no open redirect

    done = await _sign_in(anon, offered["url"], "/#/apps")
    assert done.status_code == 303 and done.headers["location"] == "/#/apps"
    session = await anon.post("/api/auth/acme/session/refresh", headers=IDE)
    assert session.status_code == 200, session.text
    me = session.json()["user"]
    assert me["name"] == "bea@acme.test" and me["roles"] == ["designer"]
    assert me["can"]["design"] and me["can"]["publish"] and not me["can"]["administer"]

    # The same person the portal knows: one user, listed to administrators, who can disable it.
    users = (await client.get("/api/t/acme/users", params={"q": "bea"})).json()["items"]
    [bea] = users
    assert bea["oidc"] is True and bea["has_password"] is False
    r = await client.patch(f"/api/t/acme/users/{bea['id']}", json={"disabled": True})
    assert r.status_code == 200, r.text
    assert (await anon.post("/api/auth/acme/session/refresh", headers=IDE)).status_code == 401
    again = await _sign_in(anon, offered["url"], "/")
    assert again.status_code == 401, again.text


async def test_a_provider_account_neither_takes_over_a_namesake_nor_becomes_platform_admin(
    anon: httpx.AsyncClient, client: httpx.AsyncClient, platform: Platform, provider: str
) -> None:
    oidc = {
        "issuer": provider,
        "client_id": "plinth",
        "client_secret": "s3cret",
        "role_map": {"acme-designers": "platform_admin"},
        "default_role": "platform_admin",
    }
    await platform.tenants.create("acme", settings={"oidc": oidc})
    url = "/api/auth/acme/session/oidc/login"
    # a mapping to platform powers maps to no role at all
    r = await _sign_in(anon, url, "/")
    assert r.status_code == 403 and r.headers["content-type"] == "application/problem+json"
    # a password user with the provider account's e-mail as name stays hers
    r = await client.post(
        "/api/t/acme/users",
        json={"username": "bea@acme.test", "password": "bea's own pass", "roles": ["viewer"]},
    )
    assert r.status_code == 201, r.text
    await platform.tenants.update_settings(
        "acme", "oidc", oidc | {"role_map": {"acme-designers": "owner"}}
    )
    r = await _sign_in(anon, url, "/")
    assert r.status_code == 409 and r.json()["path"] == "username", r.text
    assert (await anon.post("/api/auth/acme/session/refresh", headers=IDE)).status_code == 401
    [bea] = (await client.get("/api/t/acme/users")).json()["items"]
    assert bea["roles"] == ["viewer"] and bea["oidc"] is False
