"""The data API under real Cedar policies: list queries are filtered in the database."""

from __future__ import annotations

import httpx

from tests.governance.apps import COUNTRY_POLICY
from tests.helpers import make_app, make_tenant

APP = {
    "entities": {
        "claim": {
            "fields": {
                "country": {"type": "string", "required": True},
                "amount": {"type": "integer"},
            }
        }
    },
    "policies": {"country": {"cedar": COUNTRY_POLICY}},
}
DATA = "/api/t/acme/apps/claims/data/claim"


async def _analyst(client: httpx.AsyncClient, country: str) -> dict[str, str]:
    r = await client.post(
        "/api/t/acme/users",
        json={
            "username": f"analyst-{country}",
            "password": "a-long-password",
            "roles": ["analyst"],
            "attrs": {"country": country},
        },
    )
    assert r.status_code == 201, r.text
    r = await client.post(
        "/api/auth/acme/login",
        json={"username": f"analyst-{country}", "password": "a-long-password"},
    )
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


async def test_analysts_list_only_their_countrys_rows_with_correct_pages(client):
    await make_tenant(client, "acme")
    await make_app(client, "acme", "claims", APP)
    assert (await client.post("/api/t/acme/apps/claims/publish")).status_code == 201
    rows = [{"country": c, "amount": i} for i, c in enumerate(["DE", "FR"] * 5)]
    assert (await client.post(DATA, json=rows)).status_code == 201
    german = await _analyst(client, "DE")
    seen, cursor = [], None
    while True:  # pages of 2 stay full: the filter runs in SQL, before LIMIT
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await client.get(DATA, headers=german, params=params)).json()
        assert len(page["items"]) == 2 or page["next_cursor"] is None
        seen += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert [r["country"] for r in seen] == ["DE"] * 5
    # a French row cannot be read directly either
    french = (await client.get(DATA, params={"filter": "country eq 'FR'"})).json()["items"][0]
    r = await client.get(f"{DATA}/{french['id']}", headers=german)
    assert r.status_code == 403
