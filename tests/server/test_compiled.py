"""Every compile target is served from one route and one cache: compiled once per version."""

from __future__ import annotations

import io
import json
import zipfile

import httpx

from tests.helpers import CLAIMS, make_app, make_tenant, publish


async def test_each_target_is_served_once_compiled(client: httpx.AsyncClient, platform) -> None:
    await make_tenant(client, "acme")
    await make_app(client, "acme", "claims")
    assert (await publish(client, "acme", "claims", CLAIMS)).status_code == 201
    before = platform.artifacts.compiled

    doc = await client.get("/api/t/acme/apps/claims/openapi.json")
    same = await client.get("/api/t/acme/apps/claims/compiled/openapi")
    assert doc.status_code == same.status_code == 200
    assert doc.json()["openapi"].startswith("3.1") and same.json() == doc.json()
    assert platform.artifacts.compiled == before + 1  # one compilation, served twice

    react = await client.get("/api/t/acme/apps/claims/compiled/react")
    assert react.status_code == 200 and react.headers["content-type"] == "application/zip"
    assert 'filename="claims-react.zip"' in react.headers["content-disposition"]
    with zipfile.ZipFile(io.BytesIO(react.content)) as archive:
        package = json.loads(archive.read("claims/package.json"))
    assert package["name"] == "plinth-acme-claims"
    again = await client.get(
        "/api/t/acme/apps/claims/compiled/react", headers={"If-None-Match": react.headers["etag"]}
    )
    assert again.status_code == 304
    assert platform.artifacts.compiled == before + 2


async def test_an_unknown_target_is_a_problem(client: httpx.AsyncClient) -> None:
    await make_tenant(client, "acme")
    await make_app(client, "acme", "claims")
    assert (await publish(client, "acme", "claims", CLAIMS)).status_code == 201
    r = await client.get("/api/t/acme/apps/claims/compiled/pdf")
    assert r.status_code == 404 and r.headers["content-type"].startswith("application/problem")
    assert r.json()["path"] == "target"
