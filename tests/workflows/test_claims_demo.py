"""The demo claims workflow end to end through the real platform: the demo tenant and its
people (governance users with roles, groups and countries), the data the demo seeds through the
HTTP API, claims saved through the runtime API, the fraud-scorer plugin the demo installs, the
task inbox per user, two managers, SLA escalation."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from argon2 import PasswordHasher

from plinth.demo import TENANT, load_demo
from plinth.governance import identity
from plinth.governance.principal import PLATFORM_ADMIN, Principal
from plinth.server import Platform, create_app
from plinth.settings import Settings
from tests.conftest import ADMIN_TOKEN
from tests.extensions.conftest import CACHE

DATA = f"/api/t/{TENANT}/apps/claims/data"
OPERATOR = Principal("operator", "cli", frozenset({PLATFORM_ADMIN}), name="operator")


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        database_url=database_url,
        admin_token=ADMIN_TOKEN,
        embedded_worker=False,
        plugin_cache_dir=CACHE / "compiled",
    )


class Demo:
    def __init__(self, client: httpx.AsyncClient, platform: Platform) -> None:
        self.client, self.platform = client, platform
        self.tokens: dict[str, dict[str, str]] = {}
        self.policy = ""

    async def as_(self, username: str, method: str, url: str, **kw: Any) -> httpx.Response:
        return await self.client.request(method, url, headers=self.tokens[username], **kw)

    async def inbox(self, username: str, *keys: str) -> list[dict[str, Any]]:
        """`username`'s open tasks; with `keys`, only those on these claim references (the
        seeded claims keep every staff inbox busy)."""
        r = await self.as_(username, "GET", f"/api/t/{TENANT}/tasks")
        assert r.status_code == 200, r.text
        return [t for t in r.json() if not keys or t["business_key"] in keys]

    async def keys(self, username: str) -> list[tuple[str, str]]:
        """(kind, claim reference) of each task in `username`'s inbox."""
        return sorted((t["kind"], t["business_key"]) for t in await self.inbox(username))

    async def listed(self, username: str, entity: str, field: str) -> list[str]:
        r = await self.as_(username, "GET", f"{DATA}/{entity}?limit=100")
        assert r.status_code == 200, r.text
        return sorted(str(item[field]) for item in r.json()["items"])

    async def drain(self) -> None:
        await self.platform.workflows.engine.drain()

    async def claim(
        self, amount: str, description: str = "Water damage in the kitchen", country: str = "FR"
    ) -> dict[str, Any]:
        """File a claim through the data API; its `created` event starts the workflow."""
        r = await self.client.post(
            f"{DATA}/claim",
            json={
                "reference": f"CL-{amount}-{country}",
                "policy": self.policy,
                "country": country,
                "incident_date": "2026-11-02",
                "description": description,
                "amount": amount,
            },
        )
        assert r.status_code == 201, r.text
        await self.drain()
        return dict(r.json())

    async def instance(self, claim: dict[str, Any]) -> dict[str, Any]:
        r = await self.client.get(
            f"/api/t/{TENANT}/workflow-instances", params={"workflow": "claims_process"}
        )
        for inst in r.json():
            got = await self.client.get(f"/api/t/{TENANT}/workflow-instances/{inst['id']}")
            if got.json()["vars"]["record"]["id"] == claim["id"]:
                return dict(got.json())
        raise AssertionError(f"no instance for claim {claim['id']}")


@pytest.fixture
async def demo(
    client: httpx.AsyncClient, platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> Demo:
    # Real argon2, at its cheapest settings: the default costs half a second per password.
    monkeypatch.setattr(
        identity, "_hasher", PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    )
    lines = await load_demo(platform, OPERATOR, http=create_app(platform=platform))
    passwords = dict(re.findall(r"user (\w+) .*password: (\S+)", "\n".join(lines)))
    assert set(passwords) == {"ana", "dirk", "lucia", "maria", "max", "bea", "olga", "carla"}
    assert "plugin fraud-scorer 1.1.0 installed (action, before-write, component)" in lines
    found = Demo(client, platform)
    for username, password in passwords.items():
        r = await client.post(
            f"/api/auth/{TENANT}/login", json={"username": username, "password": password}
        )
        assert r.status_code == 200, r.text
        found.tokens[username] = {"Authorization": f"Bearer {r.json()['access_token']}"}
    holder = (
        await client.post(
            f"{DATA}/policyholder", json={"full_name": "Camille Martin", "country": "FR"}
        )
    ).json()
    r = await client.post(
        f"{DATA}/policy",
        json={
            "number": "FR-000001",
            "holder": holder["id"],
            "product": "home",
            "starts_on": "2026-01-01",
        },
    )
    assert r.status_code == 201, r.text
    found.policy = r.json()["id"]
    return found


SEEDED_INBOXES = {
    "ana": [("user_task", "CLM-FR-0002")],
    "dirk": [("user_task", "CLM-DE-0003"), ("user_task", "CLM-DE-0004")],
    "lucia": [("user_task", "CLM-ES-0001")],
    # Two approvals per high-value claim (one per manager); a manager who voted sees none.
    "maria": [("approval", "CLM-DE-0005")] * 2 + [("approval", "CLM-FR-0003")] * 2,
    "max": [("approval", "CLM-DE-0005")] * 2
    + [("approval", "CLM-ES-0003")]
    + [("approval", "CLM-FR-0003")] * 2,
}


async def test_the_seeded_demo_fits_its_people(demo: Demo) -> None:
    # Everyone with work has it waiting, each in their own inbox.
    assert {u: await demo.keys(u) for u in SEEDED_INBOXES} == SEEDED_INBOXES
    # Claims in five countries and several states, filed by the back office and the customer.
    claims = (await demo.client.get(f"{DATA}/claim?limit=100")).json()["items"]
    assert len(claims) == 13
    assert {c["country"] for c in claims} == {"DE", "FR", "ES", "BR", "US"}
    states = sorted(c["status"] for c in claims)
    assert states == ["closed"] * 5 + ["rejected"] + ["review"] * 7
    assert len((await demo.client.get(f"{DATA}/payout")).json()["items"]) == 5

    # The customer sees only her own policies and the claims she filed (a row filter in SQL),
    # and nothing of other policyholders.
    assert await demo.listed("carla", "policy", "number") == ["DE-200101", "DE-200102"]
    assert await demo.listed("carla", "claim", "reference") == [
        "CLM-DE-0001",
        "CLM-DE-0002",
        "CLM-DE-0003",
    ]
    other = next(c for c in claims if c["reference"] == "CLM-DE-0005")
    assert (await demo.as_("carla", "GET", f"{DATA}/claim/{other['id']}")).status_code == 403
    assert (await demo.as_("carla", "GET", f"{DATA}/policyholder")).status_code == 403

    # Analysts see their own country's claims; managers every claim they may have to approve.
    assert {r[4:6] for r in await demo.listed("ana", "claim", "reference")} == {"FR"}
    assert len(await demo.listed("maria", "claim", "reference")) == 13
    # The approval task names the claim it is about; the manager may read it.
    [task, *_] = await demo.inbox("maria", "CLM-DE-0005")
    assert task["form"]["entity"] == "claim"
    assert task["form"]["show"] == ["reference", "amount", "currency", "fraud_score", "status"]
    r = await demo.as_("maria", "GET", f"{DATA}/claim/{task['form']['record']}")
    assert r.status_code == 200, r.text
    shown = {k: r.json()[k] for k in task["form"]["show"]}
    assert shown == {
        "reference": "CLM-DE-0005",
        "amount": "18450.00",
        "currency": "EUR",
        "fraud_score": 20,  # set by the fraud scorer's before-write hook
        "status": "review",
    }
    # Managers read, they do not edit claims.
    r = await demo.as_("maria", "PATCH", f"{DATA}/claim/{other['id']}", json={"amount": "1.00"})
    assert r.status_code == 403

    # Medical notes: dirk is in the claims team and reads them on his review; ana is not.
    [review] = await demo.inbox("dirk", "CLM-DE-0004")
    assert "health_notes" in review["form"]["show"]
    notes = (await demo.as_("dirk", "GET", f"{DATA}/claim/{review['form']['record']}")).json()
    assert notes["health_notes"].startswith("Distal radius fracture")
    fr = next(c for c in claims if c["reference"] == "CLM-FR-0003")
    assert "health_notes" not in (await demo.as_("ana", "GET", f"{DATA}/claim/{fr['id']}")).json()

    # Loading the demo again seeds nothing twice.
    again = await load_demo(demo.platform, OPERATOR, http=create_app(platform=demo.platform))
    assert not [line for line in again if line.startswith("seed")]
    assert len((await demo.client.get(f"{DATA}/claim?limit=100")).json()["items"]) == 13


async def test_claims_are_auto_approved_or_reviewed_by_country_and_two_managers(demo: Demo) -> None:
    small = await demo.claim("300.00")
    inst = await demo.instance(small)
    assert inst["status"] == "completed"
    assert [s["node"] for s in inst["timeline"]] == [
        "triage",
        "facts",
        "route",
        "approve",
        "payout",
        "close",
        "closed",
    ]
    assert inst["vars"]["fraud"]["level"] == "low"  # scored by the plugin in its sandbox
    assert (await demo.client.get(f"{DATA}/claim/{small['id']}")).json()["status"] == "closed"
    payouts = (await demo.client.get(f"{DATA}/payout?limit=100")).json()["items"]
    [payout] = [p for p in payouts if p["claim"] == small["id"]]
    assert payout["amount"] == "300.00"
    assert await demo.inbox("ana", "CL-300.00-FR") == []
    # The demo's customer files claims on her own policies and follows them, not this FR one.
    assert "CL-300.00-FR" not in await demo.listed("carla", "claim", "reference")
    r = await demo.as_("carla", "GET", f"{DATA}/policy")
    [mine, *_] = r.json()["items"]
    r = await demo.as_(
        "carla",
        "POST",
        f"{DATA}/claim",
        json={
            "reference": "CL-CARLA-1",
            "policy": mine["id"],
            "country": "DE",
            "incident_date": "2026-11-20",
            "description": "Hail on the roof",
            "amount": "800.00",
        },
    )
    assert r.status_code == 201, r.text
    await demo.drain()
    assert "CL-CARLA-1" in await demo.listed("carla", "claim", "reference")

    key = "CL-25000.00-FR"
    claim = await demo.claim("25000.00", "Fire in the garage, suspicious origin")
    # Only the analyst of the claim's country sees the review; managers review nothing.
    assert [await demo.inbox(u, key) for u in ("dirk", "lucia", "maria")] == [[], [], []]
    [review] = await demo.inbox("ana", key)
    # The inbox says which app, workflow and claim the task is about.
    assert (review["app"], review["workflow"], review["business_key"]) == (
        "claims",
        "claims_process",
        key,
    )
    assert (await demo.client.get(f"{DATA}/claim/{claim['id']}")).json()["status"] == "review"
    r = await demo.as_(
        "dirk",
        "POST",
        f"/api/t/{TENANT}/tasks/{review['id']}/complete",
        json={"status": "approved"},
    )
    assert r.status_code == 403
    # The server checks the form with the schema the portal checks it with: the entity's
    # constraints (fraud_score: max 100), its enum values, and nothing outside the form.
    complete = f"/api/t/{TENANT}/tasks/{review['id']}/complete"
    for bad, path in (
        ({"status": "approved", "fraud_score": 500}, "data.fraud_score"),
        ({"status": "approved", "surprise": 1}, "data.surprise"),
        ({"status": "maybe"}, "data.status"),
    ):
        r = await demo.as_("ana", "POST", complete, json=bad)
        assert r.status_code == 422, (bad, r.text)
        assert r.json()["errors"][0]["path"] == path, (bad, r.json())
    r = await demo.as_("ana", "POST", complete, json={"status": "approved", "fraud_score": 40})
    assert r.status_code == 200, r.text
    await demo.drain()
    assert await demo.inbox("ana", key) == []
    first, second = await demo.inbox("maria", key)
    assert [t["id"] for t in await demo.inbox("max", key)] == [first["id"], second["id"]]
    r = await demo.as_(
        "maria",
        "POST",
        f"/api/t/{TENANT}/tasks/{first['id']}/decide",
        json={"decision": "approved", "amount": "99999.00"},
    )
    assert r.status_code == 422 and "amount" in r.json()["errors"][0]["path"], r.text
    r = await demo.as_(
        "maria",
        "POST",
        f"/api/t/{TENANT}/tasks/{first['id']}/decide",
        json={"decision": "approved", "comment": "documents check out"},
    )
    assert r.status_code == 200, r.text
    assert await demo.inbox("maria", key) == []  # she voted: the other approval is not hers
    r = await demo.as_(
        "maria",
        "POST",
        f"/api/t/{TENANT}/tasks/{second['id']}/decide",
        json={"decision": "approved"},
    )
    assert r.status_code == 409  # one manager, one vote
    await demo.drain()
    assert (await demo.instance(claim))["status"] == "running"  # one manager is not enough
    r = await demo.as_(
        "max", "POST", f"/api/t/{TENANT}/tasks/{second['id']}/decide", json={"decision": "approved"}
    )
    assert r.status_code == 200, r.text
    await demo.drain()
    inst = await demo.instance(claim)
    assert inst["status"] == "completed"
    assert [v["by"] for v in inst["vars"]["approval"]["votes"]] == ["maria", "max"]
    assert inst["vars"]["review"] == {"status": "approved", "fraud_score": 40}
    assert (await demo.client.get(f"{DATA}/claim/{claim['id']}")).json()["status"] == "closed"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_late_review_escalates_to_a_manager(demo: Demo) -> None:
    platform = demo.platform
    tenant = await platform.tenants.get(TENANT)
    draft = await platform.metadata.get_draft(tenant, "claims")
    definition = dict(draft.definition)
    definition["workflows"]["claims_process"]["nodes"]["review"]["due"] = 0.2
    await platform.metadata.put_draft(tenant, "claims", definition)
    await platform.metadata.publish(tenant, "claims", OPERATOR)
    key = "CL-5000.00-FR"
    claim = await demo.claim("5000.00")
    assert len(await demo.inbox("ana", key)) == 1 and await demo.inbox("max", key) == []
    await asyncio.sleep(0.3)
    await demo.drain()
    [task] = await demo.inbox("max", key)
    assert await demo.inbox("ana", key) == []
    r = await demo.as_(
        "max", "POST", f"/api/t/{TENANT}/tasks/{task['id']}/complete", json={"status": "rejected"}
    )
    assert r.status_code == 200, r.text
    await demo.drain()
    inst = await demo.instance(claim)
    assert [s["node"] for s in inst["timeline"]][-2:] == ["reject", "rejected"]
    review = next(s for s in inst["timeline"] if s["node"] == "review")
    assert review["output"]["escalated_to"] == {"role": "manager"}
    assert (await demo.client.get(f"{DATA}/claim/{claim['id']}")).json()["status"] == "rejected"
