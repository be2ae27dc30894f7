"""Registry and installation: publish with hashes and signatures, grants, upgrades, pins."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import zipfile
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from plinth.extensions.package import pack
from plinth.server import Platform
from tests.extensions.conftest import PLUGINS, manifest_text, package, publish
from tests.helpers import as_user, make_tenant, token_for


async def test_publish_over_http_records_hash_size_and_manifest(
    client: httpx.AsyncClient, components: dict[str, Path]
) -> None:
    data = await asyncio.to_thread(package, components, "fraud-scorer")
    # A real package is megabytes: far over the 1 MB every other route accepts.
    assert len(data) > 4 << 20
    r = await client.post("/api/plugins", content=data, headers={"Content-Type": "application/zip"})
    assert r.status_code == 201, r.text
    body = r.json()
    wasm = components["fraud-scorer"].read_bytes()
    assert body["sha256"] == hashlib.sha256(wasm).hexdigest()
    assert body["size"] == len(wasm) and body["signed"] is False
    assert body["points"] == [
        {"kind": "action", "name": "score"},
        {"kind": "before-write", "name": "claims.claim"},
        {"kind": "component", "name": "fraud-badge"},
    ]
    again = await client.post("/api/plugins", content=data)
    assert again.status_code == 409  # versions are immutable
    listed = (await client.get("/api/plugins")).json()
    assert [v["version"] for v in listed] == ["1.1.0"]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_only_the_upload_route_takes_large_bodies(platform: Platform) -> None:
    from plinth.server import create_app
    from tests.conftest import ADMIN_TOKEN

    platform.settings.plugin_max_package_bytes = 3 << 20
    app = create_app(platform=platform)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://plinth.test",
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
    ) as c:
        big = b"x" * (2 << 20)
        r = await c.post("/api/plugins", content=big)
        assert r.status_code == 422 and r.json()["path"] == "package"  # read, then refused
        r = await c.post("/api/tenants", content=big, headers={"Content-Type": "application/json"})
        assert r.status_code == 413
        assert r.headers["content-type"].startswith("application/problem+json")
        r = await c.post("/api/plugins", content=b"x" * (4 << 20))
        assert r.status_code == 413 and str(3 << 20) in r.json()["detail"]
        # Only publishers may upload at all: refused before the body is read.
        r = await c.post("/api/plugins", content=big, headers={"Authorization": "Bearer nope"})
        assert r.status_code == 401


async def test_bad_packages_are_refused_with_paths(client: httpx.AsyncClient) -> None:
    r = await client.post("/api/plugins", content=b"not a zip")
    assert r.status_code == 422 and r.json()["path"] == "package"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("plinth-plugin.toml", 'name = "x"')
        z.writestr("plugin.wasm", b"\0asm")
    r = await client.post("/api/plugins", content=buf.getvalue())
    assert r.status_code == 422
    assert any(e["path"].startswith("plinth-plugin.toml.") for e in r.json()["errors"])


async def test_signature_is_verified_and_key_is_fixed_by_first_version(
    platform: Platform, client: httpx.AsyncClient, components: dict[str, Path]
) -> None:
    key = Ed25519PrivateKey.generate()
    wasm = components["fraud-scorer"].read_bytes()
    ui = {"ui/elements.js": (PLUGINS["fraud-scorer"] / "ui/elements.js").read_bytes()}
    signed = await asyncio.to_thread(pack, manifest_text("fraud-scorer"), wasm, key, ui)
    r = await client.post("/api/plugins", content=signed)
    assert r.status_code == 201 and r.json()["signed"] is True
    # A forged signature (another key claiming this version) is refused.
    text2 = manifest_text("fraud-scorer", **{'version = "1.1.0"': 'version = "1.0.1"'})
    forged = await asyncio.to_thread(pack, text2, wasm, Ed25519PrivateKey.generate(), ui)
    r = await client.post("/api/plugins", content=forged)
    assert r.status_code == 422 and r.json()["errors"][0]["path"] == "signature.json"
    # Tampering with the signature file is caught too.
    buf = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(signed)) as src, zipfile.ZipFile(buf, "w") as dst:
        for item in src.namelist():
            data = src.read(item)
            if item == "signature.json":
                sig = json.loads(data)
                sig["signature"] = "00" * 64
                data = json.dumps(sig).encode()
            dst.writestr(item, data)
    r = await client.post("/api/plugins", content=buf.getvalue())
    assert r.status_code == 422
    await make_tenant(client, "acme")
    r = await client.post(
        "/api/t/acme/plugins",
        json={"name": "fraud-scorer", "grant": {"capabilities": ["log", "ui"]}},
    )
    assert r.status_code == 201, r.text
    # The stored component is re-hashed on install: a swapped blob is refused.
    other = await asyncio.to_thread(
        package, components, "hostile", **{'name = "hostile"': 'name = "hostile-two"'}
    )
    await platform.plugins.publish(other, _admin())
    v = await platform.plugins.version("hostile-two")
    blob = platform.plugins.blob_dir / f"{v.sha256}.wasm"
    blob.write_bytes(blob.read_bytes()[:-10] + b"0123456789")
    r = await client.post(
        "/api/t/acme/plugins",
        json={"name": "hostile-two", "grant": {"capabilities": ["log", "records.write"]}},
    )
    assert r.status_code == 412 and r.json()["path"] == "sha256"


def _admin():  # type: ignore[no-untyped-def]
    from tests.extensions.conftest import ADMIN

    return ADMIN


async def test_install_needs_a_grant_and_upgrade_asking_more_needs_a_new_one(
    platform: Platform, client: httpx.AsyncClient, components: dict[str, Path]
) -> None:
    await make_tenant(client, "acme")
    await publish(platform, components, "fraud-scorer")
    r = await client.post("/api/t/acme/plugins", json={"name": "fraud-scorer"})
    assert r.status_code == 412
    assert r.json()["errors"][0]["path"] == "grant.capabilities.log"
    r = await client.post(
        "/api/t/acme/plugins",
        json={"name": "fraud-scorer", "grant": {"capabilities": ["log", "ui"]}},
    )
    assert r.status_code == 201 and r.json()["version"] == "1.1.0"

    # 1.1.0 also wants kv: the old grant does not cover it.
    await publish(
        platform,
        components,
        "fraud-scorer",
        **{
            'version = "1.1.0"': 'version = "1.2.0"',
            'capabilities = ["log", "ui"]': 'capabilities = ["log", "ui", "kv"]',
        },
    )
    r = await client.post("/api/t/acme/plugins/fraud-scorer/upgrade", json={"version": "1.2.0"})
    assert r.status_code == 412 and r.json()["errors"][0]["path"] == "grant.capabilities.kv"
    assert (await client.get("/api/t/acme/plugins")).json()[0]["version"] == "1.1.0"
    r = await client.post(
        "/api/t/acme/plugins/fraud-scorer/upgrade",
        json={"version": "1.2.0", "grant": {"capabilities": ["log", "ui", "kv"]}},
    )
    assert r.status_code == 200 and r.json()["grant"]["capabilities"] == ["log", "ui", "kv"]

    # Pinned: upgrades are refused until unpinned.
    r = await client.put("/api/t/acme/plugins/fraud-scorer/pin", json={"pinned": True})
    assert r.json()["pinned"] is True
    r = await client.post("/api/t/acme/plugins/fraud-scorer/upgrade", json={"version": "1.1.0"})
    assert r.status_code == 409 and r.json()["path"] == "pinned"

    # Limits: overridable within the platform maxima only.
    r = await client.put(
        "/api/t/acme/plugins/fraud-scorer/limits",
        json={"point": "action", "limits": {"fuel": 10**12}},
    )
    assert r.status_code == 422 and r.json()["errors"][0]["path"] == "limits.fuel"

    r = await client.delete("/api/t/acme/plugins/fraud-scorer")
    assert r.status_code == 204
    assert (await client.get("/api/t/acme/plugins")).json() == []


async def test_policy_decides_who_installs(
    platform: Platform, client: httpx.AsyncClient, components: dict[str, Path]
) -> None:
    await make_tenant(client, "acme")
    await publish(platform, components, "fraud-scorer")
    body = {"name": "fraud-scorer", "grant": {"capabilities": ["log", "ui"]}}
    analyst = await token_for(client, "acme", "analyst")
    r = await client.post("/api/t/acme/plugins", json=body, headers=as_user(client, analyst))
    assert r.status_code == 403
    owner = await token_for(client, "acme", "owner")
    r = await client.post("/api/t/acme/plugins", json=body, headers=as_user(client, owner))
    assert r.status_code == 201
    # A tenant owner may not publish to the platform registry.
    r = await client.post("/api/plugins", content=b"x", headers=as_user(client, owner))
    assert r.status_code == 403
