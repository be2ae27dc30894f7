"""The SSRF guard on every outbound call: loopback, link-local (cloud metadata), private and
their IPv6 forms are refused after DNS resolution, unless an operator allows a network; the
connection goes to the address that was checked (pinned), with the Host header unchanged."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import httpx
import pytest

from plinth.integration.egress import EgressPolicy, GuardedTransport, blocked_reason
from plinth.integration.models import EgressRefused
from plinth.server import Platform
from plinth.settings import Settings
from tests.conftest import ADMIN_TOKEN
from tests.integration.helpers import published
from tests.integration.remote import CLIENT_ID, Remote

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    # No PLINTH_EGRESS_ALLOW: what a production server does by default.
    return Settings(data_dir=tmp_path / "data", database_url=database_url,
                    admin_token=ADMIN_TOKEN, embedded_worker=False, egress_allow="")


@pytest.mark.parametrize(("address", "reason"), [
    ("127.0.0.1", "loopback"), ("169.254.169.254", "link-local"), ("10.0.0.7", "private"),
    ("172.20.1.1", "private"), ("192.168.0.1", "private"), ("100.64.1.1", "private"),
    ("0.0.0.0", "unspecified"), ("224.0.0.251", "multicast"), ("::1", "loopback"),
    ("fe80::1", "link-local"), ("fd00:ec2::254", "private"), ("::ffff:127.0.0.1", "loopback"),
    ("::ffff:169.254.169.254", "link-local"), ("64:ff9b::a00:1", "private"),
    ("2002:c0a8:1::", "private"), ("93.184.215.14", None), ("2606:4700::1111", None)])
def test_which_addresses_are_refused(address: str, reason: str | None,
                                     database_url: str) -> None:
    assert blocked_reason(ipaddress.ip_address(address)) == reason


async def test_the_transport_checks_after_resolving_and_pins_the_address(
        remote: Remote, database_url: str) -> None:
    port = remote.url.rsplit(":", 1)[1]
    async with httpx.AsyncClient(transport=GuardedTransport(EgressPolicy(""))) as client:
        # A name that resolves to loopback is refused before any connection is made.
        with pytest.raises(EgressRefused, match=r"localhost \(.*\): it is a loopback"):
            await client.post(f"http://localhost:{port}/hook", content=b"{}")
        with pytest.raises(EgressRefused, match="link-local"):
            await client.get("http://169.254.169.254/latest/meta-data/")
        with pytest.raises(EgressRefused, match="loopback"):
            await client.get(f"http://[::ffff:127.0.0.1]:{port}/pets")
    assert remote.hooks == [] and remote.calls == {}
    allowed = GuardedTransport(EgressPolicy("127.0.0.0/8, ::1/128"))
    async with httpx.AsyncClient(transport=allowed) as client:
        r = await client.post(f"http://localhost:{port}/hook", content=b"{}")
    assert r.status_code == 200
    # Connected to the checked address; the service still saw the name it was called by.
    assert r.request.url.host in ("127.0.0.1", "::1")
    assert remote.hooks[0]["headers"]["Host"] == f"localhost:{port}"


async def test_connectors_webhooks_openapi_and_oauth_are_guarded(
        client: httpx.AsyncClient, remote: Remote, platform: Platform) -> None:
    ops = {"pets": {"method": "GET", "path": "/pets"}}
    connectors = {
        "local": {"kind": "http", "base_url": remote.url, "operations": ops},
        "metadata": {"kind": "http", "base_url": "http://169.254.169.254", "operations": ops},
        "oauth": {"kind": "http", "base_url": "https://93.184.215.14", "operations": ops,
                  "auth": {"type": "oauth2_client_credentials",
                           "token_url": f"{remote.url}/token", "client_id": CLIENT_ID,
                           "client_secret": {"secret": "s"}}},
        "hook": {"kind": "webhook_out", "url": f"{remote.url}/hook",
                 "secret": {"secret": "s"}, "backoff_seconds": 0},
    }
    await published(client, "acme", "crm", {"connectors": connectors}, secrets={"s": "x" * 20})
    base = "/api/t/acme/apps/crm/connectors"
    for name, reason in (("local", "loopback"), ("metadata", "link-local"),
                         ("oauth", "loopback")):
        r = await client.post(f"{base}/{name}/call", json={"operation": "pets"})
        assert r.status_code == 403, r.text
        assert r.json()["code"] == "egress_refused" and r.json()["reason"] == reason
    r = await client.post(f"{base}/pets/openapi", json={"url": f"{remote.url}/openapi.json"})
    assert r.status_code == 403 and r.json()["code"] == "egress_refused"
    # A delivery to a refused address is dead at once: retrying cannot make it allowed.
    r = await client.post(f"{base}/hook/call", json={"operation": "send",
                                                     "input": {"topic": "record.created"}})
    await platform.connectors.webhooks.drain()
    [logged] = (await client.get(f"{base}/hook/deliveries")).json()["items"]
    assert logged["status"] == "dead" and logged["attempts"] == 1
    assert "loopback" in logged["last_error"]
    assert remote.calls == {} and remote.hooks == []  # nothing ever reached the service
