"""A tenant admin sets the OIDC issuer, and the provider's metadata picks the token and JWKS
endpoints: every one of those calls goes through the SSRF guard, so none can reach loopback,
link-local (cloud metadata) or private addresses unless an operator allows the network."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from oidc_provider_mock import User, run_server_in_thread

from plinth.governance.oidc import OIDCConfig, OIDCLogin
from plinth.integration.egress import EgressPolicy
from plinth.integration.models import EgressRefused
from plinth.server import Platform
from plinth.settings import Settings
from tests.conftest import ADMIN_TOKEN

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    # No PLINTH_EGRESS_ALLOW: what a production server does by default.
    return Settings(
        data_dir=tmp_path / "data",
        database_url=database_url,
        admin_token=ADMIN_TOKEN,
        embedded_worker=False,
        egress_allow="",
    )


@pytest.fixture
def provider() -> Iterator[int]:
    with run_server_in_thread(user_claims=[User(sub="ana", claims={"groups": ["a"]})]) as s:
        yield s.server_port


async def test_an_issuer_on_an_internal_address_is_refused(
    anon: httpx.AsyncClient, platform: Platform, provider: int
) -> None:
    for slug, issuer, reason in (
        ("loop", f"http://127.0.0.1:{provider}", "loopback"),
        ("meta", "http://169.254.169.254/", "link-local"),
        ("named", f"http://localhost:{provider}", "loopback"),
    ):
        await platform.tenants.create(
            slug,
            settings={"oidc": {"issuer": issuer, "client_id": "plinth", "client_secret": "s3cret"}},
        )
        # Unauthenticated: anyone can start a login, so this is where SSRF would happen.
        for url in (f"/api/auth/{slug}/oidc/login", f"/a/{slug}/-/oidc/login?next=/a/{slug}/"):
            r = await anon.get(url)
            assert r.status_code == 403, r.text
            body = r.json()
            assert body["code"] == "egress_refused" and body["reason"] == reason
            assert body["path"] == "settings.oidc.issuer"
            assert "PLINTH_EGRESS_ALLOW" in body["detail"]


async def test_token_and_jwks_endpoints_are_guarded_too(provider: int, database_url: str) -> None:
    config = OIDCConfig(
        issuer=f"http://localhost:{provider}",
        client_id="plinth",
        client_secret="s3cret",
        default_role="viewer",
    )
    login = OIDCLogin("k" * 32, EgressPolicy("127.0.0.0/8"))
    start = await login.authorization_url("t1", config, "http://plinth.test/cb")
    async with httpx.AsyncClient(timeout=10) as browser:
        consent = await browser.post(start, data={"sub": "ana"})
    query = {k: v[0] for k, v in parse_qs(urlsplit(consent.headers["location"]).query).items()}
    # Discovery is cached; now the operator's allowance is gone: the code exchange is refused
    # by the guard (a typed error, not "the provider refused the code").
    login.egress = EgressPolicy("")
    with pytest.raises(EgressRefused, match="loopback"):
        await login.complete("t1", config, query["code"], query["state"])
