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


@pytest.fixture(params=["127.0.0.0/8", ""], ids=["allowed", "guarded"])
def settings(request: pytest.FixtureRequest, database_url: str, tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", database_url=database_url,
                    admin_token=ADMIN_TOKEN, embedded_worker=False,
                    plugin_cache_dir=CACHE / "compiled", max_body_bytes=64 << 20,
                    egress_allow=request.param)


async def test_plugin_http_is_guarded_and_audited(
        platform: Platform, client: httpx.AsyncClient, remote: Remote,
        components: dict[str, Path]) -> None:  # noqa: F811
    events: list[Event] = []

    async def keep(event: Event) -> None:
        events.append(event)

    platform.events.subscribe("connector.egress", keep)
    await make_tenant(client, "acme")
    await publish(platform, components, PLUGIN)
    host = remote.url.removeprefix("http://")
    await install(platform, "acme", PLUGIN, http_hosts=[host])
    base = f"/api/t/acme/plugins/{PLUGIN}/actions"
    assert (await client.post(f"{base}/configure", json={"endpoint": remote.url})
            ).status_code == 200
    r = await client.post(f"{base}/normalise", json={"address": "1 rue de rivoli"})
    [event] = events
    assert event.data["source"] == f"plugin:{PLUGIN}" and event.data["host"] == host
    assert event.data["path"] == "/normalise" and "rivoli" not in repr(event.data)
    if platform.settings.egress_allow:
        # Granted and allowed: the call reached the service (its 404 makes the plugin
        # fall back to local clean-up).
        assert r.status_code == 200, r.text
        assert r.json()["source"] == "local" and remote.calls == {"GET /normalise": 1}
        assert event.data["ok"] and event.data["status"] == 404
    else:
        # Granted, but 127.0.0.1 is loopback: the SSRF guard refuses it, nothing goes out.
        assert r.status_code == 502
        assert "egress_refused" in r.json()["detail"] and "loopback" in r.json()["detail"]
        assert remote.calls == {}
        assert not event.data["ok"] and event.data["error"] == "egress_refused"
