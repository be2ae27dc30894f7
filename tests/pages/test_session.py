"""Portal sign-in: password and OIDC into a cookie session (refresh token never in a script)."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from oidc_provider_mock import User, run_server_in_thread

from plinth.server import Platform, create_app
from tests.helpers import make_tenant

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
PORTAL = {"x-plinth-portal": "1"}


async def _user(client: httpx.AsyncClient, tenant: str = "acme") -> None:
    r = await client.post(
        f"/api/t/{tenant}/users",
        json={
            "username": "ana",
            "password": "a-long-password",
            "roles": ["analyst"],
            "attrs": {"country": "DE"},
        },
    )
    assert r.status_code == 201, r.text


async def test_password_sign_in_keeps_the_refresh_token_in_an_httponly_cookie(client, anon):
    await make_tenant(client, "acme")
    await _user(client)
    wrong = await anon.post(
        "/a/acme/-/session/login", headers=PORTAL, json={"username": "ana", "password": "nope-nope"}
    )
    assert wrong.status_code == 401 and "set-cookie" not in wrong.headers
    # Without the portal header (what a cross-site form would send) nothing happens.
    forged = await anon.post(
        "/a/acme/-/session/login", json={"username": "ana", "password": "a-long-password"}
    )
    assert forged.status_code == 403

    r = await anon.post(
        "/a/acme/-/session/login",
        headers=PORTAL,
        json={"username": "ana", "password": "a-long-password"},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert "refresh_token" not in body  # only the cookie has it
    assert body["user"]["name"] == "ana" and body["user"]["attrs"]["country"] == "DE"
    cookie = r.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie
    assert "path=/a/acme/-/session" in cookie
    first = anon.cookies["plinth_refresh"]

    # The access token works on the data API; the cookie renews it (and is rotated).
    me = await anon.get(
        "/a/acme/claims/-/me", headers={"Authorization": f"Bearer {body['access_token']}"}
    )
    assert me.status_code == 200 and me.json()["attrs"]["country"] == "DE"
    again = await anon.post("/a/acme/-/session/refresh", headers=PORTAL)
    assert again.status_code == 200 and again.json()["user"]["id"] == body["user"]["id"]
    assert anon.cookies["plinth_refresh"] != first
    assert again.headers["cache-control"] == "no-store"

    # The rotated-out token is dead; sign-out kills the current one and drops the cookie.
    stale = await anon.post(
        "/a/acme/-/session/refresh", headers=PORTAL, cookies={"plinth_refresh": first}
    )
    assert stale.status_code == 401
    anon.cookies.set("plinth_refresh", again.cookies["plinth_refresh"], path="/a/acme/-/session")
    current = anon.cookies.get("plinth_refresh", path="/a/acme/-/session")
    assert (await anon.post("/a/acme/-/session/logout", headers=PORTAL)).status_code == 204
    gone = await anon.post(
        "/a/acme/-/session/refresh", headers=PORTAL, cookies={"plinth_refresh": current}
    )
    assert gone.status_code == 401


async def test_a_session_cookie_does_not_work_in_another_tenant(client, anon):
    await make_tenant(client, "acme")
    await make_tenant(client, "other")
    await _user(client)
    r = await anon.post(
        "/a/acme/-/session/login",
        headers=PORTAL,
        json={"username": "ana", "password": "a-long-password"},
    )
    token = r.cookies["plinth_refresh"]
    anon.cookies.clear()
    r = await anon.post(
        "/a/other/-/session/refresh", headers=PORTAL, cookies={"plinth_refresh": token}
    )
    assert r.status_code == 401
    assert (await anon.get("/a/acme/-/session/providers")).json() == {
        "password": True,
        "oidc": None,
    }


@pytest.fixture
def provider() -> Iterator[str]:
    users = [
        User(
            sub="ana",
            claims={"email": "ana@acme.test", "groups": ["acme-analysts"], "country": "FR"},
        )
    ]
    with run_server_in_thread(user_claims=users) as server:
        yield f"http://localhost:{server.server_port}"


async def test_sign_in_with_the_tenants_oidc_provider_returns_to_the_page(
    anon: httpx.AsyncClient, platform: Platform, provider: str
) -> None:
    await platform.tenants.create(
        "acme",
        settings={
            "oidc": {
                "issuer": provider,
                "client_id": "plinth",
                "client_secret": "s3cret",
                "label": "Acme SSO",
                "role_map": {"acme-analysts": "analyst"},
                "attr_claims": {"country": "country"},
            }
        },
    )
    offered = (await anon.get("/a/acme/-/session/providers")).json()["oidc"]
    assert offered == {"label": "Acme SSO", "url": "/a/acme/-/oidc/login"}
    evil = await anon.get(offered["url"], params={"next": "https://evil.test/"})
    assert evil.status_code == 400  # no open redirect

    r = await anon.get(offered["url"], params={"next": "/a/acme/claims/claims?policy=p1"})
    assert r.status_code == 302
    to = urlsplit(r.headers["location"])
    assert parse_qs(to.query)["redirect_uri"] == ["http://plinth.test/a/acme/-/oidc/callback"]
    async with httpx.AsyncClient(timeout=10) as browser:  # the user at the provider
        consent = await browser.post(r.headers["location"], data={"sub": "ana"})
    back = urlsplit(consent.headers["location"])
    done = await anon.get(f"{back.path}?{back.query}")
    assert done.status_code == 303
    assert done.headers["location"] == "/a/acme/claims/claims?policy=p1"
    session = await anon.post("/a/acme/-/session/refresh", headers=PORTAL)
    assert session.status_code == 200, session.text
    user = session.json()["user"]
    assert user["name"] == "ana@acme.test" and user["roles"] == ["analyst"]
    assert user["attrs"]["country"] == "FR"


async def test_an_oidc_callback_replayed_in_another_browser_is_refused(
    anon: httpx.AsyncClient, client: httpx.AsyncClient, platform: Platform, provider: str
) -> None:
    """Login CSRF: an attacker signs in at the provider and sends the victim the callback URL;
    the victim's browser has no binding cookie for that sign-in, so nothing happens."""
    await platform.tenants.create(
        "acme",
        settings={
            "oidc": {
                "issuer": provider,
                "client_id": "plinth",
                "client_secret": "s3cret",
                "role_map": {"acme-analysts": "analyst"},
            }
        },
    )
    r = await anon.get("/a/acme/-/oidc/login", params={"next": "/a/acme/"})
    assert r.status_code == 302
    bind = next(c for c in r.headers.get_list("set-cookie") if c.startswith("plinth_oidc_bind="))
    assert "HttpOnly" in bind and "SameSite=lax" in bind and "Path=/a/acme/-/oidc" in bind
    value = bind.split(";", 1)[0].split("=", 1)[1]
    assert value not in r.headers["location"]  # only its hash travels in `state`
    async with httpx.AsyncClient(timeout=10) as at_provider:
        consent = await at_provider.post(r.headers["location"], data={"sub": "ana"})
    back = urlsplit(consent.headers["location"])
    callback = f"{back.path}?{back.query}"

    victim = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(platform=platform)),
        base_url="http://plinth.test",
    )
    async with victim:
        refused = await victim.get(callback)
        assert refused.status_code == 401, refused.text
        assert refused.json()["reason"] == "browser_mismatch"
        assert "plinth_refresh" not in refused.headers.get("set-cookie", "")
        # A sign-in started through the API (no browser binding) is refused by the portal too.
        api = await client.get("/api/auth/acme/oidc/login")
        state = parse_qs(urlsplit(api.headers["location"]).query)["state"][0]
        victim.cookies.set("plinth_oidc_bind", value, path="/a/acme/-/oidc")
        other = await victim.get("/a/acme/-/oidc/callback", params={"code": "x", "state": state})
        assert other.status_code == 401 and other.json()["reason"] == "browser_mismatch"
    tid = (await platform.tenants.get("acme")).id
    failed = await platform.governance.audit.list(tid, action="auth.oidc_login")
    assert [(e["outcome"], e["data"]["reason"]) for e in failed] == [
        ("failed", "browser_mismatch")
    ] * 2
    # The code was never used: the browser that started the sign-in still completes it.
    done = await anon.get(callback)
    assert done.status_code == 303 and done.headers["location"] == "/a/acme/"
    assert (await anon.post("/a/acme/-/session/refresh", headers=PORTAL)).status_code == 200
