"""The secrets vault: encrypted at rest, write-only, rotatable, audited."""

from __future__ import annotations

import base64
import os
import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from plinth.errors import Unavailable
from plinth.events import Event
from plinth.integration import store
from plinth.integration.vault import load_master_key
from plinth.server import Platform
from plinth.settings import Settings
from tests.helpers import make_tenant, token_for

VALUE = "s3cr3t-value-that-must-not-leak"


async def test_secrets_are_write_only_and_encrypted_at_rest(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    await make_tenant(client, "acme")
    r = await client.put("/api/t/acme/secrets/stripe", json={"value": VALUE})
    assert r.status_code == 200 and VALUE not in r.text
    assert r.json()["name"] == "stripe" and "value" not in r.json()
    r = await client.get("/api/t/acme/secrets")
    assert [s["name"] for s in r.json()["items"]] == ["stripe"] and VALUE not in r.text
    async with platform.db.read() as conn:
        rows = (await conn.execute(sa.select(store.secrets))).all()
        keys = (await conn.execute(sa.select(store.data_keys))).all()
    assert VALUE.encode() not in rows[0].ciphertext
    assert len(keys) == 1 and len(keys[0].wrapped) == 12 + 32 + 16
    tenant = await platform.tenants.get("acme")
    assert await platform.vault.reveal(tenant.id, "stripe", "test") == VALUE
    # A tenant-bound designer cannot manage the owner's secrets; another tenant sees none.
    designer = await token_for(client, "acme", "designer")
    r = await client.get("/api/t/acme/secrets", headers={"Authorization": f"Bearer {designer}"})
    assert r.status_code == 403
    await make_tenant(client, "other")
    other = await platform.tenants.get("other")
    with pytest.raises(Exception, match="No secret"):
        await platform.vault.reveal(other.id, "stripe", "test")
    r = await client.delete("/api/t/acme/secrets/stripe")
    assert r.status_code == 204
    assert (await client.delete("/api/t/acme/secrets/stripe")).status_code == 404


async def test_rotation_of_data_keys_and_master_key(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    await make_tenant(client, "acme")
    await client.put("/api/t/acme/secrets/a", json={"value": "alpha-value"})
    await client.put("/api/t/acme/secrets/b", json={"value": "beta-value"})
    events: list[Event] = []

    async def keep(event: Event) -> None:
        events.append(event)

    platform.events.subscribe("vault.*", keep)
    r = await client.post("/api/t/acme/vault/rotate")
    assert r.status_code == 200 and r.json()["key_version"] == 2
    tenant = await platform.tenants.get("acme")
    assert await platform.vault.reveal(tenant.id, "a", "test") == "alpha-value"
    async with platform.db.read() as conn:
        versions = (await conn.execute(sa.select(store.data_keys.c.version))).scalars().all()
    assert versions == [2]  # the old key is gone

    new_master = os.urandom(32)
    assert await platform.vault.rotate_master(new_master) == 1
    assert await platform.vault.reveal(tenant.id, "b", "test") == "beta-value"
    # A node still holding the old master key cannot open the data keys any more.
    platform.vault._master = base64.b64decode(
        (platform.settings.data_dir / "master.key").read_text()
    )
    with pytest.raises(Exception, match="master key"):
        await platform.vault.reveal(tenant.id, "b", "test")
    assert [e.topic for e in events] == ["vault.key_rotated", "vault.master_rotated"]


async def test_embedded_master_key_is_generated_private(
    settings: Settings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Embedded, the first start generates the master key (mode 0600), says so once, and never
    logs the key itself."""
    caplog.set_level("INFO")
    node = Platform(settings.model_copy(update={"data_dir": tmp_path / "fresh"}))
    await node.start()
    try:
        tenant = await node.tenants.create("acme")
        await node.vault.put(tenant.id, "x", "some-value")
    finally:
        await node.stop()
    path = tmp_path / "fresh" / "master.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert "generated a master key" in caplog.text
    assert path.read_text() not in caplog.text


def test_processes_starting_together_on_a_fresh_data_dir_share_one_master_key(
    settings: Settings, tmp_path: Path
) -> None:
    """`plinth worker`s started at once on a new data_dir each find no key and generate one:
    one wins, the others read it (none fails, none keeps a key of its own)."""
    fresh = settings.model_copy(update={"data_dir": tmp_path / "fresh"})
    with ThreadPoolExecutor(8) as pool:
        keys = set(pool.map(lambda _: load_master_key(fresh), range(32)))
    assert keys == {base64.b64decode((tmp_path / "fresh" / "master.key").read_text())}
    assert os.listdir(tmp_path / "fresh") == ["master.key"]


def test_a_master_key_is_generated_on_a_filesystem_without_hard_links(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A data directory on a mount that refuses hard links (EPERM) still gets its key."""

    def refused(*_: object) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "link", refused)
    fresh = settings.model_copy(update={"data_dir": tmp_path / "nolinks"})
    key = load_master_key(fresh)
    assert base64.b64decode((tmp_path / "nolinks" / "master.key").read_text()) == key
    assert load_master_key(fresh) == key
    assert os.listdir(tmp_path / "nolinks") == ["master.key"]


async def test_a_scaled_out_node_without_the_shared_master_key_refuses_to_start(
    settings: Settings,
) -> None:
    """With Redis (scaled out) every node must be given PLINTH_MASTER_KEY: the audit ledger's
    keys derive from it. Without it the node fails at start, saying so, instead of failing each
    audit append later."""
    node = Platform(settings.model_copy(update={"redis_url": "redis://127.0.0.1:6379/0"}))
    with pytest.raises(Unavailable, match="PLINTH_MASTER_KEY"):
        await node.start()
    await node.stop()
