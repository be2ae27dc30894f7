"""The compliance service: profiles, checks, fixes, waivers and reports for the other layers."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from plinth.db import Database, utcnow
from plinth.errors import Fault, ValidationFailed
from plinth.events import Event, EventBus
from plinth.governance.compliance import classify, engine, store
from plinth.governance.compliance import packs as pack_registry
from plinth.governance.compliance.models import CheckContext, Outcome, Waiver
from plinth.ids import new_id
from plinth.metadata import kinds
from plinth.metadata.service import MetadataService
from plinth.tenancy.models import Tenant
from plinth.tenancy.profile import ComplianceProfile, parse_profile
from plinth.tenancy.regions import Regions
from plinth.tenancy.service import TenantService

MAX_WAIVER_DAYS = 366


class ComplianceService:
    def __init__(self, db: Database, events: EventBus, tenants: TenantService,
                 metadata: MetadataService, regions: Regions) -> None:
        self.db = db
        self.events = events
        self.tenants = tenants
        self.metadata = metadata
        self.regions = regions
        from plinth.governance.compliance.step import STEP
        from plinth.metadata.pipeline import register_step

        register_step(STEP)
        STEP.attach(self)

    # -- profile ----------------------------------------------------------------------------

    def profile(self, tenant: Tenant) -> ComplianceProfile:
        """The tenant's compliance profile (empty if it has none)."""
        return parse_profile(tenant.settings.get("compliance"))

    async def set_profile(self, tenant: Tenant, raw: Any, by: str | None = None
                          ) -> ComplianceProfile:
        """Validate and store a tenant's compliance profile."""
        profile = parse_profile(raw)
        faults = [Fault(f"compliance.jurisdictions[{profile.jurisdictions.index(j)}]",
                        f"no pack {j!r}; known: {', '.join(pack_registry.all_packs())}",
                        "unknown_pack") for j in pack_registry.unknown(profile)]
        faults += [Fault(f"compliance.regions[{i}]", f"no region named {r!r}; configured: "
                         f"{', '.join(self.regions.regions)}", "unknown_region")
                   for i, r in enumerate(profile.regions) if r not in self.regions.regions]
        if faults:
            raise ValidationFailed.of(faults, "compliance profile")
        await self.tenants.update_settings(tenant.slug, "compliance", profile.as_dict())
        await self.events.publish(Event("compliance.profile", tenant.id,
                                        {"profile": profile.as_dict(), "by": by}))
        return profile

    def context(self, tenant: Tenant, definition: dict[str, Any]) -> CheckContext:
        return CheckContext(definition, self.profile(tenant), self.regions.locations(),
                            self.regions.of_tenant(tenant))

    async def _definition(self, tenant: Tenant, app: str, ref: int | str) -> dict[str, Any]:
        if ref == "draft":
            return (await self.metadata.get_draft(tenant, app)).definition
        return (await self.metadata.version(tenant, app, int(ref))).definition

    # -- checks -----------------------------------------------------------------------------

    async def check(self, tenant: Tenant, app: str, ref: int | str = "draft",
                    country: str | None = None) -> Outcome:
        """Every applicable rule over the app's draft (or version `ref`), waivers applied."""
        definition = await self._definition(tenant, app, ref)
        async with self.db.read() as conn:
            waivers = await store.waivers_of(conn, tenant.id, app)
        packs = pack_registry.applicable(self.profile(tenant), country)
        return await engine.evaluate_parallel(packs, self.context(tenant, definition), waivers)

    async def fix(self, tenant: Tenant, app: str, *, apply: bool = False, by: str | None = None,
                  classify_fields: bool = False, if_revision: int | None = None
                  ) -> dict[str, Any]:
        """The JSON Patch fixing the draft's violations; applied to the draft if `apply`."""
        draft = await self.metadata.get_draft(tenant, app)
        outcome = await self.check(tenant, app, "draft")
        patch = outcome.remediation()
        skipped: list[dict[str, Any]] = []
        if kinds.by_section("policies") is None:
            # The policy kind belongs to governance; without it the draft cannot hold one.
            skipped = [op for op in patch if op["path"].startswith("/policies")]
            patch = [op for op in patch if not op["path"].startswith("/policies")]
        if classify_fields:
            patch = [{"op": "add", "path": "/" + s["path"].replace(".", "/"),
                      "value": s["classification"]}
                     for s in classify.suggestions(draft.definition)] + patch
        fixed = sorted({v.rule for v in outcome.violations if v.waiver is None and v.patch})
        manual = [v.as_dict() for v in outcome.violations if v.waiver is None and not v.patch]
        result: dict[str, Any] = {"app": app, "revision": draft.revision, "patch": patch,
                                  "rules": fixed, "manual": manual, "skipped": skipped,
                                  "applied": False}
        if apply and patch:
            new = await self.metadata.patch_draft(
                tenant, app, patch, by=by,
                if_revision=draft.revision if if_revision is None else if_revision)
            async with self.db.transaction() as conn:
                await store.record_fix(conn, id=new_id(), tenant_id=tenant.id, app=app,
                                       revision=new.revision, patch=patch, rules=fixed, by=by,
                                       applied_at=utcnow())
            await self.events.publish(Event("compliance.fix", tenant.id, {
                "app": app, "revision": new.revision, "rules": fixed, "patch": patch,
                "by": by}))
            result.update(applied=True, revision=new.revision)
        return result

    # -- waivers ----------------------------------------------------------------------------

    async def waive(self, tenant: Tenant, app: str, rule: str, *, reason: str,
                    until: datetime, by: str, path: str | None = None) -> Waiver:
        """Record that `rule` (at `path`, or everywhere in the app) is knowingly not met."""
        await self.metadata.get_app(tenant, app)  # NotFound for an unknown app
        faults: list[Fault] = []
        known = {r.id for p in pack_registry.all_packs().values() for r in p.rules}
        if rule not in known:
            faults.append(Fault("rule", f"no rule {rule!r}", "unknown_rule"))
        if len(reason.strip()) < 10:
            faults.append(Fault("reason", "say why, in at least 10 characters"))
        now = utcnow()
        if until.tzinfo is None:
            faults.append(Fault("until", "give a time zone (e.g. 2027-01-31T00:00:00Z)"))
        elif until <= now:
            faults.append(Fault("until", "a waiver ends in the future"))
        elif (until - now).days > MAX_WAIVER_DAYS:
            faults.append(Fault("until", f"a waiver lasts at most {MAX_WAIVER_DAYS} days; "
                                "renew it when it ends"))
        if faults:
            raise ValidationFailed.of(faults, "waiver")
        waiver = Waiver(new_id(), tenant.id, app, rule, path or None, reason.strip(), by,
                        until, now)
        async with self.db.transaction() as conn:
            await store.insert_waiver(conn, waiver)
        await self.events.publish(Event("compliance.waiver", tenant.id, waiver.public()))
        return waiver

    async def waivers(self, tenant: Tenant, app: str | None = None) -> list[Waiver]:
        """The tenant's waivers (of one app: NotFound if it does not exist)."""
        if app is not None:
            await self.metadata.get_app(tenant, app)
        async with self.db.read() as conn:
            return await store.waivers_of(conn, tenant.id, app)

    # -- reports ----------------------------------------------------------------------------

    async def report(self, tenant: Tenant, app: str | None = None,
                     country: str | None = None) -> dict[str, Any]:
        """Per app and country: each rule's status, remediations and evidence."""
        profile = self.profile(tenant)
        apps = ([await self.metadata.get_app(tenant, app)] if app
                else await self.metadata.list_apps(tenant))
        countries: list[str | None] = ([country] if country
                                       else list(profile.countries) or [None])
        now = utcnow()
        out: list[dict[str, Any]] = []
        for found in apps:
            active = found.active_version
            ref: int | str = active if active is not None else "draft"
            definition = await self._definition(tenant, found.slug, ref)
            async with self.db.read() as conn:
                waivers = await store.waivers_of(conn, tenant.id, found.slug)
                last = await store.last_check(conn, tenant.id, found.slug)
                fixes = await store.fixes_of(conn, tenant.id, found.slug)
            ctx = self.context(tenant, definition)
            per_country = []
            for c in countries:
                packs = pack_registry.applicable(profile, c)
                outcome = await engine.evaluate_parallel(packs, ctx, waivers, now)
                per_country.append(_country_report(c, outcome))
            out.append({
                "app": found.slug, "version": active,
                "status": _worst(r["status"] for r in per_country),
                "countries": per_country,
                "suggestions": classify.suggestions(definition),
                "evidence": {
                    "publish": None if last is None else {
                        "version": last.version, "hash": last.hash, "packs": last.packs,
                        "by": last.by, "checked_at": last.checked_at.isoformat(),
                        "violations": last.violations},
                    "waivers": [{**w.public(), "active": w.until > now} for w in waivers],
                    "fixes": fixes,
                },
            })
        return {"tenant": tenant.slug, "generated_at": now.isoformat(),
                "profile": profile.as_dict(), "status": _worst(a["status"] for a in out),
                "apps": out}


def _country_report(country: str | None, outcome: Outcome) -> dict[str, Any]:
    rules = []
    for rule in outcome.rules:
        found = [v for v in outcome.violations if v.rule == rule.id]
        rules.append({"id": rule.id, "pack": outcome.rule_pack[rule.id], "title": rule.title,
                      "severity": rule.severity, "reference": rule.reference,
                      "status": outcome.status_of(rule.id), "needs": rule.needs,
                      "violations": [v.as_dict() for v in found]})
    failing = [r for r in rules if r["status"] == "fail"]
    status = ("fail" if any(r["severity"] == "critical" for r in failing)
              else "warn" if failing else "pass")
    return {"country": country, "packs": outcome.packs, "status": status, "rules": rules,
            "remediation": outcome.remediation()}


def _worst(statuses: Any) -> str:
    order = {"pass": 0, "warn": 1, "fail": 2}
    return max(statuses, key=lambda s: order[s], default="pass")
