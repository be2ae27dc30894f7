"""List queries: filters, sort, projection, expand, cursor pagination, injection attempts,
tenant isolation and the OpenAPI document."""

from __future__ import annotations

from typing import Any

import httpx
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate

from tests.helpers import CLAIMS, as_user, make_app, make_tenant, publish, token_for

BASE = "/api/t/acme/apps/claims/data"


async def seed(client: httpx.AsyncClient, tenant: str = "acme") -> list[dict[str, Any]]:
    await make_tenant(client, tenant)
    await make_app(client, tenant, "claims")
    assert (await publish(client, tenant, "claims", CLAIMS)).status_code == 201
    base = f"/api/t/{tenant}/apps/claims/data"
    holders = (
        await client.post(
            f"{base}/policyholder",
            json=[
                {"full_name": "Ada", "country": "DE", "email": "ada@example.com"},
                {"full_name": "Bo", "country": "FR"},
                {"full_name": "Cy", "country": "US"},
            ],
        )
    ).json()
    claims = [
        {"holder": holders[i % 3]["id"], "amount": str(a), "status": s}
        for i, (a, s) in enumerate(
            [(50, "open"), (150, "open"), (250, "approved"), (10, "rejected"), (300, "open")]
        )
    ]
    assert (await client.post(f"{base}/claim", json=claims)).status_code == 201
    return list(holders)


async def names(client: httpx.AsyncClient, **params: Any) -> list[str]:
    r = await client.get(f"{BASE}/policyholder", params=params)
    assert r.status_code == 200, r.text
    return [x["full_name"] for x in r.json()["items"]]


async def test_filter_language(client: httpx.AsyncClient) -> None:
    await seed(client)
    assert await names(client, filter="country eq 'DE'") == ["Ada"]
    assert await names(client, filter="country in ('DE','FR')", sort="full_name") == ["Ada", "Bo"]
    assert await names(client, filter="not country nin ('US')") == ["Cy"]
    assert await names(client, filter="email isnull true", sort="-full_name") == ["Cy", "Bo"]
    assert await names(
        client, filter="full_name startswith 'A' or full_name contains 'y'", sort="full_name"
    ) == ["Ada", "Cy"]
    r = await client.get(
        f"{BASE}/claim",
        params={
            "filter": "status eq 'open' and (amount gt 100 or amount lte 50)",
            "sort": "amount",
        },
    )
    assert [x["amount"] for x in r.json()["items"]] == ["50.00", "150.00", "300.00"]
    ast = '{"or": [{"field": "country", "op": "eq", "value": "US"}]}'
    assert await names(client, filter=ast) == ["Cy"]
    r = await client.get(f"{BASE}/claim", params={"filter": "nope eq 1"})
    assert r.status_code == 400 and r.json()["field"] == "nope"


async def test_injection_in_filter_and_sort_is_inert(client: httpx.AsyncClient) -> None:
    await seed(client)
    assert await names(client, filter="full_name eq 'x'' OR ''1''=''1'") == []
    assert await names(client, filter="full_name contains '%'") == []
    for bad in ["full_name eq 'x'; DROP TABLE x", "1=1", "full_name eq x OR 1=1"]:
        r = await client.get(f"{BASE}/policyholder", params={"filter": bad})
        assert r.status_code == 400, bad
    for bad in ["full_name; DROP TABLE claims__claim", "(select 1)", "full_name desc"]:
        r = await client.get(f"{BASE}/policyholder", params={"sort": bad})
        assert r.status_code == 400, bad
    assert len(await names(client)) == 3


async def test_sort_projection_expand_and_cursor(client: httpx.AsyncClient) -> None:
    holders = await seed(client)
    r = await client.get(
        f"{BASE}/claim", params={"sort": "-amount", "fields": "amount", "limit": 2}
    )
    page = r.json()
    assert page["items"] == [
        {"id": page["items"][0]["id"], "amount": "300.00"},
        {"id": page["items"][1]["id"], "amount": "250.00"},
    ]
    seen = [x["amount"] for x in page["items"]]
    while page["next_cursor"]:
        page = (
            await client.get(
                f"{BASE}/claim",
                params={
                    "sort": "-amount",
                    "fields": "amount",
                    "limit": 2,
                    "cursor": page["next_cursor"],
                },
            )
        ).json()
        seen += [x["amount"] for x in page["items"]]
    assert seen == ["300.00", "250.00", "150.00", "50.00", "10.00"]
    r = await client.get(f"{BASE}/claim", params={"expand": "holder", "sort": "amount", "limit": 1})
    assert r.json()["items"][0]["holder"]["full_name"] == holders[0]["full_name"]
    assert (await client.get(f"{BASE}/claim", params={"expand": "status"})).status_code == 400
    assert (await client.get(f"{BASE}/claim", params={"limit": 100000})).status_code == 400
    assert (await client.get(f"{BASE}/claim", params={"cursor": "garbage"})).status_code == 400
    # an unknown reference is refused with its path
    r = await client.post(f"{BASE}/claim", json={"holder": "missing", "amount": "1"})
    assert r.status_code == 422 and r.json()["errors"][0]["path"] == "holder"


async def test_tenant_isolation(client: httpx.AsyncClient) -> None:
    await seed(client, "acme")
    await seed(client, "globex")
    token = await token_for(client, "globex", "viewer")
    r = await client.get(f"{BASE}/policyholder", headers=as_user(client, token))
    assert r.status_code == 403
    r = await client.get(
        "/api/t/globex/apps/claims/data/policyholder", headers=as_user(client, token)
    )
    assert r.status_code == 200 and len(r.json()["items"]) == 3
    viewer = await client.post(
        "/api/t/globex/apps/claims/data/policyholder",
        json={"full_name": "Zed", "country": "DE"},
        headers=as_user(client, token),
    )
    assert viewer.status_code == 403


async def test_openapi_document_validates_and_matches(client: httpx.AsyncClient) -> None:
    await seed(client)
    r = await client.get("/api/t/acme/apps/claims/openapi.json")
    assert r.status_code == 200
    doc = r.json()
    validate(doc)
    assert doc["info"]["version"] == "1"
    paths = doc["paths"]
    assert set(paths[f"{BASE}/claim"]) == {"get", "post"}
    assert {"get", "patch", "put", "delete"} <= set(paths[f"{BASE}/claim/{{id}}"])
    schema = doc["components"]["schemas"]["PolicyholderInput"]
    assert schema["required"] == ["full_name", "country"]
    # what the schema promises is what the API returns
    record = (await client.get(f"{BASE}/policyholder", params={"limit": 1})).json()["items"][0]
    assert set(record) == set(doc["components"]["schemas"]["Policyholder"]["properties"])

    # every response validates against the schema the document declares for it
    def check(ref: str, instance: Any) -> None:
        schema = {"$ref": f"#/components/schemas/{ref}", "components": doc["components"]}
        Draft202012Validator(schema).validate(instance)

    check("PolicyholderPage", (await client.get(f"{BASE}/policyholder")).json())
    check("ClaimPage", (await client.get(f"{BASE}/claim", params={"expand": "holder"})).json())
    created = await client.post(f"{BASE}/claim", json={"holder": record["id"], "amount": 5})
    check("Claim", created.json())
    check("Problem", (await client.post(f"{BASE}/claim", json={"amount": "x"})).json())
