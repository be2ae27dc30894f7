"""The generated CRUD API: round-trips, constraints with paths, CEL, ETags, events."""

from __future__ import annotations

from typing import Any

import httpx

from plinth.events import Event
from plinth.server import Platform
from tests.helpers import make_app, make_tenant, publish

FIELDS: dict[str, Any] = {
    "name": {
        "type": "string",
        "required": True,
        "minLength": 2,
        "maxLength": 20,
        "pattern": "^[A-Z]",
    },
    "notes": {"type": "text"},
    "qty": {"type": "integer", "min": 0, "max": 100},
    "price": {"type": "decimal", "precision": 10, "scale": 2, "min": 0},
    "active": {"type": "boolean", "default": True},
    "born": {"type": "date"},
    "seen_at": {"type": "datetime"},
    "mail": {"type": "email", "unique": True},
    "site": {"type": "url"},
    "status": {"type": "enum", "values": ["open", "closed"], "default": "open"},
    "extra": {
        "type": "json",
        "schema": {"type": "object", "properties": {"tag": {"type": "string"}}},
    },
    "total": {"type": "decimal", "computed": "double(qty) * price"},
}
APP: dict[str, Any] = {
    "entities": {
        "item": {
            "fields": FIELDS,
            "rules": [
                {
                    "expr": "status != 'closed' || qty == 0",
                    "message": "close only empty items",
                    "path": "status",
                }
            ],
        },
    }
}
BASE = "/api/t/acme/apps/shop/data"


async def setup(client: httpx.AsyncClient, definition: dict[str, Any] = APP) -> None:
    await make_tenant(client, "acme")
    await make_app(client, "acme", "shop")
    r = await publish(client, "acme", "shop", definition)
    assert r.status_code == 201, r.text


async def test_every_field_type_round_trips(client: httpx.AsyncClient) -> None:
    await setup(client)
    record = {
        "name": "Anvil",
        "notes": "heavy\nline",
        "qty": 3,
        "price": "12.50",
        "active": False,
        "born": "2024-02-29",
        "seen_at": "2024-03-01T10:00:00Z",
        "mail": "a@example.com",
        "site": "https://example.com/x",
        "status": "open",
        "extra": {"tag": "x", "n": [1, 2]},
    }
    r = await client.post(f"{BASE}/item", json=record)
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["version"] == 1 and r.headers["etag"] == '"1"'
    got = (await client.get(f"{BASE}/item/{body['id']}")).json()
    for key, value in record.items():
        assert got[key] == value, key
    assert got["total"] == "37.50"  # computed by CEL
    defaulted = (await client.post(f"{BASE}/item", json={"name": "Bolt"})).json()
    assert defaulted["active"] is True and defaulted["status"] == "open"


async def test_each_constraint_rejects_with_its_path(client: httpx.AsyncClient) -> None:
    await setup(client)
    bad = {
        "name": "x",
        "qty": 101,
        "price": "-1",
        "born": "2024-13-01",
        "mail": "nope",
        "site": "no url",
        "status": "lost",
        "extra": {"tag": 5},
        "ghost": 1,
    }
    r = await client.post(f"{BASE}/item", json=bad)
    assert r.status_code == 422
    assert r.headers["content-type"].startswith("application/problem+json")
    paths = {e["path"] for e in r.json()["errors"]}
    assert {"name", "qty", "born", "mail", "status", "extra.tag", "ghost"} <= paths, paths
    r = await client.post(f"{BASE}/item", json={"notes": "no name"})
    assert r.status_code == 422 and r.json()["errors"][0]["path"] == "name"
    r = await client.post(f"{BASE}/item", json={"name": "lower"})
    assert [e["path"] for e in r.json()["errors"]] == ["name"]  # pattern
    r = await client.post(f"{BASE}/item", json={"name": "Neg", "price": "-1"})
    assert r.status_code == 422 and r.json()["errors"][0]["path"] == "price"
    r = await client.post(f"{BASE}/item", json={"name": "Comp", "total": "1"})
    assert r.json()["errors"][0]["path"] == "total"
    ok = await client.post(f"{BASE}/item", json={"name": "Uniq", "mail": "u@example.com"})
    assert ok.status_code == 201
    dup = await client.post(f"{BASE}/item", json={"name": "Dup", "mail": "u@example.com"})
    assert dup.status_code == 409 and dup.json()["path"] == "mail"


async def test_batch_is_all_or_nothing_with_indexed_paths(client: httpx.AsyncClient) -> None:
    await setup(client)
    r = await client.post(f"{BASE}/item", json=[{"name": "Good"}, {"name": "Bad", "qty": -1}])
    assert r.status_code == 422 and r.json()["errors"][0]["path"] == "[1].qty"
    assert (await client.get(f"{BASE}/item")).json()["items"] == []
    r = await client.post(f"{BASE}/item", json=[{"name": "One"}, {"name": "Two"}])
    assert r.status_code == 201 and len(r.json()) == 2


async def test_cel_rule_refuses_with_its_message(client: httpx.AsyncClient) -> None:
    await setup(client)
    r = await client.post(f"{BASE}/item", json={"name": "Full", "qty": 2, "status": "closed"})
    assert r.status_code == 422
    assert r.json()["errors"] == [
        {"path": "status", "message": "close only empty items", "code": "rule"}
    ]


async def test_bad_expression_fails_publish_with_its_path(client: httpx.AsyncClient) -> None:
    await make_tenant(client, "acme")
    await make_app(client, "acme", "shop")
    bad = {
        "entities": {
            "item": {
                "fields": {
                    "qty": {"type": "integer"},
                    "double_qty": {"type": "integer", "computed": "qtty * 2"},
                }
            }
        }
    }
    r = await publish(client, "acme", "shop", bad)
    assert r.status_code == 422, r.text
    fault = r.json()["errors"][0]
    assert fault["path"] == "entities.item.fields.double_qty.computed"
    assert "qtty" in fault["message"] and "column 1" in fault["message"]
    bad["entities"]["item"]["fields"]["double_qty"]["computed"] = "qty * 2"
    bad["entities"]["item"]["rules"] = [{"expr": "qty + 1", "message": "m"}]
    r = await publish(client, "acme", "shop", bad)
    assert r.status_code == 422
    assert r.json()["errors"][0]["path"] == "entities.item.rules[0].expr"
    assert (await client.get("/api/t/acme/apps/shop")).json()["active_version"] is None


async def test_etag_and_if_match(client: httpx.AsyncClient) -> None:
    await setup(client)
    created = (await client.post(f"{BASE}/item", json={"name": "Cog", "qty": 1})).json()
    url = f"{BASE}/item/{created['id']}"
    r = await client.patch(url, json={"qty": 2}, headers={"If-Match": '"1"'})
    assert r.status_code == 200 and r.json()["qty"] == 2 and r.headers["etag"] == '"2"'
    assert r.json()["name"] == "Cog"  # merge keeps the rest
    stale = await client.patch(url, json={"qty": 3}, headers={"If-Match": '"1"'})
    assert stale.status_code == 412
    r = await client.put(url, json={"name": "Cog2"}, headers={"If-Match": '"2"'})
    assert r.status_code == 200 and r.json()["qty"] is None  # replace clears the rest
    assert (await client.delete(url, headers={"If-Match": '"2"'})).status_code == 412
    assert (await client.delete(url, headers={"If-Match": '"3"'})).status_code == 204
    assert (await client.get(url)).status_code == 404


async def test_unknown_entity_and_oversized_body(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    await setup(client)
    r = await client.get(f"{BASE}/nothing")
    assert r.status_code == 404 and r.json()["entity"] == "nothing"
    big = [{"name": "Xx", "notes": "y" * 1000}] * (platform.settings.max_body_bytes // 1000)
    assert (await client.post(f"{BASE}/item", json=big)).status_code == 413


async def test_record_events_carry_before_and_after(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    seen: list[Event] = []

    async def keep(event: Event) -> None:
        seen.append(event)

    platform.events.subscribe("record.*", keep)
    await setup(client)
    rec = (await client.post(f"{BASE}/item", json={"name": "Ev"})).json()
    await client.patch(f"{BASE}/item/{rec['id']}", json={"qty": 5})
    await client.delete(f"{BASE}/item/{rec['id']}")
    assert [e.topic for e in seen] == ["record.created", "record.updated", "record.deleted"]
    assert seen[0].data["before"] is None and seen[0].data["after"]["name"] == "Ev"
    assert seen[1].data["before"]["qty"] is None and seen[1].data["after"]["qty"] == 5
    assert seen[2].data["after"] is None and seen[2].data["version"] == 1
    assert seen[0].data["by"] and seen[0].data["entity"] == "item"
