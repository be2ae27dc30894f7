"""The demo claims workflow end to end: auto-approval, review + two managers, SLA escalation."""

from __future__ import annotations

import asyncio
import copy
from pathlib import Path
from typing import Any

import yaml

from plinth.server import Platform
from tests.workflows.conftest import Harness, user

DEMO = Path(__file__).resolve().parents[2] / "src/plinth/demo/claims/workflows/claims_process.yaml"

ENTITIES = {
    "claim": {"fields": {
        "country": {"type": "enum", "values": ["DE", "FR"]},
        "amount": {"type": "decimal"}, "currency": {"type": "enum", "values": ["EUR"]},
        "status": {"type": "enum", "values": ["open", "approved", "rejected", "paid",
                                               "closed"]},
        "fraud_score": {"type": "integer"}}},
    "payout": {"fields": {"claim": {"type": "string"}, "amount": {"type": "decimal"},
                          "currency": {"type": "string"}}},
}


class Records:
    """Stand-in for the runtime records service (not merged yet): rows in a dict."""

    def __init__(self) -> None:
        self.rows: dict[str, dict[str, Any]] = {}

    async def create(self, tenant: Any, app: str, entity: str, data: dict[str, Any],
                     principal: Any) -> dict[str, Any]:
        rid = f"{entity}-{len(self.rows) + 1}"
        self.rows[rid] = {"id": rid, **data}
        return self.rows[rid]

    async def update(self, tenant: Any, app: str, entity: str, record_id: str,
                     changes: dict[str, Any], principal: Any) -> dict[str, Any]:
        self.rows[record_id].update(changes)
        return self.rows[record_id]


class Fraud:
    async def call_action(self, tenant: Any, plugin: str, action: str, input: dict[str, Any],
                          principal: Any) -> dict[str, Any]:
        assert (plugin, action) == ("fraud-scorer", "score")
        return {"score": 80 if "suspicious" in input["description"] else 10}


async def _setup(wf: Harness, platform: Platform, due: float | None = None) -> Records:
    doc = yaml.safe_load(DEMO.read_text())
    if due is not None:
        doc["nodes"]["review"]["due"] = due
    await wf.publish({"claims_process": doc}, entities=copy.deepcopy(ENTITIES))
    records = Records()
    platform.records = records  # type: ignore[attr-defined]
    platform.plugins = Fraud()  # type: ignore[attr-defined]
    return records


async def _claim(wf: Harness, records: Records, amount: str, **extra: Any) -> str:
    claim = await records.create(None, "claims", "claim", {
        "country": "FR", "amount": amount, "currency": "EUR", "status": "open",
        "description": "a burst pipe", **extra}, None)
    from plinth.events import Event

    await wf.platform.events.publish(Event("record.created", wf.tenant.id, {
        "app": "claims", "entity": "claim", "id": claim["id"], "before": None,
        "after": dict(claim), "by": "fnol"}))
    await wf.drain()
    [inst] = [i for i in await wf.platform.workflows.instances(
        wf.tenant, user(wf, "x", "owner")) if i["started_by"] == "fnol"
        and (await wf.get(i["id"]))["vars"]["record"]["id"] == claim["id"]]
    return str(inst["id"])


async def test_low_value_claim_is_auto_approved_and_paid(wf: Harness, platform: Platform) -> None:
    records = await _setup(wf, platform)
    iid = await _claim(wf, records, "300.00")
    inst = await wf.get(iid)
    assert inst["status"] == "completed"
    assert [s["node"] for s in inst["timeline"]] == [
        "triage", "facts", "route", "approve", "payout", "close", "closed"]
    claim = records.rows[inst["vars"]["record"]["id"]]
    assert claim["status"] == "closed"
    assert inst["vars"]["payout"]["amount"] == "300.00"


async def test_high_value_claim_needs_analyst_of_country_and_two_managers(
        wf: Harness, platform: Platform) -> None:
    records = await _setup(wf, platform)
    iid = await _claim(wf, records, "25000.00", description="suspicious fire")
    de, fr = user(wf, "dirk", country="DE"), user(wf, "ana", country="FR")
    assert await wf.tasks(de) == []
    [review] = await wf.tasks(fr)
    await platform.workflows.complete(wf.tenant, review["id"], fr, {"status": "approved"})
    await wf.drain()
    m1, m2 = user(wf, "m1", "manager"), user(wf, "m2", "manager")
    first, second = await wf.tasks(m1)
    await platform.workflows.complete(wf.tenant, first["id"], m1, decision="approved",
                                      comment="documents check out")
    await wf.drain()
    assert (await wf.get(iid))["status"] == "running"  # one manager is not enough
    await platform.workflows.complete(wf.tenant, second["id"], m2, decision="approved")
    await wf.drain()
    inst = await wf.get(iid)
    assert inst["status"] == "completed"
    assert records.rows[inst["vars"]["record"]["id"]]["status"] == "closed"
    assert [v["by"] for v in inst["vars"]["approval"]["votes"]] == ["m1", "m2"]


async def test_late_review_escalates_to_a_manager(wf: Harness, platform: Platform) -> None:
    records = await _setup(wf, platform, due=0.2)
    iid = await _claim(wf, records, "5000.00")
    fr, boss = user(wf, "ana", country="FR"), user(wf, "boss", "manager")
    assert len(await wf.tasks(fr)) == 1 and await wf.tasks(boss) == []
    await asyncio.sleep(0.3)
    await wf.drain()
    [task] = await wf.tasks(boss)
    assert await wf.tasks(fr) == []
    await platform.workflows.complete(wf.tenant, task["id"], boss, {"status": "rejected"})
    await wf.drain()
    inst = await wf.get(iid)
    assert [s["node"] for s in inst["timeline"]][-2:] == ["reject", "rejected"]
    assert inst["timeline"][3]["output"]["escalated_to"] == {"role": "manager"}
