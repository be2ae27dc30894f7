"""Isolation: every tenant endpoint refuses other tenants' credentials and under-privileged
callers, and each refusal that reaches a policy decision is in the ledger."""

from __future__ import annotations

import re

import httpx

from plinth.server import Platform
from tests.helpers import as_user, make_app, make_tenant, token_for

BODIES = {
    ("POST", "/api/t/{tenant}/apps/{app}/compliance/fix"): {"apply": True},
    ("POST", "/api/t/{tenant}/compliance/subjects/export"): {"subject": "ana@example.com"},
    ("POST", "/api/t/{tenant}/compliance/subjects/erase"): {"subject": "ana@example.com"},
    ("POST", "/api/t/{tenant}/compliance/retention/run"): {},
    ("POST", "/api/t/{tenant}/compliance/keys/rotate"): {},
    ("POST", "/api/t/{tenant}/apps/{app}/data/{entity}"): {"note": "y"},
    ("PATCH", "/api/t/{tenant}/apps/{app}/data/{entity}/{record_id}"): {"note": "z"},
    ("PUT", "/api/t/{tenant}/apps/{app}/data/{entity}/{record_id}"): {"note": "z"},
    ("POST", "/api/t/{tenant}/apps"): {"slug": "other"},
    ("PUT", "/api/t/{tenant}/apps/{app}/draft"): {"entities": {}},
    ("PATCH", "/api/t/{tenant}/apps/{app}/draft"): [],
    ("POST", "/api/t/{tenant}/apps/{app}/publish"): {},
    ("POST", "/api/t/{tenant}/apps/{app}/rollback"): {"version": 1},
    ("POST", "/api/t/{tenant}/tokens"): {"name": "x", "role": "owner"},
    ("POST", "/api/t/{tenant}/users"): {
        "username": "x",
        "password": "longenough",
        "roles": ["owner"],
    },
}
PARAMS = {"app": "claims", "number": "1", "token_id": "nope", "entity": "claim"}
QUERY = {"/api/t/{tenant}/apps/{app}/diff": {"from": "1", "to": "draft"}}
# A viewer may read what is in its tenant, except these; it may never write.
PRIVILEGED_READS = {"/api/t/{tenant}/audit"}
# Authenticated by an HMAC signature instead of a bearer token (see tests/integration).
PUBLIC = {"/api/t/{tenant}/apps/{app}/hooks/{name}"}


def tenant_routes(client: httpx.AsyncClient) -> list[tuple[str, str]]:
    """Every (method, path) under /api/t/{tenant}, from the live app's OpenAPI document."""
    app = client._transport.app  # type: ignore[attr-defined]
    return [
        (m.upper(), path)
        for path, ops in app.openapi()["paths"].items()
        if path.startswith("/api/t/{tenant}") and path not in PUBLIC
        for m in ops
    ]


def url(path: str, tenant: str) -> str:
    # Parameters of routes this test does not know get a placeholder (such a route may then
    # answer 404/422 to the viewer; a foreign tenant must still get 403).
    return re.sub(
        r"\{(\w+)\}", lambda m: tenant if m[1] == "tenant" else PARAMS.get(m[1], "x"), path
    )


def knows_all_params(path: str) -> bool:
    return all(name in PARAMS or name == "tenant" for name in re.findall(r"\{(\w+)\}", path))


async def call(
    client: httpx.AsyncClient, method: str, path: str, tenant: str, token: str
) -> httpx.Response:
    return await client.request(
        method,
        url(path, tenant),
        json=BODIES.get((method, path)),
        params=QUERY.get(path),
        headers=as_user(client, token),
    )


async def test_every_tenant_endpoint_refuses_other_tenants_and_the_under_privileged(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    for slug in ("acme", "globex"):
        await make_tenant(client, slug)
        await make_app(
            client,
            slug,
            "claims",
            {"entities": {"claim": {"fields": {"note": {"type": "string"}}}}},
        )
        assert (await client.post(f"/api/t/{slug}/apps/claims/publish", json={})).is_success
    record = await client.post("/api/t/acme/apps/claims/data/claim", json={"note": "x"})
    assert record.status_code == 201, record.text
    PARAMS["record_id"] = record.json()["id"]
    globex_owner = await token_for(client, "globex", "owner")
    acme_viewer = await token_for(client, "acme", "viewer")
    routes = tenant_routes(client)
    assert len(routes) >= 15, routes
    wrong: list[tuple[str, str, str, int]] = []
    for method, path in routes:
        r = await call(client, method, path, "acme", globex_owner)
        if r.status_code != 403:
            wrong.append(("other tenant", method, path, r.status_code))
        if method != "GET" or path in PRIVILEGED_READS:
            r = await call(client, method, path, "acme", acme_viewer)
            has_body = (method, path) in BODIES or method in ("GET", "DELETE")
            if knows_all_params(path) and has_body:
                if r.status_code != 403 or "You may not" not in r.json().get("detail", ""):
                    wrong.append(("viewer", method, path, r.status_code))
            elif r.status_code not in (403, 404, 422):
                # refused before it could act: bad shape (422) or unknown placeholder (404)
                wrong.append(("viewer", method, path, r.status_code))
    assert wrong == [], "\n".join(map(str, wrong))
    # the viewer's denials are in acme's ledger, each naming the action
    await platform.governance.audit.drain()
    tid = (await platform.tenants.get("acme")).id
    denied = await platform.governance.audit.list(tid, action="denied.*", limit=1000)
    assert {
        "denied.app.publish",
        "denied.draft.edit",
        "denied.token.manage",
        "denied.audit.read",
        "denied.app.delete",
    } <= {e["action"] for e in denied}
    assert all(e["outcome"] == "denied" for e in denied)


async def test_analyst_cannot_read_another_countrys_row(platform: Platform) -> None:
    from plinth.governance.access import Resource
    from plinth.governance.principal import Principal
    from tests.governance.apps import CLAIMS_APP

    platform.authorizer.install("t-acme", "claims", CLAIMS_APP)  # type: ignore[attr-defined]
    ana = Principal("user:ana", "user", frozenset({"analyst"}), "t-acme", attrs={"country": "FR"})
    de_row = Resource(
        "record",
        "claim",
        "t-acme",
        attrs={"app": "claims", "entity": "claim", "record": {"id": "1", "country": "DE"}},
    )
    decision = platform.authorizer.decide(ana, "data.read", de_row)
    assert not decision.allowed and decision.policies == ("analysts_own_country",)
