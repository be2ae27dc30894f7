"""Compliance at publish, fixes, waivers and reports, through the HTTP API, on both databases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from plinth.events import Event
from tests.governance.compliance.apps import bad_app
from tests.helpers import as_user, make_app, make_tenant, refusing, token_for


async def _tenant(client, slug="acme", countries=("DE", "BR")):
    await make_tenant(client, slug)
    r = await client.put(f"/api/t/{slug}/compliance/profile", json={"countries": list(countries)})
    assert r.status_code == 200, r.text


def _waiver(rule: str, days: int = 30, **kw):
    until = (datetime.now(UTC) + timedelta(days=days)).isoformat()
    return {
        "rule": rule,
        "reason": "Card vault migration finishes next month",
        "until": until,
        **kw,
    }


async def test_critical_violations_refuse_the_publish(client, policy_kind):
    await _tenant(client)
    await make_app(client, "acme", "shop", bad_app())
    r = await client.post("/api/t/acme/apps/shop/publish", json={})
    assert r.status_code == 409, r.text
    body = r.json()
    assert body["code"] == "publish_refused"
    found = {(v["rule"], v["path"]) for v in body["violations"]}
    assert ("pci_dss.sad_not_stored", "entities.payment.fields.cvv") in found
    assert ("gdpr.retention", "entities.customer.retention") in found
    assert ("lgpd.sensitive_basis", "entities.customer.lawful_basis") in found
    assert all(v["reference"] for v in body["violations"])
    assert {e["code"] for e in body["errors"]} >= {"pci_dss.sad_not_stored", "gdpr.retention"}
    assert body["remediation"]  # the fix is offered with the refusal
    assert (await client.get("/api/t/acme/apps/shop/versions")).json()["items"] == []


async def test_fix_is_a_dry_run_then_a_reviewable_draft_change(client, platform, policy_kind):
    await _tenant(client)
    await make_app(client, "acme", "shop", bad_app())
    before = (await client.get("/api/t/acme/apps/shop/draft")).json()
    r = await client.post("/api/t/acme/apps/shop/compliance/fix", json={})
    assert r.status_code == 200, r.text
    dry = r.json()
    assert dry["applied"] is False and dry["patch"]
    assert {"op": "remove", "path": "/entities/payment/fields/cvv"} in dry["patch"]
    assert [v["rule"] for v in dry["manual"]] == [
        "gdpr.special_category_basis",
        "lgpd.sensitive_basis",
    ]
    assert (await client.get("/api/t/acme/apps/shop/draft")).json()["revision"] == before[
        "revision"
    ]  # nothing changed yet

    seen: list[Event] = []

    async def listen(event: Event) -> None:
        seen.append(event)

    platform.events.subscribe("compliance.*", listen)
    r = await client.post("/api/t/acme/apps/shop/compliance/fix", json={"apply": True})
    assert r.json()["applied"] is True
    draft = (await client.get("/api/t/acme/apps/shop/draft")).json()
    assert draft["revision"] == before["revision"] + 1
    payment = draft["definition"]["entities"]["payment"]
    assert "cvv" not in payment["fields"]
    assert payment["fields"]["card_number"]["encrypted"] is True
    assert payment["fields"]["card_number"]["masked"] is True
    assert "customer_restricted_read" in draft["definition"]["policies"]
    diff = (await client.get("/api/t/acme/apps/shop/diff?from=0&to=draft")).status_code
    assert diff == 200
    assert [e.topic for e in seen] == ["compliance.fix"]

    # The lawful basis is a person's choice; with it, the app publishes.
    r = await client.patch(
        "/api/t/acme/apps/shop/draft",
        json=[
            {"op": "add", "path": "/entities/customer/lawful_basis", "value": "explicit_consent"}
        ],
    )
    assert r.status_code == 200
    r = await client.post("/api/t/acme/apps/shop/publish", json={})
    assert r.status_code == 201, r.text
    [step] = [s for s in r.json()["steps"] if s["step"] == "compliance"]
    assert step["status"] == "passed"


async def test_a_waiver_lets_a_publish_through_and_is_evidence(client, platform, policy_kind):
    await _tenant(client, countries=("US",))
    app = bad_app()
    del app["entities"]["customer"]  # only card data left
    await make_app(client, "acme", "cards", app)
    published: list[Event] = []

    async def listen(event: Event) -> None:
        published.append(event)

    platform.events.subscribe("compliance.waiver", listen)
    checked: list[Event] = []

    async def on_checked(event: Event) -> None:
        checked.append(event)

    platform.events.subscribe("compliance.checked", on_checked)
    r = await client.post("/api/t/acme/apps/cards/compliance/fix", json={"apply": True})
    assert r.status_code == 200
    # The SAD field was removed by the fix; put a PAN back without encryption, and waive it.
    r = await client.patch(
        "/api/t/acme/apps/cards/draft",
        json=[
            {
                "op": "replace",
                "path": "/entities/payment/fields/card_number",
                "value": {"type": "string", "classification": "pci.pan"},
            }
        ],
    )
    assert r.status_code == 200
    assert (await client.post("/api/t/acme/apps/cards/publish", json={})).status_code == 409

    bad = await client.post(
        "/api/t/acme/apps/cards/compliance/waivers",
        json={**_waiver("pci_dss.nope"), "reason": "x", "until": "2001-01-01T00:00:00Z"},
    )
    assert bad.status_code == 422
    assert {e["path"] for e in bad.json()["errors"]} == {"rule", "reason", "until"}
    viewer = await token_for(client, "acme", "viewer")
    r = await client.post(
        "/api/t/acme/apps/cards/compliance/waivers",
        json=_waiver("pci_dss.pan_encrypted"),
        headers=as_user(client, viewer),
    )
    assert r.status_code == 403

    r = await client.post(
        "/api/t/acme/apps/cards/compliance/waivers", json=_waiver("pci_dss.pan_encrypted")
    )
    assert r.status_code == 201, r.text
    waiver = r.json()
    assert [e.data["id"] for e in published] == [waiver["id"]]
    assert published[0].tenant_id and published[0].data["by"] and published[0].data["until"]

    r = await client.post("/api/t/acme/apps/cards/publish", json={})
    assert r.status_code == 201, r.text
    [step] = [s for s in r.json()["steps"] if s["step"] == "compliance"]
    assert any(m.get("waiver") == waiver["id"] for m in step["messages"])
    [event] = checked  # the refused publish announced nothing
    assert event.data["waived"] == ["pci_dss.pan_encrypted"]
    assert event.data["hash"] == r.json()["version"]["hash"]

    report = (await client.get("/api/t/acme/compliance/report?app=cards")).json()
    [app_report] = report["apps"]
    [us] = app_report["countries"]
    rules = {r["id"]: r for r in us["rules"]}
    assert rules["pci_dss.pan_encrypted"]["status"] == "waived"
    assert rules["pci_dss.sad_not_stored"]["status"] == "pass"
    assert us["status"] == "pass"
    evidence = app_report["evidence"]
    version = (await client.get("/api/t/acme/apps/cards/versions/1")).json()
    assert evidence["publish"]["hash"] == version["hash"]
    assert evidence["waivers"][0]["id"] == waiver["id"] and evidence["waivers"][0]["active"]
    assert evidence["fixes"][0]["rules"]

    # Another tenant sees none of it.
    await _tenant(client, "other", countries=("US",))
    r = await client.get("/api/t/other/apps/cards/compliance/waivers")
    assert r.status_code == 404


async def test_expired_waivers_no_longer_cover(client, platform, policy_kind):
    from plinth.governance.compliance import store
    from plinth.governance.compliance.models import Waiver

    await _tenant(client, countries=("US",))
    app = {
        "entities": {
            "card": {
                "fields": {"pan": {"type": "string", "classification": "pci.pan"}},
                "retention": {"days": 30},
                "audit_reads": True,
            }
        }
    }
    await make_app(client, "acme", "cards", app)
    tenant = await platform.tenants.get("acme")
    past = datetime.now(UTC) - timedelta(days=1)
    async with platform.db.transaction() as conn:  # an old waiver, as if recorded last year
        await store.insert_waiver(
            conn,
            Waiver(
                "w_old",
                tenant.id,
                "cards",
                "pci_dss.pan_encrypted",
                None,
                "old reason",
                "someone",
                past,
                past - timedelta(days=90),
            ),
        )
    r = await client.post("/api/t/acme/apps/cards/publish", json={})
    assert r.status_code == 409
    assert r.json()["violations"][0]["rule"] == "pci_dss.pan_encrypted"


async def test_report_per_country_as_json_and_html(client, platform):
    from plinth.demo import TENANT, load_demo
    from plinth.governance.principal import PLATFORM_ADMIN, Principal

    admin = Principal(id="t", kind="cli", roles=frozenset({PLATFORM_ADMIN}), name="t")
    await load_demo(platform, admin, seed=False)
    r = await client.get(f"/api/t/{TENANT}/compliance/report")
    assert r.status_code == 200, r.text
    report = r.json()
    assert report["status"] == "pass"  # the demo insurer is green
    [claims] = report["apps"]
    assert [c["country"] for c in claims["countries"]] == ["DE", "FR", "ES", "BR", "US"]
    assert {c["status"] for c in claims["countries"]} == {"pass"}
    assert claims["evidence"]["publish"]["version"] == 1
    assert claims["suggestions"] == []
    br = (await client.get(f"/api/t/{TENANT}/compliance/report?app=claims&country=BR")).json()
    assert br["apps"][0]["countries"][0]["packs"] == ["lgpd", "pci_dss"]
    html = await client.get(f"/api/t/{TENANT}/compliance/report?format=html")
    assert html.headers["content-type"].startswith("text/html")
    assert "LGPD art. 15 and 16" in html.text and "PASS" in html.text
    assert (await client.get(f"/api/t/{TENANT}/compliance/report?country=de")).status_code == 422


async def test_suggested_classes_are_warnings_at_publish(client):
    await _tenant(client)
    await make_app(
        client,
        "acme",
        "crm",
        {
            "entities": {
                "lead": {"fields": {"iban": {"type": "string"}, "date_of_birth": {"type": "date"}}}
            }
        },
    )
    r = await client.post("/api/t/acme/apps/crm/publish", json={})
    assert r.status_code == 201, r.text
    [step] = [s for s in r.json()["steps"] if s["step"] == "compliance"]
    assert step["status"] == "warning"
    assert {m["path"] for m in step["messages"] if m.get("code") == "classification_suggested"} == {
        "entities.lead.fields.iban.classification",
        "entities.lead.fields.date_of_birth.classification",
    }


async def test_waivers_and_profiles_stay_in_their_tenant(client, policy_kind):
    card_app = {
        "entities": {
            "card": {
                "fields": {"pan": {"type": "string", "classification": "pci.pan"}},
                "retention": {"days": 30},
                "audit_reads": True,
            }
        }
    }
    for slug in ("alpha", "beta"):
        await _tenant(client, slug, countries=("US",))
        await make_app(client, slug, "cards", card_app)
    r = await client.post(
        "/api/t/alpha/apps/cards/compliance/waivers", json=_waiver("pci_dss.pan_encrypted")
    )
    assert r.status_code == 201
    assert (await client.post("/api/t/alpha/apps/cards/publish", json={})).status_code == 201
    # beta's app of the same name is not covered by alpha's waiver
    assert (await client.post("/api/t/beta/apps/cards/publish", json={})).status_code == 409
    assert (await client.get("/api/t/beta/apps/cards/compliance/waivers")).json()["items"] == []
    beta_owner = await token_for(client, "beta", "owner")
    r = await client.get("/api/t/alpha/compliance/report", headers=as_user(client, beta_owner))
    assert r.status_code == 403
    # only platform admins decide where a tenant's data may live
    r = await client.put(
        "/api/t/beta/compliance/profile",
        json={"countries": ["CN"]},
        headers=as_user(client, beta_owner),
    )
    assert r.status_code == 403


async def test_rollback_is_checked_against_todays_profile(client, policy_kind):
    await _tenant(client, countries=())  # no country yet: only PCI DSS applies
    app = {"entities": {"lead": {"fields": {"name": {"type": "string", "classification": "pii"}}}}}
    await make_app(client, "acme", "crm", app)
    assert (await client.post("/api/t/acme/apps/crm/publish", json={})).status_code == 201
    app["entities"]["lead"]["retention"] = {"days": 365}
    await client.put("/api/t/acme/apps/crm/draft", json=app)
    assert (await client.post("/api/t/acme/apps/crm/publish", json={})).status_code == 201
    # The tenant now operates in Germany: version 1 (no retention) may not come back.
    await client.put("/api/t/acme/compliance/profile", json={"countries": ["DE"]})
    r = await client.post("/api/t/acme/apps/crm/rollback", json={"version": 1})
    assert r.status_code == 409
    assert {v["rule"] for v in r.json()["violations"]} == {"gdpr.retention"}


async def test_fix_can_classify_suggested_fields(client):
    await _tenant(client, countries=("SG",))
    await make_app(
        client,
        "acme",
        "crm",
        {
            "entities": {
                "lead": {"fields": {"email": {"type": "email"}, "card_number": {"type": "string"}}}
            }
        },
    )
    r = await client.post(
        "/api/t/acme/apps/crm/compliance/fix", json={"apply": True, "classify": True}
    )
    assert r.status_code == 200, r.text
    fields = (await client.get("/api/t/acme/apps/crm/draft")).json()["definition"]["entities"][
        "lead"
    ]["fields"]
    assert fields["email"]["classification"] == "pii"
    assert fields["card_number"]["classification"] == "pci.pan"
    # classifying revealed card data; the next fix protects it
    await client.post("/api/t/acme/apps/crm/compliance/fix", json={"apply": True})
    assert (await client.post("/api/t/acme/apps/crm/publish", json={})).status_code == 201


async def test_a_fix_the_ledger_cannot_record_leaves_the_draft_as_it_was(
    client, platform, policy_kind
):
    """The fix's draft change, its record and its `compliance.fix` entry commit together: the
    ledger refusing the entry answers 503 and the draft is not patched (it was, the 503
    saying "not made")."""
    await _tenant(client)
    await make_app(client, "acme", "shop", bad_app())
    before = (await client.get("/api/t/acme/apps/shop/draft")).json()
    async with refusing(platform, "compliance.fix"):
        r = await client.post("/api/t/acme/apps/shop/compliance/fix", json={"apply": True})
    assert r.status_code == 503 and r.json()["code"] == "audit_unavailable", r.text
    assert (await client.get("/api/t/acme/apps/shop/draft")).json() == before

    r = await client.post("/api/t/acme/apps/shop/compliance/fix", json={"apply": True})
    assert r.status_code == 200 and r.json()["applied"] is True, r.text
    tid = (await platform.tenants.get("acme")).id
    fixes = await platform.governance.audit.list(tid, action="compliance.fix")
    assert [e["data"]["revision"] for e in fixes] == [before["revision"] + 1]
    assert (await platform.governance.audit.verify(tid)).ok
