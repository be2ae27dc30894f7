"""The http connector against a real service on 127.0.0.1: OpenAPI import and calls,
validation, retries, timeouts, the circuit breaker, size limits and auth (incl. OAuth2)."""

from __future__ import annotations

import logging

import httpx
import pytest

from plinth.events import Event
from plinth.server import Platform
from tests.helpers import make_app, make_tenant, token_for
from tests.integration.helpers import published
from tests.integration.remote import API_KEY, CLIENT_ID, CLIENT_SECRET, Remote


async def call(
    client: httpx.AsyncClient,
    connector: str,
    operation: str,
    data: dict | None = None,
    tenant: str = "acme",
    app: str = "crm",
) -> httpx.Response:
    return await client.post(
        f"/api/t/{tenant}/apps/{app}/connectors/{connector}/call",
        json={"operation": operation, "input": data or {}},
    )


def http_doc(remote: Remote, **extra: object) -> dict:
    ops = {
        "flaky": {"method": "GET", "path": "/flaky"},
        "flaky_post": {"method": "POST", "path": "/flaky"},
        "down": {"method": "GET", "path": "/down"},
        "slow": {"method": "GET", "path": "/slow"},
        "big": {"method": "GET", "path": "/big"},
        "keyed": {"method": "GET", "path": "/keyed"},
        "secure": {"method": "GET", "path": "/secure"},
        "basic": {"method": "GET", "path": "/basic"},
        "bearer": {"method": "GET", "path": "/bearer"},
    }
    return {
        "kind": "http",
        "base_url": remote.url,
        "operations": ops,
        "retries": 3,
        "backoff_seconds": 0.01,
        **extra,
    }


async def test_openapi_import_makes_callable_validated_operations(
    client: httpx.AsyncClient, remote: Remote
) -> None:
    await make_tenant(client, "acme")
    await make_app(client, "acme", "crm")
    r = await client.post(
        "/api/t/acme/apps/crm/connectors/pets/openapi", json={"url": f"{remote.url}/openapi.json"}
    )
    assert r.status_code == 200, r.text
    assert r.json()["operations"] == ["badPet", "createPet", "getPet", "listPets"]
    assert (await client.post("/api/t/acme/apps/crm/publish", json={})).status_code in (200, 201)

    r = await call(client, "pets", "getPet", {"petId": 1})
    assert r.status_code == 200, r.text
    assert r.json() == {"status": 200, "body": {"id": 1, "name": "Rex", "tag": "dog"}}
    r = await call(client, "pets", "createPet", {"body": {"name": "Tom", "tag": "cat"}})
    assert r.status_code == 200 and r.json()["body"]["name"] == "Tom"
    assert remote.pets[2]["name"] == "Tom"

    # Inputs are validated before anything goes out, with the path of the fault.
    r = await call(client, "pets", "createPet", {"body": {"name": ""}})
    assert r.status_code == 422
    assert r.json()["errors"][0]["path"] == "input.body.name"
    r = await call(client, "pets", "getPet", {})
    assert r.json()["errors"][0]["path"] == "input.petId"
    r = await call(client, "pets", "listPets", {"limit": 1000})
    assert r.status_code == 422 and remote.calls.get("GET /pets") is None
    # Outputs too: a body that breaks the declared schema is a 502 naming the fault.
    r = await call(client, "pets", "badPet")
    assert r.status_code == 502
    assert {e["path"] for e in r.json()["errors"]} == {"output.id", "output.name"}
    r = await call(client, "pets", "nope")
    assert r.status_code == 404 and r.json()["path"] == "operation"


async def test_retries_idempotent_calls_with_backoff_only(
    client: httpx.AsyncClient, remote: Remote
) -> None:
    await published(client, "acme", "crm", {"connectors": {"svc": http_doc(remote)}})
    r = await call(client, "svc", "flaky")
    assert r.status_code == 200 and r.json()["body"]["attempt"] == 3
    # POST is not idempotent: one attempt, the 503 comes back as a connector failure.
    r = await call(client, "svc", "flaky_post")
    assert r.status_code == 502 and r.json()["upstream_status"] == 503
    assert remote.calls["POST /flaky"] == 1


async def test_timeout_is_a_504(client: httpx.AsyncClient, remote: Remote) -> None:
    doc = http_doc(remote, timeout_seconds=0.3, retries=0)
    await published(client, "acme", "crm", {"connectors": {"svc": doc}})
    r = await call(client, "svc", "slow")
    assert r.status_code == 504 and r.json()["code"] == "connector_timeout"


async def test_circuit_breaker_opens_then_half_opens(
    client: httpx.AsyncClient, remote: Remote
) -> None:
    doc = http_doc(remote, retries=0, breaker={"failures": 2, "reset_seconds": 0.3})
    await published(client, "acme", "crm", {"connectors": {"svc": doc}})
    for _ in range(2):
        assert (await call(client, "svc", "down")).status_code == 502
    r = await call(client, "svc", "down")
    assert r.status_code == 503 and r.json()["code"] == "circuit_open"
    assert "retry-after" in r.headers
    assert remote.calls["GET /down"] == 2  # the open circuit sent nothing
    # Other operations of the same connector fail fast too, until the reset time passes.
    assert (await call(client, "svc", "flaky")).status_code == 503
    import asyncio

    await asyncio.sleep(0.35)
    remote.flaky_failures = 0
    assert (await call(client, "svc", "flaky")).status_code == 200  # trial call closes it
    assert (await call(client, "svc", "flaky")).status_code == 200


async def test_response_size_limit(client: httpx.AsyncClient, remote: Remote) -> None:
    doc = http_doc(remote, max_response_bytes=1000)
    await published(client, "acme", "crm", {"connectors": {"svc": doc}})
    r = await call(client, "svc", "big")
    assert r.status_code == 502 and "1000 bytes" in r.json()["detail"]


async def test_oauth2_client_credentials(client: httpx.AsyncClient, remote: Remote) -> None:
    doc = http_doc(
        remote,
        auth={
            "type": "oauth2_client_credentials",
            "token_url": f"{remote.url}/token",
            "client_id": CLIENT_ID,
            "client_secret": {"secret": "oauth"},
        },
    )
    await published(
        client, "acme", "crm", {"connectors": {"svc": doc}}, secrets={"oauth": CLIENT_SECRET}
    )
    for _ in range(3):
        r = await call(client, "svc", "secure")
        assert r.status_code == 200 and r.json()["body"] == {"secure": True}
    assert len(remote.tokens_issued) == 1  # cached until it expires
    remote.tokens_issued.clear()  # the service revokes it: one refresh, then success
    r = await call(client, "svc", "secure")
    assert r.status_code == 200 and len(remote.tokens_issued) == 1


async def test_secrets_never_reach_responses_logs_or_events(
    client: httpx.AsyncClient, remote: Remote, platform: Platform, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    events: list[Event] = []

    async def keep(event: Event) -> None:
        events.append(event)

    platform.events.subscribe("*", keep)
    header = http_doc(
        remote, auth={"type": "api_key", "name": "X-Api-Key", "value": {"secret": "key"}}
    )
    query = http_doc(
        remote,
        auth={"type": "api_key", "name": "api_key", "in": "query", "value": {"secret": "key"}},
        timeout_seconds=0.2,
        retries=0,
    )
    await published(
        client, "acme", "crm", {"connectors": {"h": header, "q": query}}, secrets={"key": API_KEY}
    )
    bodies = []
    r = await call(client, "h", "keyed")
    assert r.json()["body"] == {"ok": True}
    bodies.append(r.text)
    r = await call(client, "q", "keyed")
    assert r.json()["body"] == {"ok": True}
    bodies.append(r.text)
    r = await call(client, "q", "slow")  # an error path with the key in the URL
    assert r.status_code == 504
    bodies.append(r.text)
    for path in (
        "/api/t/acme/secrets",
        "/api/t/acme/apps/crm/draft",
        "/api/t/acme/apps/crm/connectors",
    ):
        bodies.append((await client.get(path)).text)
    r = await client.put("/api/t/acme/secrets/key", json={"value": API_KEY})
    bodies.append(r.text)
    r = await client.put("/api/t/acme/secrets/bad name", json={"value": API_KEY})
    assert r.status_code == 400
    bodies.append(r.text)
    assert all(API_KEY not in b for b in bodies)
    assert API_KEY not in caplog.text
    assert caplog.text  # logs were captured (httpx logs each request)
    assert all(API_KEY not in repr(e.data) for e in events)
    called = [e for e in events if e.topic == "connector.called"]
    assert [e.data["ok"] for e in called] == [True, True, False]
    assert called[0].data["principal"] and called[0].data["operation"] == "keyed"
    assert any(e.topic == "secret.used" and e.data["name"] == "key" for e in events)


async def test_connector_call_goes_through_policy(
    client: httpx.AsyncClient, remote: Remote
) -> None:
    await published(client, "acme", "crm", {"connectors": {"svc": http_doc(remote)}})
    viewer = await token_for(client, "acme", "viewer")
    r = await client.post(
        "/api/t/acme/apps/crm/connectors/svc/call",
        json={"operation": "flaky"},
        headers={"Authorization": f"Bearer {viewer}"},
    )
    assert r.status_code == 403 and "connector.call" in r.json()["detail"]
    assert remote.calls == {}


async def test_bad_connector_documents_are_refused_with_paths(client: httpx.AsyncClient) -> None:
    await make_tenant(client, "acme")
    await make_app(client, "acme", "crm")
    bad = {
        "connectors": {
            "plain": {
                "kind": "http",
                "base_url": "http://x.test",
                "auth": {"type": "bearer", "token": "plaintext"},
            },
            "half": {"kind": "http", "base_url": "http://x.test", "auth": {"type": "basic"}},
        }
    }
    r = await client.put("/api/t/acme/apps/crm/draft", json=bad)
    assert r.status_code == 422
    paths = {e["path"] for e in r.json()["errors"]}
    assert "connectors.plain.auth.token" in paths
    r = await client.put(
        "/api/t/acme/apps/crm/draft", json={"connectors": {"half": bad["connectors"]["half"]}}
    )
    assert {e["path"] for e in r.json()["errors"]} == {
        "connectors.half.auth.username",
        "connectors.half.auth.password",
    }


async def test_basic_and_bearer_auth_from_the_vault(
    client: httpx.AsyncClient, remote: Remote
) -> None:
    basic = http_doc(
        remote, auth={"type": "basic", "username": "bob", "password": {"secret": "key"}}
    )
    bearer = http_doc(remote, auth={"type": "bearer", "token": {"secret": "key"}})
    await published(
        client, "acme", "crm", {"connectors": {"b": basic, "t": bearer}}, secrets={"key": API_KEY}
    )
    r = await call(client, "b", "basic")
    assert r.status_code == 200 and r.json()["body"] == {"ok": True}
    r = await call(client, "t", "bearer")
    assert r.status_code == 200 and r.json()["body"] == {"ok": True}
    r = await call(client, "t", "basic")  # wrong scheme: the 401 is the remote's, relayed
    assert r.status_code == 502 and r.json()["upstream_status"] == 401
