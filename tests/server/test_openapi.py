"""Both OpenAPI documents are valid and say what the API really answers; OPTIONS lists methods."""

from __future__ import annotations

import httpx
from openapi_spec_validator import validate

from tests.helpers import CLAIMS, make_app, make_tenant, publish

PROBLEM = "application/problem+json"


async def test_the_platform_document_is_valid_and_declares_problems(
    client: httpx.AsyncClient,
) -> None:
    doc = (await client.get("/openapi.json")).json()
    validate(doc)
    me = doc["paths"]["/a/{tenant}/{app}/-/me"]["get"]
    assert {p["name"] for p in me["parameters"]} >= {"tenant", "app"}
    create = doc["paths"]["/api/t/{tenant}/apps/{app}/data/{entity}"]["post"]["responses"]
    for status in ("400", "401", "403", "404", "409", "412", "413", "422", "429", "502", "504"):
        assert list(create[status]["content"]) == [PROBLEM], status
    assert "HTTPValidationError" not in doc["components"]["schemas"]


async def test_an_app_document_is_valid_and_declares_problems(client: httpx.AsyncClient) -> None:
    await make_tenant(client, "acme")
    await make_app(client, "acme", "claims")
    assert (await publish(client, "acme", "claims", CLAIMS)).status_code == 201
    doc = (await client.get("/api/t/acme/apps/claims/openapi.json")).json()
    validate(doc)
    item = doc["paths"]["/api/t/acme/apps/claims/data/claim/{id}"]
    for method, extra in (("get", ()), ("patch", ("409", "412", "413", "502"))):
        responses = item[method]["responses"]
        for status in ("400", "401", "403", "404", "422", "429", "503", "504", *extra):
            assert list(responses[status]["content"]) == [PROBLEM], (method, status)


async def test_options_and_405_list_every_method_of_the_path(client: httpx.AsyncClient) -> None:
    await make_tenant(client, "acme")
    r = await client.options("/api/t/acme/apps")
    assert r.status_code == 204
    assert set(r.headers["allow"].split(", ")) == {"GET", "HEAD", "POST", "OPTIONS"}
    r = await client.options("/api/t/acme/apps/claims/data/claim/x1")
    assert set(r.headers["allow"].split(", ")) == {
        "GET",
        "HEAD",
        "PATCH",
        "PUT",
        "DELETE",
        "OPTIONS",
    }
    r = await client.request("TRACE", "/api/t/acme/apps")
    assert r.status_code == 405
    assert r.headers["content-type"].startswith(PROBLEM)
    assert set(r.headers["allow"].split(", ")) == {"GET", "HEAD", "POST", "OPTIONS"}
    assert (await client.options("/api/nothing-here")).status_code == 404
