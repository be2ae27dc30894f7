"""Package attacks are refused at publish with a 4xx and the reason; nothing is stored."""

from __future__ import annotations

import io
import os
import struct
import zipfile
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from plinth.extensions.package import COMPONENT, MANIFEST, pack, rotation_message
from plinth.server import Platform
from tests.extensions.conftest import manifest_text

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


async def _refused(
    client: httpx.AsyncClient, data: bytes, status: int, path: str
) -> dict[str, object]:
    r = await client.post("/api/plugins", content=data)
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    assert body["path"] == path, body
    assert (await client.get("/api/plugins")).json() == []  # nothing was stored
    return dict(body)


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for name, body in members.items():
            z.writestr(name, body)
    return buf.getvalue()


async def test_a_manifest_zip_bomb_is_refused_before_it_is_inflated(
    client: httpx.AsyncClient,
) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as z:
        with z.open(MANIFEST, "w", force_zip64=True) as member:
            chunk = b"\0" * (1 << 20)
            for _ in range(300):  # 300 MB of zeros, ~300 KB compressed
                member.write(chunk)
        z.writestr(COMPONENT, b"\0asm" + b"\0" * 100)
    data = buf.getvalue()
    assert len(data) < 400_000
    before = _rss()
    body = await _refused(client, data, 413, MANIFEST)
    assert "expands to more than" in str(body["detail"])
    assert _rss() - before < 50 << 20  # the server did not grow by the bomb


async def test_a_component_expanding_a_thousand_fold_is_refused(
    client: httpx.AsyncClient,
) -> None:
    data = _zip({MANIFEST: manifest_text("hostile").encode(), COMPONENT: b"\0" * (8 << 20)})
    body = await _refused(client, data, 413, COMPONENT)
    assert "fold" in str(body["detail"])


async def test_a_lying_or_broken_archive_is_a_422_with_the_reason(
    client: httpx.AsyncClient, components: dict[str, Path]
) -> None:
    good = pack(manifest_text("hostile"), components["hostile"].read_bytes())
    # 1. The compressed bytes of plugin.wasm are damaged (its CRC no longer matches).
    z = zipfile.ZipFile(io.BytesIO(good))
    info = z.getinfo(COMPONENT)
    start = info.header_offset + 30 + len(info.filename) + len(info.extra)
    middle = start + info.compress_size // 2
    flipped = bytes(b ^ 0xFF for b in good[middle : middle + 64])
    damaged = good[:middle] + flipped + good[middle + 64 :]
    body = await _refused(client, damaged, 422, "package")
    assert "not a readable zip" in str(body["detail"])
    # 2. The central directory points plugin.wasm at the wrong place.
    entry = good.find(b"PK\x01\x02", 0)
    while entry >= 0:
        name_len = struct.unpack("<H", good[entry + 28 : entry + 30])[0]
        if good[entry + 46 : entry + 46 + name_len] == COMPONENT.encode():
            break
        entry = good.find(b"PK\x01\x02", entry + 4)
    lying = good[: entry + 42] + struct.pack("<I", 7) + good[entry + 46 :]
    await _refused(client, lying, 422, "package")
    # 3. Not a zip at all; a zip with thousands of members.
    await _refused(client, b"\0asm not a zip", 422, "package")
    many = _zip({f"f{i}": b"" for i in range(500)})
    await _refused(client, many, 422, "package")


async def test_a_component_that_does_not_compile_is_refused_at_publish(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    junk = b"\0asm" + os.urandom(4096)
    body = await _refused(client, pack(manifest_text("hostile"), junk), 422, COMPONENT)
    assert body["code"] == "plugin_invalid"
    assert "not a valid WebAssembly component" in str(body["detail"])
    # A core module is no component either.
    core = b"\0asm\x01\0\0\0"
    body = await _refused(client, pack(manifest_text("hostile"), core), 422, COMPONENT)
    assert body["code"] == "plugin_invalid"


def _key() -> tuple[Ed25519PrivateKey, str]:
    key = Ed25519PrivateKey.generate()
    public = key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    return key, public.hex()


async def test_the_signing_key_is_pinned_and_changes_only_by_an_audited_rotation(
    client: httpx.AsyncClient, components: dict[str, Path]
) -> None:
    wasm = components["hostile"].read_bytes()
    k1, k1_public = _key()
    k2, k2_public = _key()

    def version(v: str, key: Ed25519PrivateKey | None) -> bytes:
        text = manifest_text("hostile", **{'version = "1.0.0"': f'version = "{v}"'})
        return pack(text, wasm, key=key)

    async def publish(data: bytes) -> httpx.Response:
        return await client.post("/api/plugins", content=data)

    assert (await publish(version("1.0.0", None))).status_code == 201  # unsigned: no pin yet
    assert (await client.get("/api/plugins/hostile/key")).status_code == 404
    assert (await publish(version("2.0.0", k1))).status_code == 201  # pins K1
    assert (await client.get("/api/plugins/hostile/key")).json()["public_key"] == k1_public
    for data in (version("3.0.0", k2), version("3.0.0", None)):
        r = await publish(data)
        assert r.status_code == 422 and r.json()["path"] == "signature.json", r.text
        assert r.json()["errors"][0]["code"] == "signature_key"
    # A rotation must be proven by the new key...
    bad = {"public_key": k2_public, "signature": "00" * 64, "reason": "lost laptop"}
    r = await client.put("/api/plugins/hostile/key", json=bad)
    assert r.status_code == 422, r.text
    proof = k2.sign(rotation_message("hostile", k2_public)).hex()
    rotation = {"public_key": k2_public, "signature": proof, "reason": "lost laptop"}
    r = await client.put("/api/plugins/hostile/key", json=rotation)
    assert r.status_code == 200 and r.json()["public_key"] == k2_public, r.text
    # ... is audited ...
    platform = client._transport.app.state.platform  # type: ignore[attr-defined]
    events = await platform.governance.audit.list(None, action="plugin.key_rotated")
    assert [e["data"]["new_key"] for e in events] == [k2_public], events
    assert events[0]["data"]["old_key"] == k1_public
    # ... and from then on K2 signs, K1 no longer does.
    assert (await publish(version("3.0.0", k2))).status_code == 201
    r = await publish(version("4.0.0", k1))
    assert r.status_code == 422 and r.json()["path"] == "signature.json"
    versions = [v["version"] for v in (await client.get("/api/plugins")).json()]
    assert sorted(versions) == ["1.0.0", "2.0.0", "3.0.0"]
