"""Server behaviour: health, problem+json, body limits, the admin token."""

from __future__ import annotations

import gc
import logging

import httpx
from fastapi.dependencies import utils as fastapi_dependencies

from plinth.server import Platform, create_app
from plinth.server.app import YOUNG_GC_THRESHOLD, prepare_routes
from tests.conftest import ADMIN_TOKEN
from tests.helpers import make_tenant


async def test_health_and_readiness(anon, platform):
    assert (await anon.get("/healthz")).json() == {"status": "ok"}
    r = await anon.get("/readyz")
    assert r.status_code == 200 and r.json()["database"] == platform.db.dialect


async def test_oversized_body_is_refused_with_413(client):
    await make_tenant(client, "acme")
    await client.post("/api/t/acme/apps", json={"slug": "claims"})
    big = {"entities": {"x": {"fields": {"a": {"type": "text", "description": "y" * 2_000_000}}}}}
    r = await client.put("/api/t/acme/apps/claims/draft", json=big)
    assert r.status_code == 413
    assert r.json()["code"] == "payload_too_large"
    # the server keeps serving
    assert (await client.get("/api/t/acme/apps/claims/draft")).status_code == 200


async def test_malformed_json_is_a_422_problem(client):
    await make_tenant(client, "acme")
    await client.post("/api/t/acme/apps", json={"slug": "claims"})
    r = await client.put(
        "/api/t/acme/apps/claims/draft",
        content=b"{not json",
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 422
    assert r.headers["content-type"] == "application/problem+json"
    assert "Traceback" not in r.text


async def test_generated_admin_token_is_printed_once_and_works(settings):
    settings = settings.model_copy(update={"admin_token": None})
    platform = Platform(settings)
    await platform.start()
    try:
        # Starting (as every CLI command does) makes no token that nobody would see; `plinth
        # serve` and `plinth demo` make it, and print it.
        assert platform.admin_token is None
        issued = await platform.tokens.ensure_admin(None)
        assert issued is not None
        transport = httpx.ASGITransport(app=create_app(platform=platform))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            r = await c.get("/api/tenants", headers={"Authorization": f"Bearer {issued.token}"})
            assert r.status_code == 200
    finally:
        await platform.stop()
    again = Platform(settings)
    await again.start()
    try:
        assert await again.tokens.ensure_admin(None) is None  # never shown twice
    finally:
        await again.stop()


async def test_a_started_server_has_every_route_prepared(platform, monkeypatch):
    """FastAPI (0.165) prepares a router's routes on the first request that reaches it; a
    server prepares them when it starts, so its first request to a late router (a tenant's
    secrets, after its creation) analyses no route's dependencies."""
    app = create_app(platform=platform)
    prepare_routes(app)
    analysed = []
    original = fastapi_dependencies.get_typed_signature

    def counted(call):
        analysed.append(call)
        return original(call)

    monkeypatch.setattr(fastapi_dependencies, "get_typed_signature", counted)
    transport = httpx.ASGITransport(app=app)
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    async with httpx.AsyncClient(transport=transport, base_url="http://t", headers=headers) as c:
        await make_tenant(c, "acme")
        r = await c.put("/api/t/acme/secrets/hook", json={"value": "s3cret"})
    assert r.status_code == 200, r.text
    assert analysed == []


async def test_what_start_up_loaded_is_kept_out_of_the_collectors_sight(settings):
    # A full collection walking every module, route and schema stalled every request in flight
    # (~0.45 s on a loaded machine, bench/noisy_neighbour.py); a stopped server lets them go.
    app = create_app(settings)
    before = gc.get_threshold()
    async with app.router.lifespan_context(app):
        assert gc.get_freeze_count() > 0
        # Requests in flight are not walked by a young collection every few requests.
        assert gc.get_threshold() == (YOUNG_GC_THRESHOLD, *before[1:])
    assert gc.get_freeze_count() == 0
    assert gc.get_threshold() == before


def test_the_access_log_leaves_out_query_strings(settings, caplog):
    """An OpenID Connect callback carries its authorization code in the query string: the
    access line uvicorn writes for it keeps the path and drops the query."""
    create_app(settings)
    with caplog.at_level(logging.INFO, logger="uvicorn.access"):
        # As uvicorn's HTTP protocols log a response.
        logging.getLogger("uvicorn.access").info(
            '%s - "%s %s HTTP/%s" %d',
            "127.0.0.1:50000",
            "GET",
            "/api/auth/acme/oidc/callback?code=SECRET-CODE&state=abc",
            "1.1",
            200,
        )
    lines = [r.getMessage() for r in caplog.records if r.name == "uvicorn.access"]
    assert lines == ['127.0.0.1:50000 - "GET /api/auth/acme/oidc/callback HTTP/1.1" 200']
