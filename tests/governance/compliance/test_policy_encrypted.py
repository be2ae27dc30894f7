"""Row policies over encrypted fields see plaintext in lists and expands, as in get()."""

from __future__ import annotations

import httpx
import pytest

from tests.helpers import make_app, make_tenant, publish

POLICY = """
@id("analysts_own_region")
forbid(principal in Role::"analyst", action == Action::"data.read", resource is customer)
  unless { principal has country && resource.region == principal.country };
"""
APP = {
    "entities": {
        "customer": {
            "fields": {
                "email": {"type": "email", "classification": "pii"},
                "region": {
                    "type": "string",
                    "classification": "pii",
                    "required": True,
                    "encrypted": True,
                },
            },
            "subject": {"key_field": "email"},
        },
        "card": {
            "fields": {
                "customer": {"type": "reference", "entity": "customer"},
                "label": {"type": "string"},
            },
        },
    },
    "policies": {"region": {"cedar": POLICY}},
}
DATA = "/api/t/acme/apps/shop/data"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_a_policy_on_an_encrypted_field_filters_lists_and_expands(
    client: httpx.AsyncClient,
) -> None:
    await make_tenant(client, "acme")
    await make_app(client, "acme", "shop")
    r = await publish(client, "acme", "shop", APP)
    assert r.status_code == 201, r.text
    ids = {}
    for email, region in (("a@example.com", "DE"), ("b@example.com", "FR")):
        r = await client.post(f"{DATA}/customer", json={"email": email, "region": region})
        assert r.status_code == 201, r.text
        ids[region] = r.json()["id"]
        card = {"customer": r.json()["id"], "label": region}
        assert (await client.post(f"{DATA}/card", json=card)).status_code == 201
    r = await client.post(
        "/api/t/acme/users",
        json={
            "username": "ana",
            "password": "a-long-password",
            "roles": ["analyst"],
            "attrs": {"country": "DE"},
        },
    )
    assert r.status_code == 201, r.text
    r = await client.post(
        "/api/auth/acme/login", json={"username": "ana", "password": "a-long-password"}
    )
    ana = {"Authorization": f"Bearer {r.json()['access_token']}"}

    r = await client.get(f"{DATA}/customer", headers=ana)
    assert r.status_code == 200, r.text
    assert [c["region"] for c in r.json()["items"]] == ["DE"]
    r = await client.get(
        f"{DATA}/card", params={"expand": "customer", "sort": "label"}, headers=ana
    )
    assert r.status_code == 200, r.text
    shown = {c["label"]: c["customer"] for c in r.json()["items"]}
    assert shown["DE"]["region"] == "DE"
    assert shown["FR"] == ids["FR"]  # a customer the analyst may not read stays an id
    assert (await client.get(f"{DATA}/customer/{ids['FR']}", headers=ana)).status_code == 403
