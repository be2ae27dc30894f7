"""The checks packs are made of: pure functions over a CheckContext, each with its fix.

A pack file picks the checks its law requires and gives them ids, severities and references;
the checks themselves are shared, since many laws ask the same of the same metadata.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from plinth.governance.compliance.models import (
    PERSONAL,
    SENSITIVE,
    CheckContext,
    Finding,
    Rule,
    Severity,
)
from plinth.governance.compliance.policies import policy_mentions, restricting_policy

Check = Callable[[CheckContext], list[Finding]]
DEFAULT_RETENTION_DAYS = 3650  # insurers keep claim files about ten years (limitation periods)


def classes_of(entity: dict[str, Any]) -> dict[str, str]:
    """field name -> data class, for the classified fields of an entity."""
    return {
        name: spec["classification"]
        for name, spec in entity.get("fields", {}).items()
        if spec.get("classification", "none") != "none"
    }


def _holding(ctx: CheckContext, classes: Iterable[str]) -> Iterable[tuple[str, dict[str, Any]]]:
    wanted = set(classes)
    for name, entity in ctx.entities().items():
        if wanted & set(classes_of(entity).values()):
            yield name, entity


def rule(id: str, title: str, severity: Severity, reference: str, check: Check) -> Rule:
    return Rule(id, title, severity, reference, check, getattr(check, "needs", None))


# -- retention (storage limitation) -----------------------------------------------------------


def retention(days: int = DEFAULT_RETENTION_DAYS, classes: frozenset[str] = PERSONAL) -> Check:
    """Entities holding these classes declare how long their records are kept."""

    def check(ctx: CheckContext) -> list[Finding]:
        return [
            Finding(
                f"entities.{name}.retention",
                f"{name} holds personal data but declares no retention period",
                (
                    {
                        "op": "add",
                        "path": f"/entities/{name}/retention",
                        "value": {"days": days, "action": "anonymise", "field": "created_at"},
                    },
                ),
            )
            for name, entity in _holding(ctx, classes)
            if "retention" not in entity
        ]

    return check


# -- lawful basis ------------------------------------------------------------------------------


def lawful_basis(classes: frozenset[str] = SENSITIVE) -> Check:
    """Entities holding these classes name the lawful basis of processing (no automatic fix:
    choosing a legal ground is a decision for a person)."""

    def check(ctx: CheckContext) -> list[Finding]:
        return [
            Finding(
                f"entities.{name}.lawful_basis",
                f"{name} holds {', '.join(sorted(set(classes_of(entity).values()) & classes))}"
                " data but names no lawful basis",
            )
            for name, entity in _holding(ctx, classes)
            if not entity.get("lawful_basis")
        ]

    return check


# -- restricted reads --------------------------------------------------------------------------


def restricted_reads(classes: frozenset[str] = SENSITIVE) -> Check:
    """Entities holding these classes have a policy restricting who reads them."""

    def check(ctx: CheckContext) -> list[Finding]:
        found = []
        for name, _entity in _holding(ctx, classes):
            if policy_mentions(ctx.policies(), name):
                continue
            ops: tuple[dict[str, Any], ...] = ()
            if "policies" in ctx.definition:
                ops = (
                    {
                        "op": "add",
                        "path": f"/policies/{name}_restricted_read",
                        "value": restricting_policy(name),
                    },
                )
            else:
                ops = (
                    {
                        "op": "add",
                        "path": "/policies",
                        "value": {f"{name}_restricted_read": restricting_policy(name)},
                    },
                )
            found.append(
                Finding(
                    f"entities.{name}",
                    f"{name} holds sensitive data but no policy restricts who reads it",
                    ops,
                )
            )
        return found

    # Without governance's policy kind an app cannot hold a policy: the engine reports the
    # rule as unchecked rather than failing every app or passing it silently.
    check.needs = "policies"  # type: ignore[attr-defined]
    return check


# -- audit of reads ----------------------------------------------------------------------------


def audited_reads(classes: frozenset[str] = SENSITIVE) -> Check:
    def check(ctx: CheckContext) -> list[Finding]:
        return [
            Finding(
                f"entities.{name}.audit_reads",
                f"reads of {name} (sensitive data) are not audited",
                ({"op": "add", "path": f"/entities/{name}/audit_reads", "value": True},),
            )
            for name, entity in _holding(ctx, classes)
            if entity.get("audit_reads") is not True
        ]

    return check


# -- field protection --------------------------------------------------------------------------


def protected_fields(
    classes: frozenset[str], *, encrypted: bool = True, masked: bool = False
) -> Check:
    """Fields of these classes are encrypted at rest (and masked in responses)."""
    wanted = {"encrypted": encrypted, "masked": masked}

    def check(ctx: CheckContext) -> list[Finding]:
        found = []
        for ename, entity in ctx.entities().items():
            for fname, cls in classes_of(entity).items():
                if cls not in classes:
                    continue
                spec = entity["fields"][fname]
                missing = [k for k, on in wanted.items() if on and spec.get(k) is not True]
                if missing:
                    found.append(
                        Finding(
                            f"entities.{ename}.fields.{fname}",
                            f"{cls} field {ename}.{fname} must be {' and '.join(missing)}",
                            tuple(
                                {
                                    "op": "add",
                                    "path": f"/entities/{ename}/fields/{fname}/{k}",
                                    "value": True,
                                }
                                for k in missing
                            ),
                        )
                    )
        return found

    return check


def never_stored(classes: frozenset[str]) -> Check:
    """Fields of these classes may not exist at all (the fix removes them)."""

    def check(ctx: CheckContext) -> list[Finding]:
        return [
            Finding(
                f"entities.{ename}.fields.{fname}",
                f"{ename}.{fname} is {cls} data, which must never be stored",
                ({"op": "remove", "path": f"/entities/{ename}/fields/{fname}"},),
            )
            for ename, entity in ctx.entities().items()
            for fname, cls in classes_of(entity).items()
            if cls in classes
        ]

    return check


# -- residency ---------------------------------------------------------------------------------


def subject_country(countries: frozenset[str]) -> Check:
    """Where residency depends on the subject's country, personal entities must say it."""

    def check(ctx: CheckContext) -> list[Finding]:
        if not (countries & set(ctx.profile.countries)) or ctx.profile.default_country:
            return []
        found = []
        for name, entity in _holding(ctx, PERSONAL):
            subject = entity.get("subject", {})
            field = subject.get("country_field")
            if subject.get("country") or (field and field in entity.get("fields", {})):
                continue
            candidates = [f for f in entity.get("fields", {}) if f in ("country", "country_code")]
            ops = (
                (
                    {
                        "op": "add",
                        "path": f"/entities/{name}/subject",
                        "value": {**entity.get("subject", {}), "country_field": candidates[0]},
                    },
                )
                if candidates
                else ()
            )
            found.append(
                Finding(
                    f"entities.{name}.subject.country_field",
                    f"{name} holds personal data but does not say which field "
                    "holds the subject's country, so it cannot be kept in the "
                    "right region",
                    ops,
                )
            )
        return found

    return check


def residency(countries: frozenset[str]) -> Check:
    """A tenant operating in these countries has a region where their subjects may be stored."""

    def check(ctx: CheckContext) -> list[Finding]:
        found = []
        has_personal = any(True for _ in _holding(ctx, PERSONAL))
        if not has_personal:
            return []
        for country in sorted(countries & set(ctx.profile.countries)):
            allowed = ctx.profile.allowed_locations(country)
            if allowed is None:
                continue
            here = {ctx.locations.get(r) for r in ctx.tenant_regions}
            if not here & set(allowed):
                found.append(
                    Finding(
                        "compliance.regions",
                        f"personal data of subjects in {country} must be stored in "
                        f"{' or '.join(allowed)}, but the tenant's regions are "
                        f"{', '.join(ctx.tenant_regions)} "
                        f"({', '.join(sorted(str(h) for h in here))})",
                    )
                )
        return found

    return check


# -- copies (the data inventory) -----------------------------------------------------------------


def copies_protected(classes: frozenset[str] = PERSONAL) -> Check:
    """Every copy site the platform copies record values to keeps encrypted fields sealed,
    masked fields masked, and is reached by erasure (no automatic fix: a site is code)."""

    def check(ctx: CheckContext) -> list[Finding]:
        found = []
        for ename, entity in ctx.entities().items():
            for fname, spec in entity.get("fields", {}).items():
                personal = spec.get("classification", "none") in classes
                encrypted, masked = bool(spec.get("encrypted")), bool(spec.get("masked"))
                if not (personal or encrypted or masked):
                    continue
                for site in ctx.copies:
                    why = site.unprotected(encrypted, masked, personal)
                    if why:
                        found.append(
                            Finding(
                                f"inventory.{site.name}.entities.{ename}.fields.{fname}",
                                f"{ename}.{fname}: {why}",
                            )
                        )
        return found

    return check
