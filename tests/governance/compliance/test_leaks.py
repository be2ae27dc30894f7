"""What a caller sees masked must not leak through sort, filter or the list cursor."""

from __future__ import annotations

import base64
import json

import httpx
import pytest

from plinth.errors import Forbidden
from plinth.server import Platform
from tests.governance.test_policy import analyst, published
from tests.helpers import as_user, make_app, make_tenant, publish, token_for

APP = {
    "entities": {
        "payout": {
            "fields": {
                "label": {"type": "string"},
                "iban": {"type": "string", "classification": "financial", "masked": True},
            }
        }
    }
}
BASE = "/api/t/acme/apps/shop/data/payout"
IBANS = ("DE89370400440532013000", "FR1420041010050500013M02606", "NL91ABNA0417164300")


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_masked_fields_leak_through_no_cursor_sort_or_filter(
    client: httpx.AsyncClient,
) -> None:
    await make_tenant(client, "acme")
    await make_app(client, "acme", "shop")
    r = await publish(client, "acme", "shop", APP)
    assert r.status_code == 201, r.text
    for iban in IBANS:
        assert (await client.post(BASE, json={"label": "x", "iban": iban})).status_code == 201
    analyst = as_user(client, await token_for(client, "acme", "analyst"))

    # The analyst sees ******3000: sorting or filtering on the field would reveal it.
    r = await client.get(BASE, params={"sort": "iban", "limit": 1}, headers=analyst)
    assert r.status_code == 403, r.text
    assert r.json()["path"] == "sort.iban"
    r = await client.get(BASE, params={"sort": "label,-iban"}, headers=analyst)
    assert r.status_code == 403 and r.json()["path"] == "sort.iban"
    flt = {
        "and": [
            {"field": "label", "op": "eq", "value": "x"},
            {"field": "iban", "op": "startswith", "value": "DE8937"},
        ]
    }
    r = await client.get(BASE, params={"filter": json.dumps(flt)}, headers=analyst)
    assert r.status_code == 403, r.text
    assert r.json()["path"] == "filter.iban"
    page = (await client.get(BASE, params={"limit": 1}, headers=analyst)).json()
    assert page["items"][0]["iban"].startswith("*")

    # Whoever may unmask sorts on it; the cursor stays opaque and pages correctly.
    seen, cursor = [], None
    while True:
        params = {"sort": "iban", "limit": 1, **({"cursor": cursor} if cursor else {})}
        page = (await client.get(BASE, params=params)).json()
        seen += [i["iban"] for i in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        assert not any(part.encode() in raw for i in IBANS for part in (i, i[-8:]))
    assert seen == sorted(IBANS)
    # A cursor is bound to its list and sort, and cannot be forged.
    first = (await client.get(BASE, params={"sort": "iban", "limit": 1})).json()["next_cursor"]
    r = await client.get(BASE, params={"sort": "label", "cursor": first})
    assert r.status_code == 400 and r.json()["path"] == "cursor"
    forged = base64.urlsafe_b64encode(json.dumps([IBANS[0], "x"]).encode()).decode()
    r = await client.get(BASE, params={"sort": "iban", "cursor": forged})
    assert r.status_code == 400 and r.json()["path"] == "cursor"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_fields_the_caller_may_not_read_cannot_be_sorted_or_filtered_on(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    tid = await published(client)  # claim.health_notes: field.read for the claims team only
    tenant = await platform.tenants.get("acme")
    records = platform.records
    await records.create(
        tenant,
        "claims",
        "claim",
        {"country": "FR", "health_notes": "flu"},
        analyst(tid, groups=("claims",)),
    )
    outsider = analyst(tid)
    with pytest.raises(Forbidden) as refused:
        await records.query(tenant, "claims", "claim", outsider, sort=["-health_notes"])
    assert refused.value.path == "sort.health_notes"
    with pytest.raises(Forbidden) as refused:
        await records.query(
            tenant,
            "claims",
            "claim",
            outsider,
            filter={"not": {"field": "health_notes", "op": "startswith", "value": "f"}},
        )
    assert refused.value.path == "filter.health_notes"
    page = await records.query(tenant, "claims", "claim", outsider, sort=["amount"])
    assert [("health_notes" in r, r["country"]) for r in page["items"]] == [(False, "FR")]
