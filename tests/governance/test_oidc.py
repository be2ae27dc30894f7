"""OpenID Connect login against a real local provider (oidc-provider-mock, authlib-based)."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest
from oidc_provider_mock import User, run_server_in_thread

from plinth.server import Platform


@pytest.fixture
def provider() -> Iterator[str]:
    users = [
        User(
            sub="ana",
            claims={"email": "ana@acme.test", "groups": ["acme-analysts"], "country": "FR"},
        ),
        User(sub="eve", claims={"email": "eve@acme.test", "groups": ["strangers"]}),
    ]
    with run_server_in_thread(user_claims=users) as server:
        yield f"http://localhost:{server.server_port}"


async def _login_as(client: httpx.AsyncClient, sub: str) -> httpx.Response:
    r = await client.get("/api/auth/acme/oidc/login", follow_redirects=False)
    assert r.status_code == 302, r.text
    async with httpx.AsyncClient(timeout=10) as browser:  # the user's browser at the provider
        consent = await browser.post(r.headers["location"], data={"sub": sub})
    assert consent.status_code in (302, 303), consent.text
    back = urlsplit(consent.headers["location"])
    return await client.get(f"{back.path}?{back.query}")


async def test_oidc_login_maps_claims_to_roles_and_attributes(
    client: httpx.AsyncClient, platform: Platform, provider: str
) -> None:
    await platform.tenants.create(
        "acme",
        settings={
            "oidc": {
                "issuer": provider,
                "client_id": "plinth",
                "client_secret": "s3cret",
                "role_map": {"acme-analysts": "analyst"},
                "attr_claims": {"country": "country"},
            }
        },
    )
    r = await _login_as(client, "ana")
    assert r.status_code == 200, r.text
    token = r.json()["access_token"]
    principal = platform.governance.identity.authenticate(token)
    assert principal.roles == {"analyst"} and principal.attrs["country"] == "FR"
    r = await client.get("/api/t/acme/apps", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200
    # someone whose groups map to no role is refused, and the attempt is audited
    r = await _login_as(client, "eve")
    assert r.status_code == 403
    tid = (await platform.tenants.get("acme")).id
    outcomes = [
        e["outcome"] for e in await platform.governance.audit.list(tid, action="auth.oidc_login")
    ]
    assert outcomes == ["ok", "no_role"]


async def test_forged_state_is_refused(
    client: httpx.AsyncClient, platform: Platform, provider: str
) -> None:
    await platform.tenants.create(
        "acme",
        settings={
            "oidc": {
                "issuer": provider,
                "client_id": "plinth",
                "client_secret": "s3cret",
                "default_role": "viewer",
            }
        },
    )
    r = await client.get("/api/auth/acme/oidc/callback", params={"code": "x", "state": "y"})
    assert r.status_code == 401
