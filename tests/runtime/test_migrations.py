"""Schema changes at publish: renames keep data, destructive changes need the flag,
failed conversions roll the whole publish back, rollback re-applies the inverse plan."""

from __future__ import annotations

import copy
from typing import Any

import httpx

from plinth.events import Event
from plinth.server import Platform
from tests.helpers import make_app, make_tenant, publish

BASE = "/api/t/acme/apps/crm/data"
V1: dict[str, Any] = {
    "entities": {
        "contact": {
            "fields": {
                "full_name": {"id": "fld_name", "type": "string", "required": True},
                "code": {"id": "fld_code", "type": "string"},
            }
        }
    }
}


async def start(client: httpx.AsyncClient) -> str:
    await make_tenant(client, "acme")
    await make_app(client, "acme", "crm")
    assert (await publish(client, "acme", "crm", V1)).status_code == 201
    r = await client.post(f"{BASE}/contact", json={"full_name": "Ada", "code": "12"})
    assert r.status_code == 201
    return str(r.json()["id"])


def changed(**fields: Any) -> dict[str, Any]:
    d = copy.deepcopy(V1)
    d["entities"]["contact"]["fields"] = fields
    return d


async def test_rename_keeps_data(client: httpx.AsyncClient) -> None:
    rid = await start(client)
    v2 = changed(
        name={"id": "fld_name", "type": "string", "required": True},
        code={"id": "fld_code", "type": "string"},
    )
    v2["entities"] = {
        "person": {
            **v2["entities"]["contact"],
            "id": (await client.get("/api/t/acme/apps/crm/draft")).json()["definition"]["entities"][
                "contact"
            ]["id"],
        }
    }
    r = await publish(client, "acme", "crm", v2)
    assert r.status_code == 201, r.text
    got = (await client.get(f"{BASE}/person/{rid}")).json()
    assert got["name"] == "Ada" and got["code"] == "12"
    assert (await client.get(f"{BASE}/contact")).status_code == 404


async def test_destructive_change_refused_then_allowed(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    audited: list[Event] = []

    async def keep(event: Event) -> None:
        audited.append(event)

    platform.events.subscribe("runtime.destructive_change", keep)
    rid = await start(client)
    v2 = changed(full_name=V1["entities"]["contact"]["fields"]["full_name"])
    r = await publish(client, "acme", "crm", v2)
    assert r.status_code == 409, r.text
    assert r.json()["path"] == "entities.contact.fields.code"
    assert (await client.get(f"{BASE}/contact/{rid}")).json()["code"] == "12"
    r = await publish(client, "acme", "crm", None, allow_destructive=True)
    assert r.status_code == 201, r.text
    migrate = [s for s in r.json()["steps"] if s["step"] == "migrate"][0]
    assert migrate["status"] == "warning"  # the destructive change is reported
    assert "code" not in (await client.get(f"{BASE}/contact/{rid}")).json()
    assert [e.data["changes"] for e in audited] == [["drop field contact.code and its data"]]
    assert audited[0].data["by"] and audited[0].data["version"] == 2


async def test_failed_conversion_rolls_back_the_whole_publish(client: httpx.AsyncClient) -> None:
    await start(client)
    bad = (await client.post(f"{BASE}/contact", json={"full_name": "Bob", "code": "x1"})).json()
    v2 = changed(
        full_name={"id": "fld_name", "type": "string", "required": True},
        code={"id": "fld_code", "type": "integer"},
        extra={"id": "fld_extra", "type": "text"},
    )
    r = await publish(client, "acme", "crm", v2, allow_destructive=True)
    assert r.status_code == 422, r.text
    assert bad["id"] in r.json()["rows"]
    assert (await client.get("/api/t/acme/apps/crm")).json()["active_version"] == 1
    # the table is untouched: no half-added column, old type still in place
    rows = (await client.get(f"{BASE}/contact", params={"sort": "full_name"})).json()["items"]
    assert [x["code"] for x in rows] == ["12", "x1"] and "extra" not in rows[0]
    await client.patch(f"{BASE}/contact/{bad['id']}", json={"code": "7"})
    r = await publish(client, "acme", "crm", None, allow_destructive=True)
    assert r.status_code == 201, r.text
    rows = (await client.get(f"{BASE}/contact", params={"sort": "code"})).json()["items"]
    assert [x["code"] for x in rows] == [7, 12]


async def test_rollback_reapplies_the_inverse_plan(client: httpx.AsyncClient) -> None:
    rid = await start(client)
    v2 = changed(
        full_name={"id": "fld_name", "type": "string", "required": True},
        code={"id": "fld_code", "type": "string"},
        score={"id": "fld_score", "type": "integer", "default": 5},
    )
    assert (await publish(client, "acme", "crm", v2)).status_code == 201
    assert (await client.get(f"{BASE}/contact/{rid}")).json()["score"] == 5
    r = await client.post("/api/t/acme/apps/crm/rollback", json={"version": 1})
    assert r.status_code == 409, r.text  # dropping score would destroy data
    r = await client.post(
        "/api/t/acme/apps/crm/rollback", json={"version": 1, "allow_destructive": True}
    )
    assert r.status_code in (200, 201), r.text
    got = (await client.get(f"{BASE}/contact/{rid}")).json()
    assert "score" not in got and got["full_name"] == "Ada"


async def test_type_change_keeps_uniqueness(client: httpx.AsyncClient) -> None:
    await start(client)
    v2 = changed(
        full_name={"id": "fld_name", "type": "string", "required": True},
        code={"id": "fld_code", "type": "integer", "unique": True},
    )
    r = await publish(client, "acme", "crm", v2, allow_destructive=True)
    assert r.status_code == 201, r.text
    dup = await client.post(f"{BASE}/contact", json={"full_name": "Eve", "code": 12})
    assert dup.status_code == 409 and dup.json()["path"] == "code"
