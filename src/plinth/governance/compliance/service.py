"""The compliance service: profiles, checks, fixes, waivers and reports for the other layers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from plinth.db import Database, utcnow
from plinth.errors import Conflict, Fault, Unavailable, ValidationFailed
from plinth.events import Effect, Event, EventBus, take_effects
from plinth.governance.compliance import (
    classify,
    enforcement,
    engine,
    retention,
    store,
    subjects,
)
from plinth.governance.compliance import packs as pack_registry
from plinth.governance.compliance.guard import RecordGuard
from plinth.governance.compliance.inventory import DataInventory, Erasure, values_of
from plinth.governance.compliance.keys import FieldKeys
from plinth.governance.compliance.models import CheckContext, Outcome, Waiver
from plinth.ids import new_id
from plinth.metadata import kinds
from plinth.metadata.models import Draft
from plinth.metadata.service import MetadataService
from plinth.tenancy.models import Tenant
from plinth.tenancy.profile import ComplianceProfile, parse_profile
from plinth.tenancy.regions import Regions
from plinth.tenancy.service import TenantService

MAX_WAIVER_DAYS = 366


class ComplianceService:
    def __init__(
        self,
        db: Database,
        events: EventBus,
        tenants: TenantService,
        metadata: MetadataService,
        regions: Regions,
    ) -> None:
        self.db = db
        self.events = events
        self.tenants = tenants
        self.metadata = metadata
        self.regions = regions
        self.records: Any = None  # the runtime's RecordService, once `enforce` attached it
        self.keys: FieldKeys | None = None
        self.inventory = DataInventory()  # every layer registers its copy sites
        # Waits until this process's committed writes have had their effects written (webhook
        # payloads, workflow variables, audit): an erasure or export must see those copies.
        self.settle: Callable[[], Awaitable[None]] = _settled
        # Run with the events of a change made in the platform database, in its transaction
        # (the ledger's entries; set by the composition root): both commit, or neither.
        self.effects: list[Effect] = []

    # -- runtime enforcement ----------------------------------------------------------------

    def enforce(self, records: Any, vault: Any, authorizer: Callable[[], Any]) -> RecordGuard:
        """The guard of the runtime's reads and writes (residency, encryption, masking, read
        audit), for the composition root to give the record service.

        Field keys are wrapped by the vault's master key (one keyring for the platform); the
        vault's master rotation re-wraps them in its own transaction."""
        self.keys = FieldKeys(self.db, lambda: vault.master)
        vault.rewrap_hooks.append(self.keys.rewrap_master)
        self.records = records
        guard = RecordGuard(self.keys, self.regions, authorizer, self.events)
        self.events.subscribe("app.published", self._seal_stored)
        self.events.subscribe("app.rolled_back", self._seal_stored)
        return guard

    async def _seal_stored(self, event: Event) -> None:
        """After a version made fields encrypted, seal the values its rows hold in clear."""
        tenant = next(iter(await self.tenants.list({event.tenant_id or ""})), None)
        if tenant is None or self.records is None:
            return
        sealed = await self.records.maintenance.seal_stored(tenant, event.data["app"])
        if sealed:
            await self.events.publish(
                Event(
                    "compliance.sealed",
                    tenant.id,
                    {
                        "app": event.data["app"],
                        "version": event.data.get("version"),
                        "records": sealed,
                    },
                )
            )

    def _runtime(self) -> tuple[Any, FieldKeys]:
        if self.records is None or self.keys is None:
            raise Unavailable("Runtime enforcement is not attached in this process")
        return self.records.maintenance, self.keys

    async def _active_apps(self, tenant: Tenant, app: str | None) -> list[str]:
        if app is not None:
            found = await self.metadata.get_app(tenant, app)  # NotFound for an unknown app
            return [app] if found.active_version is not None else []
        return [
            a.slug for a in await self.metadata.list_apps(tenant) if a.active_version is not None
        ]

    async def rotate_keys(self, tenant: Tenant, by: str | None = None) -> dict[str, Any]:
        """A new tenant field key; every subject key re-wrapped with it (audited, in the
        rotation's transaction)."""
        _, keys = self._runtime()
        told: list[Event] = []

        async def record(conn: AsyncConnection, result: dict[str, int]) -> None:
            rotated = Event("compliance.keys_rotated", tenant.id, {**result, "by": by})
            told.extend(await self._effects(conn, [rotated]))

        result = await keys.rotate(tenant.id, record)
        await self._told(told)
        return result

    async def _effects(self, conn: AsyncConnection, events: Sequence[Event]) -> list[Event]:
        """The `effects` of a change's events, in its transaction: what `_told` publishes."""
        return await take_effects(self.effects, conn, events)

    async def _told(self, events: list[Event]) -> None:
        for event in events:
            await self.events.publish(event)

    async def run_retention(
        self,
        tenant: Tenant,
        app: str | None = None,
        *,
        now: datetime | None = None,
        by: str | None = None,
    ) -> dict[str, Any]:
        """Delete or anonymise expired records of the tenant's apps (one audited run)."""
        maintenance, _ = self._runtime()
        at = now or utcnow()
        apps = {}
        for slug in await self._active_apps(tenant, app):
            apps[slug] = await retention.expire(
                maintenance, tenant, slug, at, by or "compliance.retention", self.inventory
            )
        result = {
            "at": at.isoformat(),
            "apps": apps,
            "deleted": sum(e["deleted"] for v in apps.values() for e in v),
            "anonymised": sum(e["anonymised"] for v in apps.values() for e in v),
        }
        await self.events.publish(Event("compliance.retention", tenant.id, {**result, "by": by}))
        return result

    async def _subject(
        self, tenant: Tenant, subject: str, app: str | None
    ) -> tuple[list[subjects.Found], str]:
        maintenance, keys = self._runtime()
        if not isinstance(subject, str) or not subject.strip():
            raise ValidationFailed.of(
                [
                    Fault(
                        "subject",
                        "name the subject: the value of the "
                        "entities' subject key field (e.g. an e-mail)",
                    )
                ]
            )
        subject = subject.strip()
        found = [
            await subjects.collect(maintenance, tenant, slug, subject)
            for slug in await self._active_apps(tenant, app)
        ]
        return found, await keys.ref(tenant.id, f"v:{subject}")

    async def export_subject(
        self, tenant: Tenant, subject: str, *, app: str | None = None, by: str | None = None
    ) -> dict[str, Any]:
        """Every record of a data subject across the tenant's apps, decrypted (audited)."""
        found, ref = await self._subject(tenant, subject, app)
        apps = {
            f.app: {name: list(recs.values()) for name, recs in f.records.items()}
            for f in found
            if f.records
        }
        counts = {f.app: {n: len(r) for n, r in f.records.items()} for f in found if f.records}
        await self.events.publish(
            Event(
                "compliance.subject_exported",
                tenant.id,
                {"subject_ref": ref, "records": counts, "by": by},
            )
        )
        return {
            "tenant": tenant.slug,
            "subject_ref": ref,
            "generated_at": utcnow().isoformat(),
            "records": sum(f.count() for f in found),
            "apps": apps,
        }

    async def erase_subject(
        self, tenant: Tenant, subject: str, *, app: str | None = None, by: str | None = None
    ) -> dict[str, Any]:
        """Delete or anonymise every record of a subject, then destroy the subject's keys."""
        maintenance, keys = self._runtime()
        await self.settle()  # copies still being dispatched are erased too, not left behind
        found, ref = await self._subject(tenant, subject, app)
        who = by or "compliance.erasure"
        done = {
            f.app: await subjects.erase(maintenance, tenant, f, who) for f in found if f.records
        }
        copies: dict[str, dict[str, Any]] = {}
        for f in found:
            if not f.records:
                continue
            ents = await maintenance.entities(tenant, f.app)
            erasure = Erasure(
                tenant,
                f.app,
                frozenset(i for recs in f.records.values() for i in recs),
                frozenset(
                    v
                    for name, recs in f.records.items()
                    for rec in recs.values()
                    for v in values_of(rec, ents[name].protection.anonymised)
                ),
            )
            for site in await self.inventory.erase(erasure):
                seen = copies.setdefault(site["site"], {**site, "rows_changed": 0})
                seen["rows_changed"] += site["rows_changed"]
        shredded = await keys.destroy(
            tenant.id, await subjects.refs_of(keys, tenant, subject.strip(), found)
        )
        result = {
            "subject_ref": ref,
            "records": sum(f.count() for f in found),
            "apps": done,
            "copies": list(copies.values()),
            "keys_destroyed": shredded,
        }
        await self.events.publish(
            Event("compliance.subject_erased", tenant.id, {**result, "by": by})
        )
        return result

    # -- profile ----------------------------------------------------------------------------

    def profile(self, tenant: Tenant) -> ComplianceProfile:
        """The tenant's compliance profile (empty if it has none)."""
        return parse_profile(tenant.settings.get("compliance"))

    async def set_profile(
        self, tenant: Tenant, raw: Any, by: str | None = None
    ) -> ComplianceProfile:
        """Validate and store a tenant's compliance profile."""
        profile = parse_profile(raw)
        faults = [
            Fault(
                f"compliance.jurisdictions[{profile.jurisdictions.index(j)}]",
                f"no pack {j!r}; known: {', '.join(pack_registry.all_packs())}",
                "unknown_pack",
            )
            for j in pack_registry.unknown(profile)
        ]
        faults += [
            Fault(
                f"compliance.regions[{i}]",
                f"no region named {r!r}; configured: {', '.join(self.regions.regions)}",
                "unknown_region",
            )
            for i, r in enumerate(profile.regions)
            if r not in self.regions.regions
        ]
        if faults:
            raise ValidationFailed.of(faults, "compliance profile")
        home = (profile.regions or (tenant.region,))[0]
        if home != self.regions.home(tenant).name and any(
            a.active_version is not None for a in await self.metadata.list_apps(tenant)
        ):
            # App data lives in the home region; moving it is a migration, not a setting.
            raise Conflict(
                f"This tenant's app data lives in region "
                f"{self.regions.home(tenant).name!r}; keep it first in `regions`",
                path="compliance.regions[0]",
            )
        told: list[Event] = []

        async def record(conn: AsyncConnection, _: Tenant) -> None:
            data = {"profile": profile.as_dict(), "by": by}
            told.extend(await self._effects(conn, [Event("compliance.profile", tenant.id, data)]))

        await self.tenants.update_settings(tenant.slug, "compliance", profile.as_dict(), record)
        await self._told(told)
        return profile

    def context(self, tenant: Tenant, definition: dict[str, Any]) -> CheckContext:
        return CheckContext(
            definition,
            self.profile(tenant),
            self.regions.locations(),
            self.regions.of_tenant(tenant),
            tuple(self.inventory),
        )

    async def _definition(self, tenant: Tenant, app: str, ref: int | str) -> dict[str, Any]:
        return await self.metadata.definition_at(tenant, app, ref)

    # -- checks -----------------------------------------------------------------------------

    async def check(
        self, tenant: Tenant, app: str, ref: int | str = "draft", country: str | None = None
    ) -> Outcome:
        """Every applicable rule over the app's draft (or version `ref`), waivers applied."""
        definition = await self._definition(tenant, app, ref)
        async with self.db.read() as conn:
            waivers = await store.waivers_of(conn, tenant.id, app)
        packs = pack_registry.applicable(self.profile(tenant), country)
        return await engine.evaluate_parallel(packs, self.context(tenant, definition), waivers)

    async def fix(
        self,
        tenant: Tenant,
        app: str,
        *,
        apply: bool = False,
        by: str | None = None,
        classify_fields: bool = False,
        if_revision: int | None = None,
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
            patch = [
                {
                    "op": "add",
                    "path": "/" + s["path"].replace(".", "/"),
                    "value": s["classification"],
                }
                for s in classify.suggestions(draft.definition)
            ] + patch
        fixed = sorted({v.rule for v in outcome.violations if v.waiver is None and v.patch})
        manual = [v.as_dict() for v in outcome.violations if v.waiver is None and not v.patch]
        result: dict[str, Any] = {
            "app": app,
            "revision": draft.revision,
            "patch": patch,
            "rules": fixed,
            "manual": manual,
            "skipped": skipped,
            "applied": False,
        }
        if apply and patch:
            told: list[Event] = []

            async def record(conn: AsyncConnection, new: Draft) -> None:
                # In the draft's own transaction: a fix the ledger cannot record is not made
                # (it was, its 503 saying otherwise).
                await store.record_fix(
                    conn,
                    id=new_id(),
                    tenant_id=tenant.id,
                    app=app,
                    revision=new.revision,
                    patch=patch,
                    rules=fixed,
                    by=by,
                    applied_at=utcnow(),
                )
                data = {
                    "app": app,
                    "revision": new.revision,
                    "rules": fixed,
                    "patch": patch,
                    "by": by,
                }
                told.extend(await self._effects(conn, [Event("compliance.fix", tenant.id, data)]))

            new = await self.metadata.patch_draft(
                tenant,
                app,
                patch,
                by=by,
                if_revision=draft.revision if if_revision is None else if_revision,
                also=record,
            )
            await self._told(told)
            result.update(applied=True, revision=new.revision)
        return result

    # -- waivers ----------------------------------------------------------------------------

    async def waive(
        self,
        tenant: Tenant,
        app: str,
        rule: str,
        *,
        reason: str,
        until: datetime,
        by: str,
        path: str | None = None,
    ) -> Waiver:
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
            faults.append(
                Fault(
                    "until", f"a waiver lasts at most {MAX_WAIVER_DAYS} days; renew it when it ends"
                )
            )
        if faults:
            raise ValidationFailed.of(faults, "waiver")
        waiver = Waiver(
            new_id(), tenant.id, app, rule, path or None, reason.strip(), by, until, now
        )
        async with self.db.transaction() as conn:
            await store.insert_waiver(conn, waiver)
            waived = Event("compliance.waiver", tenant.id, waiver.public())
            told = await self._effects(conn, [waived])
        await self._told(told)
        return waiver

    async def waivers(self, tenant: Tenant, app: str | None = None) -> list[Waiver]:
        """The tenant's waivers (of one app: NotFound if it does not exist)."""
        if app is not None:
            await self.metadata.get_app(tenant, app)
        async with self.db.read() as conn:
            return await store.waivers_of(conn, tenant.id, app)

    # -- reports ----------------------------------------------------------------------------

    async def report(
        self, tenant: Tenant, app: str | None = None, country: str | None = None
    ) -> dict[str, Any]:
        """Per app and country: each rule's status, remediations and evidence."""
        profile = self.profile(tenant)
        apps = (
            [await self.metadata.get_app(tenant, app)]
            if app
            else await self.metadata.list_apps(tenant)
        )
        countries: list[str | None] = [country] if country else list(profile.countries) or [None]
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
            out.append(
                {
                    "app": found.slug,
                    "version": active,
                    "status": _worst(r["status"] for r in per_country),
                    "countries": per_country,
                    "suggestions": classify.suggestions(definition),
                    "enforcement": enforcement.summary(definition),
                    "evidence": {
                        "publish": None
                        if last is None
                        else {
                            "version": last.version,
                            "hash": last.hash,
                            "packs": last.packs,
                            "by": last.by,
                            "checked_at": last.checked_at.isoformat(),
                            "violations": last.violations,
                        },
                        "waivers": [{**w.public(), "active": w.until > now} for w in waivers],
                        "fixes": fixes,
                    },
                }
            )
        return {
            "tenant": tenant.slug,
            "generated_at": now.isoformat(),
            "profile": profile.as_dict(),
            "status": _worst(a["status"] for a in out),
            "apps": out,
            "inventory": [site.public() for site in self.inventory],
        }


def _country_report(country: str | None, outcome: Outcome) -> dict[str, Any]:
    rules = []
    for rule in outcome.rules:
        found = [v for v in outcome.violations if v.rule == rule.id]
        rules.append(
            {
                "id": rule.id,
                "pack": outcome.rule_pack[rule.id],
                "title": rule.title,
                "severity": rule.severity,
                "reference": rule.reference,
                "status": outcome.status_of(rule.id),
                "needs": rule.needs,
                "violations": [v.as_dict() for v in found],
            }
        )
    failing = [r for r in rules if r["status"] == "fail"]
    status = (
        "fail"
        if any(r["severity"] == "critical" for r in failing)
        else "warn"
        if failing
        else "pass"
    )
    return {
        "country": country,
        "packs": outcome.packs,
        "status": status,
        "rules": rules,
        "remediation": outcome.remediation(),
    }


def _worst(statuses: Any) -> str:
    order = {"pass": 0, "warn": 1, "fail": 2}
    return max(statuses, key=lambda s: order[s], default="pass")


async def _settled() -> None:
    return None
