"""Done when: the demo's whole claims process (fraud scoring, review, two managers, payout,
webhooks), then the customer's erasure; then every table of the platform's and the tenant's
databases, every column, read generically: no encrypted field's plaintext anywhere, and no
trace of the erased subject outside opaque references."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from plinth.demo import TENANT
from plinth.server import Platform
from tests.workflows.test_claims_demo import (  # noqa: F401  (fixtures shared with the demo tests)
    DATA,
    Demo,
    demo,
    settings,
)

CARLA = {
    "full_name": "Carla Mendes-Oyelaran",
    "email": "carla@example.com",
    "phone": "+49 30 5550 1234",
    "date_of_birth": "1984-03-07",
    "country": "DE",
    "address": {"street": "Lindenstraße 12", "city": "Berlin", "postcode": "10115"},
}
CARLA_TRACES = [
    "Carla Mendes",
    "carla@example.com",
    "5550 1234",
    "1984-03-07",
    "Lindenstraße",
    "Bike stolen from the courtyard shed",
    "Kitchen fire after a power surge",
]
# Encrypted fields: their plaintext is nowhere, erased subject or not.
SECRETS = ["whiplash, neck brace", "sprained left wrist", "4111111111111111", "5500005555555559"]


async def _dump(platform: Platform) -> dict[str, str]:
    """Every table of the platform database and of the tenant's data, as text per table."""
    out: dict[str, str] = {}
    tenant = await platform.tenants.get(TENANT)
    targets = [(platform.db, None)]
    data_db = platform.records.storage.database(tenant)
    schema = platform.records.storage.schema(tenant)
    if data_db is not platform.db or schema is not None:
        targets.append((data_db, schema))
    for db, where in targets:
        async with db.read() as conn:
            names = await conn.run_sync(lambda c, s=where: sa.inspect(c).get_table_names(schema=s))
            for name in names:
                table = f'"{where}"."{name}"' if where else f'"{name}"'
                rows = (await conn.execute(sa.text(f"SELECT * FROM {table}"))).all()
                out[f"{where or 'platform'}.{name}"] = "\n".join(
                    " | ".join(_text(v) for v in row) for row in rows
                )
    return out


def _text(value: Any) -> str:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("latin-1")
    return str(value)


def _found(dump: dict[str, str], needles: list[str]) -> dict[str, list[str]]:
    hits: dict[str, list[str]] = {}
    for table, text in dump.items():
        lowered = text.lower()
        for needle in needles:
            if needle.lower() in lowered:
                hits.setdefault(needle, []).append(table)
    return hits


async def _claim(run: Demo, policy: str, amount: str, description: str, notes: str) -> str:
    r = await run.client.post(
        f"{DATA}/claim",
        json={
            "reference": f"CL-{amount}-{policy[:4]}",
            "policy": policy,
            "country": "DE",
            "incident_date": "2026-11-02",
            "description": description,
            "amount": amount,
            "health_notes": notes,
        },
    )
    assert r.status_code == 201, r.text
    await run.drain()
    return str(r.json()["id"])


async def _policy(run: Demo, holder: dict[str, Any], number: str) -> str:
    r = await run.client.post(f"{DATA}/policyholder", json=holder)
    assert r.status_code == 201, r.text
    r = await run.client.post(
        f"{DATA}/policy",
        json={
            "number": number,
            "holder": r.json()["id"],
            "product": "home",
            "starts_on": "2026-01-01",
        },
    )
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def test_after_the_claims_process_and_erasure_no_copy_keeps_what_it_must_not(
    demo: Demo,  # noqa: F811  (the shared fixture)
) -> None:
    api = f"/api/t/{TENANT}"
    carla = await _policy(demo, CARLA, "DE-000042")
    bo = await _policy(
        demo, {"full_name": "Bo Svensson", "email": "bo@example.com", "country": "DE"}, "DE-000007"
    )
    small = await _claim(
        demo, carla, "300.00", "Bike stolen from the courtyard shed", "whiplash, neck brace"
    )
    big = await _claim(demo, carla, "25000.00", "Kitchen fire after a power surge", "none")
    await _claim(demo, bo, "200.00", "Cracked windscreen on the A9", "sprained left wrist")
    # Work every inbox until the process has nothing left for people: reviews by the German
    # analyst (with form data), high-value approvals by both managers.
    worked, voted = 0, set()
    while True:
        todo = [
            (u, t)
            for u in ("dirk", "maria", "max")
            for t in await demo.inbox(u)
            if (u, t["step_id"]) not in voted  # one manager, one vote
        ]
        if not todo:
            break
        user, task = todo[0]
        voted.add((user, task["step_id"]))
        if task["kind"] == "approval":
            url, body = f"{api}/tasks/{task['id']}/decide", {"decision": "approved"}
        else:
            url, body = (
                f"{api}/tasks/{task['id']}/complete",
                {"status": "approved", "fraud_score": 12},
            )
        r = await demo.as_(user, "POST", url, json=body)
        assert r.status_code == 200, r.text
        await demo.drain()
        worked += 1
    assert worked >= 3  # a review and two managers' approvals at least
    payouts = (await demo.client.get(f"{DATA}/payout")).json()["items"]
    assert {p["claim"] for p in payouts} >= {small, big}
    for payout, card in zip(payouts, ("4111111111111111", "5500005555555559"), strict=False):
        r = await demo.client.patch(
            f"{DATA}/payout/{payout['id']}",
            json={"card_number": card, "iban": "DE89370400440532013000"},
        )
        assert r.status_code == 200, r.text
    await demo.drain()
    for claim in (small, big):
        assert (await demo.client.get(f"{DATA}/claim/{claim}")).json()["status"] == "closed"
    async with demo.platform.db.read() as conn:
        deliveries = (
            await conn.execute(sa.text("SELECT count(*) FROM integration_deliveries"))
        ).scalar()
    assert deliveries and deliveries > 5  # the claim_events webhook saw every write

    before = await _dump(demo.platform)
    assert _found(before, SECRETS) == {}, "encrypted values stored in clear"
    assert "Kitchen fire" in before[next(k for k in before if k.endswith("claims__claim"))]

    r = await demo.client.post(
        f"{api}/compliance/subjects/erase", json={"subject": "carla@example.com"}
    )
    assert r.status_code == 200, r.text
    report = r.json()
    sites = {s["site"]: s for s in report["copies"]}
    for site in ("workflows.instance_vars", "workflows.step_io", "integration.deliveries"):
        assert site in sites and sites[site]["action"], report["copies"]

    after = await _dump(demo.platform)
    assert _found(after, SECRETS) == {}
    assert _found(after, CARLA_TRACES) == {}, "the erased subject is still in these tables"
    # Bo was not erased: his records and their copies are untouched.
    assert _found(after, ["Cracked windscreen", "Bo Svensson"]).keys() == {
        "Cracked windscreen",
        "Bo Svensson",
    }


async def test_the_report_fails_a_copy_site_that_would_keep_protected_data_in_clear(
    demo: Demo,  # noqa: F811  (the shared fixture)
) -> None:
    from plinth.errors import PlinthError
    from plinth.governance.compliance.inventory import CopySite

    platform = demo.platform
    tenant = await platform.tenants.get(TENANT)
    report = await platform.compliance.report(tenant, country="DE")
    assert report["status"] == "pass", report
    sites = {s["site"] for s in report["inventory"]}
    assert {
        "workflows.instance_vars",
        "workflows.step_io",
        "workflows.task_data",
        "integration.deliveries",
        "governance.audit_details",
        "runtime.record_events",
        "extensions.metering",
    } <= sites
    # A layer that copied records into a cache of its own, in clear, and declared it so.
    platform.compliance.inventory.register(
        CopySite("reports.cache", "report_cache.rows", "rendered reports", "clear", "clear")
    )
    report = await platform.compliance.report(tenant, country="DE")
    assert report["status"] == "fail"
    [country] = report["apps"][0]["countries"]
    failing = [r for r in country["rules"] if r["status"] == "fail"]
    assert "gdpr.copies" in {r["id"] for r in failing}
    paths = {v["path"] for r in failing for v in r["violations"]}
    assert "inventory.reports.cache.entities.claim.fields.health_notes" in paths
    assert "inventory.reports.cache.entities.policyholder.fields.date_of_birth" in paths
    del platform.compliance.inventory.sites["reports.cache"]
    # A task form cannot hold a protected field: its data is kept in the workflow.
    draft = await platform.metadata.get_draft(tenant, "claims")
    definition = dict(draft.definition)
    review = definition["workflows"]["claims_process"]["nodes"]["review"]
    review["form"]["fields"] = ["status", "health_notes"]
    with pytest.raises(PlinthError) as refused:
        await platform.metadata.put_draft(tenant, "claims", definition)
    paths = [f.path for f in refused.value.faults]
    assert "workflows.claims_process.nodes.review.form.fields[1]" in paths, paths
