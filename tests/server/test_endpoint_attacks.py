"""Attacks on the newest endpoints: /metrics, /api/palette and .../compiled/{target} answer
only the right identity, never another tenant's artifact, and never a 5xx to crafted input."""

from __future__ import annotations

import io
import json
import zipfile

import httpx

from tests.helpers import CLAIMS, as_user, make_app, make_tenant, publish, token_for


async def test_metrics_and_palette_need_the_right_identity(
    client: httpx.AsyncClient, anon: httpx.AsyncClient
) -> None:
    await make_tenant(client, "acme")
    owner = as_user(client, await token_for(client, "acme", "owner"))
    assert (await anon.get("/metrics")).status_code == 401
    assert (await anon.get("/api/palette")).status_code == 401
    r = await client.get("/metrics", headers=owner)
    assert r.status_code == 403 and r.headers["content-type"] == "application/problem+json"
    r = await client.get("/metrics")
    assert r.status_code == 200 and "acme" not in r.text
    assert (await client.get("/api/palette", headers=owner)).status_code == 200


async def test_compiled_artifacts_stay_in_their_tenant(client: httpx.AsyncClient) -> None:
    for slug in ("acme", "globex"):
        await make_tenant(client, slug)
        await make_app(client, slug, "claims")
        assert (await publish(client, slug, "claims", CLAIMS)).status_code == 201
    globex = as_user(client, await token_for(client, "globex", "owner"))
    r = await client.get("/api/t/acme/apps/claims/compiled/react", headers=globex)
    assert r.status_code == 403, r.text
    # the same definition and app slug in two tenants: each gets its own build
    for slug in ("acme", "globex"):
        owner = as_user(client, await token_for(client, slug, "owner"))
        r = await client.get(f"/api/t/{slug}/apps/claims/compiled/react", headers=owner)
        assert r.status_code == 200, r.text
        with zipfile.ZipFile(io.BytesIO(r.content)) as archive:
            package = json.loads(archive.read("claims/package.json"))
        assert package["name"] == f"plinth-{slug}-claims"


async def test_crafted_compiled_requests_are_problems_not_errors(
    client: httpx.AsyncClient,
) -> None:
    await make_tenant(client, "acme")
    await make_app(client, "acme", "claims")
    await make_app(client, "acme", "draft")
    assert (await publish(client, "acme", "claims", CLAIMS)).status_code == 201
    base = "/api/t/acme/apps"
    for path in (
        f"{base}/claims/compiled/..%2F..%2Fetc",
        f"{base}/claims/compiled/%00",
        f"{base}/claims/compiled/{'x' * 5000}",
        f"{base}/claims/compiled/r%C3%A9act",
        f"{base}/claims/compiled/__class__",
        f"{base}/claims/compiled/all",
        f"{base}/nope/compiled/react",
        f"{base}/draft/compiled/react",
        f"{base}/{'y' * 3000}/compiled/openapi",
        "/api/t/nope/apps/claims/compiled/react",
    ):
        r = await client.get(path)
        assert 400 <= r.status_code < 500, (path, r.status_code, r.text[:200])
        assert r.headers["content-type"] == "application/problem+json", path
    for tag in ('"', "x" * 10_000, "*", '""'):
        r = await client.get(f"{base}/claims/compiled/openapi", headers={"If-None-Match": tag})
        assert r.status_code == 200, tag
