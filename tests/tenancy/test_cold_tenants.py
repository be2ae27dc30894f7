"""A tenant's first request after its file was closed: the file opens while the request
reads the platform database, once, and a tenant without data gets no file from a lookup."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from plinth.server import Platform
from tests.helpers import make_app, make_tenant, publish

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

NOTES = {"entities": {"note": {"fields": {"text": {"type": "string"}}}}}


async def test_a_cold_tenant_is_served_and_its_file_opened_once(
    platform: Platform, client: httpx.AsyncClient
) -> None:
    await make_tenant(client, "acme")
    await make_app(client, "acme", "notes", NOTES)
    assert (await publish(client, "acme", "notes")).status_code == 201
    r = await client.post("/api/t/acme/apps/notes/data/note", json={"text": "hello"})
    assert r.status_code == 201, r.text
    url = f"/api/t/acme/apps/notes/data/note/{r.json()['id']}"
    files = platform.records.storage.files
    for _ in range(3):  # cold each time: the file closed, the tenant forgotten
        await files.close()
        platform.tenants._known.forget()
        platform.quotas.gateway._by_slug.forget()
        opened = files.stats()["opened"]
        got = await asyncio.gather(*(client.get(url) for _ in range(4)))
        assert [g.status_code for g in got] == [200] * 4
        assert {g.json()["text"] for g in got} == {"hello"}
        assert files.stats()["opened"] == opened + 1  # the early open and the reads share it


async def test_a_tenant_without_data_gets_no_file_from_a_lookup(
    platform: Platform, client: httpx.AsyncClient
) -> None:
    await make_tenant(client, "quiet")
    assert (await client.get("/api/t/quiet/apps")).status_code == 200
    await asyncio.sleep(0.05)
    assert not list((platform.settings.data_dir / "tenants").glob("*.db"))
    assert platform.records.storage.files.stats()["open"] == 0
