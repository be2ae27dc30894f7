"""The demo insurer installs the fraud scorer, and its claims workflow's triage really scores."""

from __future__ import annotations

from pathlib import Path

import pytest

from plinth.demo import TENANT, load_demo
from plinth.server import Platform
from tests.extensions.conftest import ADMIN


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_demo_installs_the_fraud_scorer_and_triage_scores_claims(
        platform: Platform, components: dict[str, Path]) -> None:
    # `components` built the plugin into the shared cache: the demo reuses it, never rebuilds.
    lines = await load_demo(platform, ADMIN)
    assert lines[-1] == "plugin fraud-scorer 1.0.0 installed (action, before-write)"
    [inst] = await platform.plugins.installations(TENANT)
    assert (inst.name, inst.capabilities) == ("fraud-scorer", ("log",))
    again = await load_demo(platform, ADMIN)  # idempotent
    assert again[-1].endswith("installed (action, before-write), up to date")

    tenant = await platform.tenants.get(TENANT)
    records = platform.records
    holder = await records.create(tenant, "claims", "policyholder",
                                  {"full_name": "Maria Schmidt", "country": "DE"}, ADMIN)
    policy = await records.create(tenant, "claims", "policy", {
        "number": "DE-123456", "holder": holder["id"], "product": "motor",
        "starts_on": "2026-01-01"}, ADMIN)
    claim = await records.create(tenant, "claims", "claim", {
        "reference": "CL-1", "policy": policy["id"], "country": "DE",
        "incident_date": "2026-11-01", "amount": "60000",
        "description": "Total loss, cash only: the car was stolen"}, ADMIN)
    await platform.workflows.engine.drain()

    [started] = await platform.workflows.instances(tenant, ADMIN)
    inst_ = await platform.workflows.instance(tenant, started["id"], ADMIN)
    assert inst_["vars"]["record"]["id"] == claim["id"]
    triage = next(s for s in inst_["timeline"] if s["node"] == "triage")
    assert triage["status"] == "completed", triage["error"]
    assert triage["output"]["result"]["level"] == "high"
    assert triage["output"]["result"]["score"] >= 70
    assert "mentions 'stolen'" in triage["output"]["result"]["reasons"]
    # A high score sends the claim to an analyst of its country, not to auto-approval.
    assert [s["node"] for s in inst_["timeline"]][:4] == ["triage", "facts", "route", "review"]
    metering = await platform.plugins.metering(TENANT)
    assert [(c["plugin"], c["target"], c["outcome"]) for c in metering["calls"]] == [
        ("fraud-scorer", "score", "ok")]
