"""Each pack's rules trigger on a bad app and pass on a good one; fixes make bad apps pass."""

from __future__ import annotations

import jsonpatch
import pytest

from plinth.errors import ValidationFailed
from plinth.governance.compliance import engine, mask, suggestions
from plinth.governance.compliance import packs as registry
from plinth.governance.compliance.models import CheckContext
from plinth.metadata import definition as definitions
from tests.governance.compliance.apps import bad_app, good_app, profile

LOCATIONS = {"default": "eu-central", "cn": "cn", "sg": "sg"}

# pack -> (countries of the profile, tenant regions, rule ids the bad app breaks)
CASES = {
    "gdpr": (
        ("DE",),
        ("default",),
        {
            "gdpr.retention",
            "gdpr.special_category_basis",
            "gdpr.restricted_reads",
            "gdpr.audit_reads",
            "gdpr.encrypt_sensitive",
            "gdpr.subject_country",
        },
    ),
    "uk_gdpr": (
        ("GB",),
        ("default",),
        {
            "uk_gdpr.retention",
            "uk_gdpr.special_category_basis",
            "uk_gdpr.restricted_reads",
            "uk_gdpr.audit_reads",
        },
    ),
    "ccpa": (
        ("US",),
        ("default",),
        {"ccpa.retention", "ccpa.sensitive_limited", "ccpa.security", "ccpa.audit_reads"},
    ),
    "lgpd": (
        ("BR",),
        ("default",),
        {"lgpd.retention", "lgpd.sensitive_basis", "lgpd.restricted_reads", "lgpd.audit_reads"},
    ),
    "pipl": (
        ("CN",),
        ("default",),
        {
            "pipl.residency",
            "pipl.subject_country",
            "pipl.retention",
            "pipl.sensitive_basis",
            "pipl.restricted_reads",
        },
    ),
    "pdpa": (("SG",), ("default",), {"pdpa.retention", "pdpa.protection", "pdpa.restricted_reads"}),
    "pci_dss": (
        (),
        ("default",),
        {
            "pci_dss.sad_not_stored",
            "pci_dss.pan_encrypted",
            "pci_dss.pan_retention",
            "pci_dss.audit_reads",
            "pci_dss.credentials_encrypted",
        },
    ),
}
GOOD_REGIONS = {"pipl": ("default", "cn")}


def _check(pack_id, definition, countries, regions, **kw):
    pack = registry.get(pack_id)
    assert pack is not None
    ctx = CheckContext(definition, profile(*countries, regions=regions, **kw), LOCATIONS, regions)
    return engine.evaluate([pack], ctx)


def test_every_required_pack_exists():
    assert set(CASES) == set(registry.all_packs())
    for pack in registry.all_packs().values():
        for rule in pack.rules:
            assert rule.id.startswith(pack.id + ".") and rule.reference


@pytest.mark.parametrize("pack_id", sorted(CASES))
def test_rules_trigger_on_a_bad_app(pack_id, policy_kind):
    countries, regions, expected = CASES[pack_id]
    outcome = _check(pack_id, bad_app(), countries, regions)
    assert {v.rule for v in outcome.violations} == expected
    assert all(outcome.status_of(rule) == "fail" for rule in expected)
    for v in outcome.violations:  # every violation names where, and which law
        assert v.path.startswith(("entities.", "compliance.")) and v.reference


@pytest.mark.parametrize("pack_id", sorted(CASES))
def test_rules_pass_on_a_good_app(pack_id, policy_kind):
    countries, _, _ = CASES[pack_id]
    regions = GOOD_REGIONS.get(pack_id, ("default",))
    definitions.check(good_app())  # the good app is a valid definition
    outcome = _check(pack_id, good_app(), countries, regions)
    assert outcome.violations == []


def test_the_violations_point_at_the_fault(policy_kind):
    outcome = _check("pci_dss", bad_app(), (), ("default",))
    by_rule = {v.rule: v for v in outcome.violations}
    assert by_rule["pci_dss.sad_not_stored"].path == "entities.payment.fields.cvv"
    assert by_rule["pci_dss.pan_encrypted"].path == "entities.payment.fields.card_number"
    assert "encrypted and masked" in by_rule["pci_dss.pan_encrypted"].message
    assert by_rule["pci_dss.pan_encrypted"].reference == "PCI DSS 3.4.1 and 3.5.1"


def test_residency_needs_a_region_in_the_country(policy_kind):
    outcome = _check("pipl", good_app(), ("CN",), ("default",))
    [v] = outcome.violations
    assert v.rule == "pipl.residency" and v.path == "compliance.regions"
    assert "must be stored in cn" in v.message
    # a self-imposed residency (DE data in eu-central only) is checked for any pack's country
    ok = _check("gdpr", good_app(), ("DE",), ("default",), residency={"DE": ("eu-central",)})
    assert ok.violations == []
    bad = _check("gdpr", good_app(), ("DE",), ("cn",), residency={"DE": ("eu-central",)})
    assert [v.rule for v in bad.violations] == ["gdpr.residency"]


@pytest.mark.parametrize("pack_id", sorted(CASES))
def test_remediation_turns_a_failing_app_into_a_passing_one(pack_id, policy_kind):
    countries, regions, _ = CASES[pack_id]
    regions = GOOD_REGIONS.get(pack_id, regions)
    app = bad_app()
    app["entities"]["customer"]["lawful_basis"] = "explicit_consent"  # a person's decision
    before = _check(pack_id, app, countries, regions)
    assert before.violations and all(v.patch for v in before.violations)
    fixed = jsonpatch.JsonPatch(before.remediation()).apply(app)
    definitions.check(fixed)
    after = _check(pack_id, fixed, countries, regions)
    assert after.violations == []


def test_all_packs_together_fix_in_one_patch(policy_kind):
    packs = list(registry.all_packs().values())
    app = bad_app()
    app["entities"]["customer"]["lawful_basis"] = "explicit_consent"
    ctx = CheckContext(
        app,
        profile("DE", "GB", "US", "BR", "CN", "SG", regions=("default", "cn")),
        LOCATIONS,
        ("default", "cn"),
    )
    outcome = engine.evaluate(packs, ctx)
    patch = outcome.remediation()
    assert patch[-1] == {"op": "remove", "path": "/entities/payment/fields/cvv"}
    fixed = jsonpatch.JsonPatch(patch).apply(app)
    ctx = CheckContext(fixed, ctx.profile, LOCATIONS, ("default", "cn"))
    assert engine.evaluate(packs, ctx).violations == []


def test_lawful_basis_is_never_chosen_automatically(policy_kind):
    outcome = _check("gdpr", bad_app(), ("DE",), ("default",))
    [basis] = [v for v in outcome.violations if v.rule == "gdpr.special_category_basis"]
    assert basis.patch == () and basis.path == "entities.customer.lawful_basis"


async def test_packs_run_in_parallel_with_the_same_result(policy_kind):
    packs = list(registry.all_packs().values())
    ctx = CheckContext(bad_app(), profile("DE", "BR", "US"), LOCATIONS, ("default",))
    together = await engine.evaluate_parallel(packs, ctx)
    assert together.violations == engine.evaluate(packs, ctx).violations


def test_applicable_packs_follow_the_profile():
    ids = [p.id for p in registry.applicable(profile("DE", "FR", "BR", "US"))]
    assert ids == ["gdpr", "ccpa", "lgpd", "pci_dss"]
    assert [p.id for p in registry.applicable(profile("DE", "BR"), "BR")] == ["lgpd", "pci_dss"]
    assert [p.id for p in registry.applicable(profile("DE", jurisdictions=("pdpa",)))] == ["pdpa"]


def test_classes_are_suggested_from_names_and_types():
    app = {
        "entities": {
            "person": {
                "fields": {
                    "iban": {"type": "string"},
                    "date_of_birth": {"type": "date"},
                    "card_number": {"type": "string"},
                    "cvv": {"type": "string"},
                    "contact": {"type": "email"},
                    "mobile_phone": {"type": "string"},
                    "passport_no": {"type": "string"},
                    "health_status": {"type": "text"},
                    "api_key": {"type": "string"},
                    "amount": {"type": "decimal"},
                    "email": {"type": "email", "classification": "none"},  # decided by a person
                }
            }
        }
    }
    found = {s["path"].split(".")[3]: s["classification"] for s in suggestions(app)}
    assert found == {
        "iban": "financial",
        "date_of_birth": "pii",
        "card_number": "pci.pan",
        "cvv": "pci.sad",
        "contact": "pii",
        "mobile_phone": "pii",
        "passport_no": "pii",
        "health_status": "pii.sensitive",
        "api_key": "credential",
    }


def test_mask_keeps_only_what_may_be_shown():
    assert mask("4111 1111 1111 1234", {"classification": "pci.pan"}) == "************1234"
    assert mask("DE89370400440532013000", {"classification": "financial"}).endswith("3000")
    assert "3704" not in mask("DE89370400440532013000", {"classification": "financial"})
    assert mask("s3cret-value", {"classification": "credential"}) == "********"
    assert mask("ana@example.com", {"type": "email", "classification": "pii"}) == "a***@example.com"
    assert mask("Ana Lima", {"classification": "pii"}) == "A*******"
    assert mask(None, {"classification": "pii"}) is None


def test_compliance_keys_are_checked_with_paths():
    app = bad_app()
    app["entities"]["customer"]["retention"] = {"days": 0, "action": "shred"}
    with pytest.raises(ValidationFailed) as err:
        definitions.check(app)
    paths = {f.path for f in err.value.faults}
    assert {"entities.customer.retention.days", "entities.customer.retention.action"} <= paths
    app = bad_app()
    app["entities"]["customer"].update(
        subject={"country_field": "nation"}, retention={"days": 30, "field": "full_name"}
    )
    with pytest.raises(ValidationFailed) as err:
        definitions.check(app)
    assert {f.path for f in err.value.faults} == {
        "entities.customer.subject.country_field",
        "entities.customer.retention.field",
    }


def test_enforcement_seams_follow_the_metadata():
    from datetime import UTC, datetime

    from plinth.governance.compliance.enforcement import (
        Protection,
        anonymise,
        retention_due,
        subject_country,
    )

    app = good_app()
    customer = app["entities"]["customer"]
    protection = Protection.of(customer)
    assert protection.encrypt == ("health", "password") and protection.mask == ("health",)
    assert protection.audit_reads
    record = {"full_name": "Ana", "country": "BR", "health": "x", "password": "p"}
    assert subject_country(customer, record, profile("DE")) == "BR"
    assert subject_country(app["entities"]["payment"], {}, profile("DE")) == "DE"
    assert anonymise(customer, record) == {
        "full_name": None,
        "country": "BR",
        "health": None,
        "password": None,
    }
    now = datetime(2030, 1, 1, tzinfo=UTC)
    column, cutoff, action = retention_due(customer, now)
    assert (column, action) == ("created_at", "anonymise") and cutoff.year == 2020


def test_a_policy_must_state_a_rule_about_the_entity():
    from plinth.governance.compliance.policies import policy_mentions, restricting_policy

    assert policy_mentions({"p": restricting_policy("claim")}, "claim")
    assert not policy_mentions({"p": restricting_policy("claim")}, "claims")
    assert not policy_mentions({"p": {"cedar": "// TODO: forbid reads of claim\n"}}, "claim")
    assert not policy_mentions({"p": {"cedar": "permit (principal, action, resource);"}}, "claim")


def test_policy_rules_are_unchecked_without_the_policy_kind():
    # A platform without governance's policy kind (whatever this process has installed).
    pack = registry.get("gdpr")
    assert pack is not None
    ctx = CheckContext(
        bad_app(),
        profile("DE", regions=("default",)),
        LOCATIONS,
        ("default",),
        sections=frozenset({"entities", "pages", "components"}),
    )
    outcome = engine.evaluate([pack], ctx)
    assert outcome.status_of("gdpr.restricted_reads") == "unchecked"
    assert "gdpr.restricted_reads" not in {v.rule for v in outcome.violations}
