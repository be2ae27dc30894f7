"""A plugin published, or installed with its grant, commits with its ledger entry: both, or
neither."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from plinth.governance.audit import Unrecorded
from plinth.server import Platform
from tests.extensions.conftest import publish
from tests.helpers import make_tenant, refusing


async def test_a_publish_or_grant_the_ledger_cannot_record_is_not_made(
    platform: Platform, client: httpx.AsyncClient, components: dict[str, Path]
) -> None:
    await make_tenant(client, "acme")
    tid = (await platform.tenants.get("acme")).id
    async with refusing(platform, "plugin.published"):
        with pytest.raises(Unrecorded):
            await publish(platform, components, "fraud-scorer")
    assert await platform.plugins.versions("fraud-scorer") == []
    await publish(platform, components, "fraud-scorer")
    published = await platform.governance.audit.list(None, action="plugin.published")
    assert [(e["resource"], e["data"]["version"]) for e in published] == [
        ("plugin:fraud-scorer", "1.1.0")
    ]

    grant = {"name": "fraud-scorer", "grant": {"capabilities": ["log", "ui"]}}
    async with refusing(platform, "plugin.installed"):
        r = await client.post("/api/t/acme/plugins", json=grant)
    assert r.status_code == 503 and r.json()["code"] == "audit_unavailable", r.text
    assert (await client.get("/api/t/acme/plugins")).json() == []
    r = await client.post("/api/t/acme/plugins", json=grant)
    assert r.status_code == 201, r.text
    installed = await platform.governance.audit.list(tid, action="plugin.installed")
    assert [e["data"]["capabilities"] for e in installed] == [["log", "ui"]]
    assert (await platform.governance.audit.verify(tid)).ok
    assert (await platform.governance.audit.verify(None)).ok
