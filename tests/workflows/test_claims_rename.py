"""Renaming `claim.amount` in the demo: the refactoring rewrites every reference and the next
claim is still scored at triage; a plain rename is refused naming every referring path (before
this, it published and every new claim failed at triage with `Key not found in map`)."""

from __future__ import annotations

import copy

from plinth.demo import TENANT
from plinth.metadata import store
from plinth.metadata.models import Draft
from plinth.server import Platform
from tests.workflows import test_claims_demo
from tests.workflows.test_claims_demo import Demo

# The demo's fixtures: the loaded demo tenant and settings with the plugin cache.
demo = test_claims_demo.demo
settings = test_claims_demo.settings

APP = f"/api/t/{TENANT}/apps/claims"
DATA = f"{APP}/data"

REFERRING = [
    "pages.claim_detail.components.detail.props.fields[5]",
    "pages.claims.components.table.props.columns[3]",
    "pages.file_claim.components.form.props.fields[5]",
    "workflows.claims_process.nodes.decided.branches[1].when",
    "workflows.claims_process.nodes.facts.set.amount",
    "workflows.claims_process.nodes.managers.form.show[1]",
    "workflows.claims_process.nodes.payout.input.amount",
    "workflows.claims_process.nodes.review.form.show[2]",
    "workflows.claims_process.nodes.triage.input.amount",
]


def _plain_rename(definition: dict, old: str, new: str) -> dict:
    broken = copy.deepcopy(definition)
    fields = broken["entities"]["claim"]["fields"]
    broken["entities"]["claim"]["fields"] = {(new if k == old else k): v for k, v in fields.items()}
    return broken


async def test_renaming_a_field_rewrites_every_reference_and_triage_still_scores(
    demo: Demo,  # noqa: F811
) -> None:
    client = demo.client
    draft = (await client.get(f"{APP}/draft")).json()["definition"]
    field_id = draft["entities"]["claim"]["fields"]["amount"]["id"]
    r = await client.post(
        f"{APP}/draft/refactor/rename-field",
        json={"entity": "claim", "field_id": field_id, "to": "claimed_amount"},
    )
    assert r.status_code == 200, r.text
    assert r.json()["from"] == "amount" and r.json()["rewritten"] == REFERRING
    renamed = (await client.get(f"{APP}/draft")).json()["definition"]
    nodes = renamed["workflows"]["claims_process"]["nodes"]
    assert nodes["triage"]["input"]["amount"] == "double(vars.record.claimed_amount)"
    assert nodes["review"]["form"]["show"][2] == "claimed_amount"
    assert list(renamed["entities"]["claim"]["fields"])[5] == "claimed_amount"  # order kept
    assert renamed["entities"]["claim"]["fields"]["claimed_amount"]["id"] == field_id
    r = await client.post(f"{APP}/publish", json={})
    assert r.status_code == 201, r.text

    # The next claim is scored at triage and approved automatically, as before the rename.
    r = await client.post(
        f"{DATA}/claim",
        json={
            "reference": "CL-RENAMED-1",
            "policy": demo.policy,
            "country": "FR",
            "incident_date": "2026-11-02",
            "description": "Water damage in the kitchen",
            "claimed_amount": "300.00",
        },
    )
    assert r.status_code == 201, r.text
    claim = r.json()
    await demo.drain()
    inst = await demo.instance(claim)
    assert inst["status"] == "completed", inst.get("error")
    assert inst["vars"]["fraud"]["level"] == "low"
    assert inst["vars"]["amount"] == 300.0
    payouts = (await client.get(f"{DATA}/payout?limit=100")).json()["items"]
    [payout] = [p for p in payouts if p["claim"] == claim["id"]]
    assert payout["amount"] == "300.00"

    # Unknown id, taken name: typed refusals.
    r = await client.post(
        f"{APP}/draft/refactor/rename-field",
        json={"entity": "claim", "field_id": "fld_nope", "to": "x"},
    )
    assert r.status_code == 404 and r.json()["path"] == "field_id"
    r = await client.post(
        f"{APP}/draft/refactor/rename-field",
        json={"entity": "claim", "field_id": field_id, "to": "currency"},
    )
    assert r.status_code == 409 and r.json()["path"] == "to"


async def test_a_plain_rename_is_refused_naming_every_referring_path(
    demo: Demo,  # noqa: F811
    platform: Platform,
) -> None:
    client = demo.client
    draft = (await client.get(f"{APP}/draft")).json()["definition"]
    broken = _plain_rename(draft, "amount", "claimed_amount")
    r = await client.put(f"{APP}/draft", json=broken)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert sorted(e["path"] for e in r.json()["errors"]) == REFERRING
    triage = next(e for e in r.json()["errors"] if e["path"].endswith("triage.input.amount"))
    assert triage["message"] == (
        "entity 'claim' has no field 'amount' (did you mean 'claimed_amount'?)"
    )

    # A draft stored before these checks existed is refused at publish, with every path.
    tenant = await platform.tenants.get(TENANT)
    app = await platform.metadata.get_app(tenant, "claims")
    current = await platform.metadata.get_draft(tenant, "claims")
    async with platform.db.transaction() as conn:
        stale = Draft(app.id, broken, current.revision + 1, current.updated_at, "old")
        assert await store.write_draft(conn, stale, expected_revision=current.revision)
    r = await client.post(f"{APP}/publish", json={})
    assert r.status_code == 422, r.text
    assert sorted(e["path"] for e in r.json()["errors"]) == REFERRING
    # ... and nothing was published: claims still file with `amount` and are scored.
    small = await demo.claim("300.00")
    assert (await demo.instance(small))["status"] == "completed"


async def test_policy_field_ids_follow_a_rename(demo: Demo) -> None:  # noqa: F811
    client = demo.client
    draft = (await client.get(f"{APP}/draft")).json()["definition"]
    field_id = draft["entities"]["claim"]["fields"]["health_notes"]["id"]
    r = await client.post(
        f"{APP}/draft/refactor/rename-field",
        json={"entity": "claim", "field_id": field_id, "to": "medical_notes"},
    )
    assert r.status_code == 200, r.text
    assert "policies.health_data_claims_team.cedar" in r.json()["rewritten"]
    cedar = (await client.get(f"{APP}/draft")).json()["definition"]["policies"][
        "health_data_claims_team"
    ]["cedar"]
    assert 'Field::"claim.medical_notes"' in cedar and 'Field::"claim.health_notes"' not in cedar
    # the country field is read by a policy statement about claims (`resource.country`)
    field_id = draft["entities"]["claim"]["fields"]["country"]["id"]
    r = await client.post(
        f"{APP}/draft/refactor/rename-field",
        json={"entity": "claim", "field_id": field_id, "to": "loss_country"},
    )
    assert r.status_code == 200, r.text
    assert "policies.analysts_own_country.cedar" in r.json()["rewritten"]
    assert (await client.post(f"{APP}/publish", json={})).status_code == 201
