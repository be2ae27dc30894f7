"""Helpers for integration tests: publish an app with connectors, set secrets."""

from __future__ import annotations

from typing import Any

import httpx

from tests.helpers import make_app, make_tenant


async def published(
    client: httpx.AsyncClient,
    tenant: str,
    app: str,
    definition: dict[str, Any],
    secrets: dict[str, str] | None = None,
    new_tenant: bool = True,
) -> None:
    if new_tenant:
        await make_tenant(client, tenant)
    for name, value in (secrets or {}).items():
        r = await client.put(f"/api/t/{tenant}/secrets/{name}", json={"value": value})
        assert r.status_code == 200, r.text
    await make_app(client, tenant, app, definition)
    r = await client.post(f"/api/t/{tenant}/apps/{app}/publish", json={})
    assert r.status_code in (200, 201), r.text
