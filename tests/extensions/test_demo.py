"""The demo insurer installs the fraud scorer, and its claims workflow's triage really scores."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from plinth.demo import TENANT, load_demo
from plinth.errors import ValidationFailed
from plinth.server import Platform
from tests.extensions.conftest import ADMIN


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_demo_installs_the_fraud_scorer_and_triage_scores_claims(
    platform: Platform, components: dict[str, Path]
) -> None:
    # `components` built the plugin into the shared cache: the demo reuses it, never rebuilds.
    lines = await load_demo(platform, ADMIN, seed=False)
    # Installed before the claims app is published (its workflow's triage calls the plugin).
    installed = "plugin fraud-scorer 1.1.0 installed (action, before-write, component)"
    assert lines.index(installed) < (
        next(i for i, line in enumerate(lines) if line.startswith(f"app {TENANT}/claims"))
    )
    [inst] = await platform.plugins.installations(TENANT)
    assert (inst.name, inst.capabilities) == ("fraud-scorer", ("log", "ui"))
    again = await load_demo(platform, ADMIN, seed=False)  # idempotent
    assert any(x.endswith("installed (action, before-write, component), up to date") for x in again)
    # Its <fraud-badge> is offered to the tenant's portal, by the module's hash.
    [badge] = await platform.plugins.ui_components(TENANT)
    assert badge["kind"] == "plugin:fraud-scorer/fraud-badge"
    assert badge["url"].startswith(f"/a/{TENANT}/-/plugins/fraud-scorer/")

    tenant = await platform.tenants.get(TENANT)
    records = platform.records
    holder = await records.create(
        tenant, "claims", "policyholder", {"full_name": "Maria Schmidt", "country": "DE"}, ADMIN
    )
    policy = await records.create(
        tenant,
        "claims",
        "policy",
        {
            "number": "DE-123456",
            "holder": holder["id"],
            "product": "motor",
            "starts_on": "2026-01-01",
        },
        ADMIN,
    )
    base = {"policy": policy["id"], "country": "DE", "incident_date": "2026-11-01"}
    # The before-write hook refuses a very risky claim at save, naming the field.
    with pytest.raises(ValidationFailed) as refused:
        await records.create(
            tenant,
            "claims",
            "claim",
            {
                **base,
                "reference": "CL-0",
                "amount": "60000",
                "description": "Total loss, cash only: the car was stolen",
            },
            ADMIN,
        )
    assert refused.value.faults[0].path == "amount"
    assert "Fraud risk too high" in refused.value.faults[0].message
    # A medium one is saved with the hook's score, and the workflow's triage scores it too.
    claim = await records.create(
        tenant,
        "claims",
        "claim",
        {
            **base,
            "reference": "CL-1",
            "amount": "25000",
            "description": "The car was stolen from the street",
        },
        ADMIN,
    )
    assert claim["fraud_score"] == 40
    await platform.workflows.engine.drain()

    [started] = await platform.workflows.instances(tenant, ADMIN)
    inst_ = await platform.workflows.instance(tenant, started["id"], ADMIN)
    assert inst_["vars"]["record"]["id"] == claim["id"]
    triage = next(s for s in inst_["timeline"] if s["node"] == "triage")
    assert triage["status"] == "completed", triage["error"]
    assert triage["output"]["result"] == {
        "score": 40,
        "level": "medium",
        "reasons": ["amount above 10,000", "round amount", "mentions 'stolen'"],
    }
    # Not clean enough to approve automatically: an analyst of the claim's country reviews it.
    assert [s["node"] for s in inst_["timeline"]][:5] == [
        "triage",
        "facts",
        "route",
        "under_review",
        "review",
    ]
    metering = await platform.plugins.metering(TENANT)
    assert [(c["point"], c["target"], c["outcome"]) for c in reversed(metering["calls"])] == [
        ("before-write", "claims.claim", "rejected"),
        ("before-write", "claims.claim", "ok"),
        ("action", "score", "ok"),
        ("before-write", "claims.claim", "ok"),  # marking it in review passes the hook too
    ]
    assert all(c["peak_memory"] > 0 for c in metering["calls"])


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_an_invalid_claim_is_refused_before_the_fraud_hook_runs(
    platform: Platform, client: Any, components: dict[str, Path]
) -> None:
    # The fraud scorer raises ValueError on a non-number amount: bad input must never reach it.
    await load_demo(platform, ADMIN, seed=False)
    base = f"/api/t/{TENANT}/apps/claims/data"
    r = await client.post(f"{base}/claim", json={"amount": "abc"})
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert "amount" in {e["path"] for e in r.json()["errors"]}
    calls = (await client.get(f"/api/t/{TENANT}/plugins/metering")).json()["calls"]
    assert [c for c in calls if c["point"] == "before-write"] == []
