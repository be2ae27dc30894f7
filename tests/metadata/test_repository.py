"""The metadata repository through its HTTP API, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import copy

from tests.helpers import CLAIMS, make_app, make_tenant

BASE = "/api/t/acme/apps/claims"


async def test_draft_is_validated_with_paths(client):
    await make_tenant(client, "acme")
    await make_app(client, "acme", "claims")
    bad = copy.deepcopy(CLAIMS)
    bad["entities"]["claim"]["fields"]["amount"]["min"] = "zero"
    bad["entities"]["claim"]["fields"]["holder"]["entity"] = "nobody"
    bad["widgets"] = {}
    r = await client.put(f"{BASE}/draft", json=bad)
    assert r.status_code == 422
    assert r.headers["content-type"] == "application/problem+json"
    body = r.json()
    paths = {e["path"] for e in body["errors"]}
    assert "entities.claim.fields.amount.min" in paths
    assert "widgets" in paths
    assert body["code"] == "validation_failed"
    # the semantic check runs once the shape is right
    bad["entities"]["claim"]["fields"]["amount"]["min"] = 0
    del bad["widgets"]
    r = await client.put(f"{BASE}/draft", json=bad)
    assert r.status_code == 422
    assert [e["path"] for e in r.json()["errors"]] == ["entities.claim.fields.holder.entity"]
    # nothing half-written: the draft is still empty
    r = await client.get(f"{BASE}/draft")
    assert r.json()["definition"] == {} and r.json()["revision"] == 1


async def test_publish_versions_hash_and_noop(client):
    await make_tenant(client, "acme")
    await make_app(client, "acme", "claims", CLAIMS)
    r = await client.post(f"{BASE}/publish", json={"message": "first"})
    assert r.status_code == 201, r.text
    v1 = r.json()["version"]
    assert v1["number"] == 1 and len(v1["hash"]) == 64 and v1["active"]
    assert [s["step"] for s in r.json()["steps"]][0] == "validate"
    # unchanged draft: no new version
    r = await client.post(f"{BASE}/publish")
    assert r.status_code == 200 and r.json()["created"] is False
    assert r.json()["version"]["number"] == 1
    # a change: version 2 with another hash
    r = await client.patch(
        f"{BASE}/draft",
        json=[{"op": "add", "path": "/entities/claim/fields/notes", "value": {"type": "text"}}],
    )
    assert r.status_code == 200, r.text
    r = await client.post(f"{BASE}/publish")
    v2 = r.json()["version"]
    assert v2["number"] == 2 and v2["hash"] != v1["hash"]
    r = await client.get(f"{BASE}/versions")
    assert [v["number"] for v in r.json()["items"]] == [1, 2]
    assert r.json()["active"] == 2
    r = await client.get(f"{BASE}/versions/1")
    assert "notes" not in r.json()["definition"]["entities"]["claim"]["fields"]
    r = await client.get(f"{BASE}/versions/9")
    assert r.status_code == 404 and r.json()["path"] == "version"


async def test_stable_ids_are_assigned_and_kept(client):
    await make_tenant(client, "acme")
    await make_app(client, "acme", "claims", CLAIMS)
    draft = (await client.get(f"{BASE}/draft")).json()["definition"]
    fid = draft["entities"]["claim"]["fields"]["amount"]["id"]
    assert fid.startswith("fld_")
    # a client that sends the definition back without ids keeps them
    r = await client.put(f"{BASE}/draft", json=CLAIMS)
    assert r.json()["definition"]["entities"]["claim"]["fields"]["amount"]["id"] == fid


async def test_diff_reports_rename_add_remove_change(client):
    await make_tenant(client, "acme")
    await make_app(client, "acme", "claims", CLAIMS)
    await client.post(f"{BASE}/publish")
    draft = (await client.get(f"{BASE}/draft")).json()["definition"]
    fields = draft["entities"]["claim"]["fields"]
    # rename amount -> claimed_amount keeping its id, change min, add and remove a field
    fields = {("claimed_amount" if k == "amount" else k): v for k, v in fields.items()}
    fields["claimed_amount"]["min"] = 1
    del fields["status"]
    fields["notes"] = {"type": "text"}
    draft["entities"]["claim"]["fields"] = fields
    assert (await client.put(f"{BASE}/draft", json=draft)).status_code == 200
    await client.post(f"{BASE}/publish")
    r = await client.get(f"{BASE}/diff", params={"from": 1, "to": 2})
    assert r.status_code == 200
    [claim] = r.json()["changes"]
    assert claim["op"] == "changed" and claim["path"] == "entities.claim"
    ops = {(c["op"], c["path"]) for c in claim["changes"]}
    assert ("renamed", "entities.claim.fields.claimed_amount") in ops
    assert ("removed", "entities.claim.fields.status") in ops
    assert ("added", "entities.claim.fields.notes") in ops
    [rename] = [c for c in claim["changes"] if c["op"] == "renamed"]
    assert rename["from"] == "amount"
    assert rename["changes"] == [
        {"op": "changed", "path": "entities.claim.fields.claimed_amount.min", "from": 0, "to": 1}
    ]
    # from the empty app: everything is added
    r = await client.get(f"{BASE}/diff", params={"from": 0, "to": 1})
    assert {(c["op"], c["name"]) for c in r.json()["changes"]} == {
        ("added", "policyholder"),
        ("added", "claim"),
    }


async def test_rollback_activates_older_version(client):
    await make_tenant(client, "acme")
    await make_app(client, "acme", "claims", CLAIMS)
    await client.post(f"{BASE}/publish")
    await client.patch(
        f"{BASE}/draft", json=[{"op": "remove", "path": "/entities/claim/fields/status"}]
    )
    await client.post(f"{BASE}/publish")
    r = await client.post(f"{BASE}/rollback", json={"version": 1})
    assert r.status_code == 200, r.text
    assert (await client.get(f"{BASE}")).json()["active_version"] == 1
    # the draft is untouched unless asked
    draft = (await client.get(f"{BASE}/draft")).json()["definition"]
    assert "status" not in draft["entities"]["claim"]["fields"]
    r = await client.post(f"{BASE}/rollback", json={"version": 2, "reset_draft": True})
    assert r.status_code == 200
    r = await client.post(f"{BASE}/rollback", json={"version": 1, "reset_draft": True})
    draft = (await client.get(f"{BASE}/draft")).json()["definition"]
    assert "status" in draft["entities"]["claim"]["fields"]
    assert (await client.post(f"{BASE}/rollback", json={"version": 7})).status_code == 404


async def test_json_patch_failure_names_the_operation(client):
    await make_tenant(client, "acme")
    await make_app(client, "acme", "claims", CLAIMS)
    r = await client.patch(
        f"{BASE}/draft",
        json=[
            {"op": "add", "path": "/entities/claim/fields/a", "value": {"type": "text"}},
            {"op": "remove", "path": "/entities/claim/fields/nope"},
        ],
    )
    assert r.status_code == 422
    assert r.json()["errors"][0]["path"] == "[1]"
    draft = (await client.get(f"{BASE}/draft")).json()["definition"]
    assert "a" not in draft["entities"]["claim"]["fields"]


async def test_if_match_guards_lost_updates(client):
    await make_tenant(client, "acme")
    await make_app(client, "acme", "claims")
    r = await client.get(f"{BASE}/draft")
    etag = r.headers["etag"]
    r = await client.put(f"{BASE}/draft", json=CLAIMS, headers={"If-Match": etag})
    assert r.status_code == 200
    r = await client.put(f"{BASE}/draft", json={}, headers={"If-Match": etag})
    assert r.status_code == 412


async def test_concurrent_publishes_yield_consistent_versions(client):
    await make_tenant(client, "acme")
    await make_app(client, "acme", "claims", CLAIMS)
    results = await asyncio.gather(*[client.post(f"{BASE}/publish") for _ in range(6)])
    assert all(r.status_code in (200, 201) for r in results), [r.text for r in results]
    assert sum(r.json()["created"] for r in results) == 1
    assert {r.json()["version"]["number"] for r in results} == {1}

    # interleave edits and publishes: numbers stay dense and unique
    async def edit_and_publish(i: int):
        await client.patch(
            f"{BASE}/draft",
            json=[{"op": "add", "path": f"/entities/claim/fields/f{i}", "value": {"type": "text"}}],
        )
        return await client.post(f"{BASE}/publish")

    await asyncio.gather(*[edit_and_publish(i) for i in range(5)])
    numbers = [v["number"] for v in (await client.get(f"{BASE}/versions")).json()["items"]]
    assert numbers == list(range(1, len(numbers) + 1))
    assert 2 <= len(numbers) <= 6


async def test_apps_crud_and_slugs(client):
    await make_tenant(client, "acme")
    r = await client.post("/api/t/acme/apps", json={"slug": "Bad Name!"})
    assert r.status_code == 400 and r.json()["path"] == "slug"
    await make_app(client, "acme", "claims")
    r = await client.post("/api/t/acme/apps", json={"slug": "claims"})
    assert r.status_code == 409
    assert [a["slug"] for a in (await client.get("/api/t/acme/apps")).json()["items"]] == ["claims"]
    assert (await client.delete(BASE)).status_code == 204
    assert (await client.get(BASE)).status_code == 404
