"""A tenant's first request after its file was closed is served and opens the file once (its
gateway starts opening it for a caller it knows); a tenant without data gets no file from a
lookup or that hint; a stranger's request (no token, a forged one, another tenant's, one
revoked elsewhere) opens no tenant's file."""

from __future__ import annotations

import asyncio
import threading

import httpx
import pytest
import sqlalchemy as sa

from plinth import sqlite_reads
from plinth.governance import tokens
from plinth.governance.principal import PLATFORM_ADMIN
from plinth.governance.tokens import api_tokens
from plinth.outbox import ANY_ROW
from plinth.server import Platform
from tests.helpers import as_user, make_app, make_tenant, publish, token_for

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

NOTES = {"entities": {"note": {"fields": {"text": {"type": "string"}}}}}


async def _with_notes(client: httpx.AsyncClient, *slugs: str) -> None:
    """Tenants with the notes app published and one note each."""
    for slug in slugs:
        await make_tenant(client, slug)
        await make_app(client, slug, "notes", NOTES)
        assert (await publish(client, slug, "notes")).status_code == 201
        r = await client.post(f"/api/t/{slug}/apps/notes/data/note", json={"text": slug})
        assert r.status_code == 201, r.text


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
        assert files.stats()["opened"] == opened + 1


async def test_a_known_callers_request_starts_opening_the_tenants_file(
    platform: Platform, client: httpx.AsyncClient
) -> None:
    await make_tenant(client, "acme")
    await make_app(client, "acme", "notes", NOTES)
    assert (await publish(client, "acme", "notes")).status_code == 201
    assert (await client.post("/api/t/acme/apps/notes/data/note", json={"text": "x"})).is_success
    platform.tokens._known.trust = 60.0  # the admin's token stays trusted however slow this is
    files = platform.records.storage.files
    await files.close()
    platform.quotas.gateway._by_slug.forget()
    opened = files.stats()["opened"]
    # The app's own document reads no record; the gateway, reading the tenant's settings for
    # a caller it knows (the admin), has its file opening meanwhile all the same.
    assert (await client.get("/api/t/acme/apps/notes")).status_code == 200
    assert files.stats()["opened"] == opened + 1


async def test_a_tenant_without_data_gets_no_file(
    platform: Platform, client: httpx.AsyncClient
) -> None:
    """Neither a lookup nor the gateway's hint for a caller it knows opens a file for a tenant
    that has none yet: nothing to read there, and no other tenant's open file pushed out."""
    await make_tenant(client, "quiet")
    assert (await client.get("/api/t/quiet/apps")).status_code == 200
    await make_app(client, "quiet", "notes", NOTES)
    platform.quotas.gateway._by_slug.forget()
    assert (await client.get("/api/t/quiet/apps/notes")).status_code == 200
    await asyncio.sleep(0.05)
    assert not list((platform.settings.data_dir / "tenants").glob("*.db"))
    assert platform.records.storage.files.stats()["open"] == 0


async def test_a_stranger_opens_no_tenants_file(
    platform: Platform, client: httpx.AsyncClient
) -> None:
    await _with_notes(client, "acme", "globex")
    acme_admin = await token_for(client, "acme", "admin")
    # Used once on its own tenant, so this process knows it: authenticated there (the app's
    # policies grant it no read: 403, not 401).
    used = await client.get("/api/t/acme/apps/notes/data/note", headers=as_user(client, acme_admin))
    assert used.status_code == 403, used.text
    files = platform.records.storage.files
    await files.close()
    platform.tenants._known.forget()
    opened = files.stats()["opened"]
    url = "/api/t/globex/apps/notes/data/note"
    anonymous = await asyncio.gather(
        *(client.get(url, headers={"Authorization": ""}) for _ in range(4))
    )
    assert {r.status_code for r in anonymous} == {401}
    forged = await client.get(url, headers={"Authorization": "Bearer not-a-token"})
    assert forged.status_code == 401, forged.text
    platform.quotas.gateway._by_slug.forget()  # its gate read again, with acme's token
    probing = await client.get(url, headers=as_user(client, acme_admin))
    assert probing.status_code == 403, probing.text
    await asyncio.sleep(0.05)
    assert files.stats()["opened"] == opened  # neither opened globex's file


async def test_a_token_revoked_elsewhere_opens_no_file_once_authentication_refuses_it(
    platform: Platform, client: httpx.AsyncClient
) -> None:
    """An admin token revoked by another process (the CLI, a node whose relay message was lost:
    no event reaches this one) is refused here within TRUST_SECONDS; past that, it must not
    make this node open any tenant's file either."""
    await _with_notes(client, "acme", "globex")
    ops = await platform.tokens.issue("ops", PLATFORM_ADMIN)
    used = await client.get("/api/t/acme/apps/notes/data/note", headers=as_user(client, ops.token))
    assert used.status_code == 200, used.text  # known to this process now
    async with platform.db.transaction() as conn:  # revoked elsewhere: no event here
        await conn.execute(
            api_tokens.update().where(api_tokens.c.id == ops.id).values(revoked_at=sa.func.now())
        )
    await asyncio.sleep(tokens.TRUST_SECONDS + 0.1)
    files = platform.records.storage.files
    await files.close()
    platform.quotas.gateway._by_slug.forget()
    opened = files.stats()["opened"]
    # A path no route serves is answered before authentication: the row is not read again.
    gone = await client.get("/api/t/globex/apps/notes/nothing", headers=as_user(client, ops.token))
    assert gone.status_code == 404, gone.text
    await asyncio.sleep(0.05)
    assert files.stats()["opened"] == opened
    url = "/api/t/globex/apps/notes/data/note"
    refused = await client.get(url, headers=as_user(client, ops.token))
    assert refused.status_code == 401, refused.text


async def test_a_closed_tenant_file_keeps_its_logs_for_its_next_open(
    platform: Platform, client: httpx.AsyncClient
) -> None:
    """SQLite deletes a file's `-wal` and `-shm` with its last connection; closing a tenant's
    file puts them back, empty, so its next open creates no file (the same two files are used
    again). What was written before the close is read after it, and written to again; a sweep
    reading a closed file (`peek`) leaves its logs too."""
    await _with_notes(client, "acme")
    r = await client.post("/api/t/acme/apps/notes/data/note", json={"text": "before"})
    url = f"/api/t/acme/apps/notes/data/note/{r.json()['id']}"
    files = platform.records.storage.files
    (path,) = [f.path for f in files]
    logs = [path.with_name(path.name + suffix) for suffix in ("-wal", "-shm")]
    await files.close()
    assert [log.stat().st_size for log in logs] == [0, 0]
    kept = [log.stat().st_ino for log in logs]

    for _ in range(2):
        platform.tenants._known.forget()
        platform.quotas.gateway._by_slug.forget()
        got = await client.get(url)
        assert got.status_code == 200 and got.json()["text"] == "before", got.text
        assert [log.stat().st_ino for log in logs] == kept  # opened, not created again
        r = await client.post("/api/t/acme/apps/notes/data/note", json={"text": "after"})
        assert r.status_code == 201, r.text
        await files.close()
        assert [log.stat().st_size for log in logs] == [0, 0]  # checkpointed into the file

    listed = await client.get("/api/t/acme/apps/notes/data/note?limit=10")
    assert sorted(n["text"] for n in listed.json()["items"]) == ["acme", "after", "after", "before"]
    await files.close()
    tenant = await platform.tenants.find("acme")
    assert tenant is not None
    assert await platform.records.storage.peek(tenant, ANY_ROW) is not None
    assert [log.stat().st_ino for log in logs] == kept


async def test_a_cold_tenant_opens_while_closes_are_stuck(
    platform: Platform, client: httpx.AsyncClient
) -> None:
    """Closing a file (an eviction's checkpoint, its logs deleted and put back) is disk work
    that a busy disk makes slow; a cold tenant's open must not wait behind it."""
    await _with_notes(client, "acme", "globex")
    listed = await client.get("/api/t/globex/apps/notes/data/note?limit=1")
    url = f"/api/t/globex/apps/notes/data/note/{listed.json()['items'][0]['id']}"
    files = platform.records.storage.files
    await files.close()
    platform.tenants._known.forget()
    platform.quotas.gateway._by_slug.forget()
    stuck = threading.Event()
    closing = [
        asyncio.get_running_loop().run_in_executor(sqlite_reads._CLOSING, stuck.wait, 30)
        for _ in range(sqlite_reads._CLOSING._max_workers)
    ]
    try:
        got = await asyncio.wait_for(client.get(url), timeout=5)
        assert got.status_code == 200 and got.json()["text"] == "globex", got.text
    finally:
        stuck.set()
        await asyncio.gather(*closing)
