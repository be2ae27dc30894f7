"""Before-write hooks run outside the write transaction (a plugin hook may write records)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from plinth.server import Platform
from tests.helpers import make_app, make_tenant, publish

APP = {
    "entities": {
        "item": {"fields": {"name": {"type": "string"}}},
        "log": {"fields": {"msg": {"type": "string"}}},
    }
}
BASE = "/api/t/acme/apps/shop/data"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_an_update_hook_may_write_records_and_a_change_meanwhile_is_refused(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    await make_tenant(client, "acme")
    await make_app(client, "acme", "shop")
    assert (await publish(client, "acme", "shop", APP)).status_code == 201
    rec = (await client.post(f"{BASE}/item", json={"name": "a"})).json()
    svc = platform.records
    mode = {"write": "log"}

    async def hook(
        tenant: Any, app: str, entity: str, record: dict[str, Any], principal: Any
    ) -> dict[str, Any]:
        if entity == "item" and mode["write"] == "log":  # like records_create from a plugin
            await asyncio.wait_for(
                svc.create(tenant, app, "log", {"msg": record["name"]}, principal), 5
            )
        elif entity == "item" and mode["write"] == "same":  # another writer gets in first
            mode["write"] = ""
            await svc.update(tenant, app, "item", rec["id"], {"name": "theirs"}, principal)
        return record

    svc.before_write.append(hook)
    try:
        r = await client.patch(f"{BASE}/item/{rec['id']}", json={"name": "b"})
        assert r.status_code == 200, r.text
        assert r.json()["name"] == "b" and r.json()["version"] == 2
        logs = (await client.get(f"{BASE}/log")).json()["items"]
        assert [item["msg"] for item in logs] == ["b"]

        mode["write"] = "same"
        r = await client.patch(f"{BASE}/item/{rec['id']}", json={"name": "mine"})
        assert r.status_code == 412, r.text  # never silently over the change made meanwhile
        current = (await client.get(f"{BASE}/item/{rec['id']}")).json()
        assert current["name"] == "theirs" and current["version"] == 3
    finally:
        svc.before_write.remove(hook)


async def test_input_is_validated_before_any_hook_sees_it(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    await make_tenant(client, "acme")
    await make_app(client, "acme", "shop")
    app = {"entities": {"item": {"fields": {"name": {"type": "string", "maxLength": 5}}}}}
    assert (await publish(client, "acme", "shop", app)).status_code == 201
    rec = (await client.post(f"{BASE}/item", json={"name": "a"})).json()
    seen: list[dict[str, Any]] = []

    async def hook(
        tenant: Any, app: str, entity: str, record: dict[str, Any], principal: Any
    ) -> dict[str, Any]:
        seen.append(record)
        return {**record, "name": record["name"] + "!!!!!"}  # amends past the limit

    platform.records.before_write.append(hook)
    try:
        # Invalid input is the caller's 422: the hook never sees it.
        r = await client.post(f"{BASE}/item", json={"name": 123})
        assert r.status_code == 422 and r.json()["path"] == "name", r.text
        r = await client.patch(f"{BASE}/item/{rec['id']}", json={"name": ["no"]})
        assert r.status_code == 422 and r.json()["path"] == "name", r.text
        assert seen == []
        # What a hook returns is validated again.
        r = await client.post(f"{BASE}/item", json={"name": "ok"})
        assert r.status_code == 422 and r.json()["path"] == "name", r.text
        assert seen == [{"name": "ok"}]
    finally:
        platform.records.before_write.remove(hook)
