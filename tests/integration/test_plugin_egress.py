"""Plugins' `http` capability goes through the integration layer: the grant's hosts, the SSRF
guard, and a `connector.egress` audit event (host and path, never the query)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from plinth.events import Event
from plinth.server import Platform
from plinth.settings import Settings
from tests.conftest import ADMIN_TOKEN
from tests.extensions.conftest import CACHE, components, install, publish  # noqa: F401
from tests.helpers import make_tenant
from tests.integration.remote import Remote

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
PLUGIN = "address-normaliser"


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    # The operator allows 127.0.0.1 only: 127.0.0.2 is still loopback to the SSRF guard.
    return Settings(
        data_dir=tmp_path / "data",
        database_url=database_url,
        admin_token=ADMIN_TOKEN,
        embedded_worker=False,
        plugin_cache_dir=CACHE / "compiled",
        max_body_bytes=64 << 20,
        egress_allow="127.0.0.1/32",
    )


async def test_plugin_http_is_guarded_and_audited(
    platform: Platform,
    client: httpx.AsyncClient,
    remote: Remote,
    components: dict[str, Path],  # noqa: F811
) -> None:
    events: list[Event] = []

    async def keep(event: Event) -> None:
        events.append(event)

    platform.events.subscribe("connector.egress", keep)
    await make_tenant(client, "acme")
    await publish(platform, components, PLUGIN)
    allowed = remote.url.removeprefix("http://")
    loopback = allowed.replace("127.0.0.1", "127.0.0.2")
    await install(platform, "acme", PLUGIN, http_hosts=[allowed, loopback])
    base = f"/api/t/acme/plugins/{PLUGIN}/actions"

    async def normalise(endpoint: str) -> httpx.Response:
        r = await client.post(f"{base}/configure", json={"endpoint": endpoint})
        assert r.status_code == 200, r.text
        return await client.post(f"{base}/normalise", json={"address": "1 rue de rivoli"})

    # Granted and allowed: the call reached the service (its 404 makes the plugin fall back
    # to local clean-up), audited with host and path, never the query.
    r = await normalise(remote.url)
    assert r.status_code == 200 and r.json()["source"] == "local", r.text
    assert remote.calls == {"GET /normalise": 1}
    [event] = events
    assert event.data["source"] == f"plugin:{PLUGIN}" and event.data["host"] == allowed
    assert event.data["path"] == "/normalise" and "rivoli" not in repr(event.data)
    assert event.data["ok"] and event.data["status"] == 404
    # Granted, but 127.0.0.2 is loopback outside the allowed network: refused, nothing sent.
    r = await normalise(f"http://{loopback}")
    assert r.status_code == 502
    assert "egress_refused" in r.json()["detail"] and "loopback" in r.json()["detail"]
    assert remote.calls == {"GET /normalise": 1}
    assert not events[1].data["ok"] and events[1].data["error"] == "egress_refused"
    assert events[1].data["host"] == loopback
