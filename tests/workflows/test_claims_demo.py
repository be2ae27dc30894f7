"""The demo claims workflow end to end through the real platform: the demo tenant and its
people (governance users with roles and countries), claims saved through the runtime API, the
fraud-scorer plugin the demo installs, the task inbox per user, two managers, SLA escalation."""

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
from plinth.server import Platform
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

    async def inbox(self, username: str) -> list[dict[str, Any]]:
        r = await self.as_(username, "GET", f"/api/t/{TENANT}/tasks")
        assert r.status_code == 200, r.text
        return list(r.json())

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
    lines = await load_demo(platform, OPERATOR)
    passwords = dict(re.findall(r"user (\w+) .*password: (\S+)", "\n".join(lines)))
    assert set(passwords) == {"ana", "dirk", "lucia", "maria", "max", "carla"}
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
    [payout] = (await demo.client.get(f"{DATA}/payout")).json()["items"]
    assert (payout["claim"], payout["amount"]) == (small["id"], "300.00")
    assert await demo.inbox("ana") == []
    # The demo's customer (DE) files claims and follows her country's, not this FR one.
    assert (await demo.as_("carla", "GET", f"{DATA}/claim")).json()["items"] == []
    r = await demo.as_(
        "carla",
        "POST",
        f"{DATA}/claim",
        json={
            "reference": "CL-CARLA-1",
            "policy": demo.policy,
            "country": "DE",
            "incident_date": "2026-11-20",
            "description": "Hail on the roof",
            "amount": "800.00",
        },
    )
    assert r.status_code == 201, r.text
    await demo.drain()

    claim = await demo.claim("25000.00", "Fire in the garage, suspicious origin")
    # Only the analyst of the claim's country sees the review; managers review nothing.
    assert [await demo.inbox(u) for u in ("dirk", "lucia", "maria")] == [[], [], []]
    [review] = await demo.inbox("ana")
    # The inbox says which app, workflow and claim the task is about.
    assert (review["app"], review["workflow"], review["business_key"]) == (
        "claims",
        "claims_process",
        "CL-25000.00-FR",
    )
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
    assert await demo.inbox("ana") == []
    first, second = await demo.inbox("maria")
    assert [t["id"] for t in await demo.inbox("max")] == [first["id"], second["id"]]
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
    claim = await demo.claim("5000.00")
    assert len(await demo.inbox("ana")) == 1 and await demo.inbox("max") == []
    await asyncio.sleep(0.3)
    await demo.drain()
    [task] = await demo.inbox("max")
    assert await demo.inbox("ana") == []
    r = await demo.as_(
        "max", "POST", f"/api/t/{TENANT}/tasks/{task['id']}/complete", json={"status": "rejected"}
    )
    assert r.status_code == 200, r.text
    await demo.drain()
    inst = await demo.instance(claim)
    assert [s["node"] for s in inst["timeline"]][-2:] == ["reject", "rejected"]
    assert inst["timeline"][3]["output"]["escalated_to"] == {"role": "manager"}
    assert (await demo.client.get(f"{DATA}/claim/{claim['id']}")).json()["status"] == "rejected"
