"""Runtime enforcement: what the record service calls around every write and read.

The runtime holds one `RecordGuard` (attached by the compliance service) and calls it at
fixed seams; each entity's `Protection` is compiled with the entity once per version:

- `seal` before a write: residency (the subject's country must be storable in the region
  the tenant's data lives in, else `ResidencyRefused` naming the country field), then every
  encrypted field sealed with its subject's key (`keys.FieldKeys`);
- `open` after a read: sealed values decrypted (a destroyed key reads as null);
- `present` before a response: masked fields masked unless the caller may `field.unmask`;
  reads of `audit_reads` entities published as `compliance.read` for the ledger;
- `redact` for record events: encrypted values never travel in events (workflows, webhooks).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from plinth.events import Event, EventBus
from plinth.governance.access import Resource
from plinth.governance.compliance.classify import mask
from plinth.governance.compliance.enforcement import decode, encode, field_aad
from plinth.governance.compliance.keys import FieldKeys, is_sealed
from plinth.tenancy.models import Tenant
from plinth.tenancy.profile import parse_profile
from plinth.tenancy.regions import Regions, ResidencyRefused

UNMASK = "field.unmask"


class RecordGuard:
    def __init__(
        self, keys: FieldKeys, regions: Regions, authorizer: Callable[[], Any], events: EventBus
    ) -> None:
        self.keys = keys
        self.regions = regions
        self._authorizer = authorizer
        self.events = events

    # -- writes -----------------------------------------------------------------------------

    async def seal(
        self, tenant: Tenant, app: str, ent: Any, rows: list[dict[str, Any]], many: bool = False
    ) -> list[dict[str, Any]]:
        """The rows as stored: residency checked, encrypted fields sealed (rows have ids)."""
        p = ent.protection
        if p.holds_personal:
            self.check_residency(tenant, ent, rows, many)
        return await self.encrypt(tenant, app, ent, rows)

    async def encrypt(
        self,
        tenant: Tenant,
        app: str,
        ent: Any,
        rows: list[dict[str, Any]],
        *,
        stored: bool = False,
    ) -> list[dict[str, Any]]:
        """The rows with every encrypted field sealed with its subject's key. A client's
        value is always sealed, even one that looks sealed; `stored` rows (read back from
        the table) keep the values that already are."""
        p = ent.protection
        if not p.encrypt:
            return rows
        out = []
        for row in rows:
            sealed = dict(row)
            ref = await self.keys.ref(tenant.id, p.subject_of(row))
            for name in p.encrypt:
                if row.get(name) is None or (stored and is_sealed(row[name])):
                    continue
                aad = field_aad(tenant.id, app, ent.id, p.field_ids[name], row["id"])
                sealed[name] = await self.keys.seal(tenant.id, ref, encode(row[name]), aad)
            out.append(sealed)
        return out

    def check_residency(
        self, tenant: Tenant, ent: Any, rows: list[dict[str, Any]], many: bool = False
    ) -> None:
        """Each row's subject may be stored where this tenant's data lives, or refused."""
        p = ent.protection
        profile = parse_profile(tenant.settings.get("compliance"))
        home = self.regions.home(tenant)
        for i, row in enumerate(rows):
            country = (
                (row.get(p.country_field) if p.country_field else None)
                or p.fixed_country
                or profile.default_country
            )
            field = p.country_field or "country"
            path = f"[{i}].{field}" if many else field
            try:
                region = self.regions.region_for(tenant, country)
            except ResidencyRefused as exc:
                raise ResidencyRefused(
                    exc.detail, path=path, extra={**exc.extra, "field": field, "entity": ent.name}
                ) from None
            if region.name != home.name:
                raise ResidencyRefused(
                    f"Personal data of a subject from {country} must be stored in region "
                    f"{region.name} ({region.location}), but this tenant's data lives in "
                    f"{home.name} ({home.location}); record it in a tenant homed there",
                    path=path,
                    extra={
                        "country": country,
                        "field": field,
                        "entity": ent.name,
                        "region": region.name,
                    },
                )

    def keep_masked(
        self,
        principal: Any,
        tenant: Tenant,
        app: str,
        ent: Any,
        before: dict[str, Any],
        changes: dict[str, Any],
    ) -> dict[str, Any]:
        """A client that was shown `****1234` and sends it back does not overwrite the value."""
        p = ent.protection
        out = dict(changes)
        for name in p.mask:
            if (
                name in out
                and before.get(name) is not None
                and not self.may_unmask(principal, tenant, app, ent.name, name)
                and out[name] == mask(before[name], ent.fields[name])
            ):
                out[name] = before[name]  # (a PUT replaces every field: keep, not drop)
        return out

    # -- reads ------------------------------------------------------------------------------

    async def open(self, tenant: Tenant, app: str, ent: Any, records: list[dict[str, Any]]) -> None:
        """Decrypt sealed fields in place (a value whose key was destroyed becomes null)."""
        p = ent.protection
        if not p.encrypt:
            return
        for rec in records:
            for name in p.encrypt:
                value = rec.get(name)
                if not isinstance(value, str) or not is_sealed(value):
                    continue  # null, absent (not readable), or stored before encryption
                aad = field_aad(tenant.id, app, ent.id, p.field_ids[name], str(rec["id"]))
                plain = await self.keys.open(tenant.id, value, aad)
                rec[name] = None if plain is None else decode(plain)

    async def open_value(
        self, tenant: Tenant, app: str, entity_id: str, field_id: str, record_id: str, value: str
    ) -> Any:
        """One sealed value's plaintext JSON (None when its subject's key was destroyed)."""
        aad = field_aad(tenant.id, app, entity_id, field_id, record_id)
        plain = await self.keys.open(tenant.id, value, aad)
        return None if plain is None else decode(plain)

    def may_unmask(self, principal: Any, tenant: Tenant, app: str, entity: str, name: str) -> bool:
        decision = self._authorizer().decide(
            principal,
            UNMASK,
            Resource(
                "field",
                f"{entity}.{name}",
                tenant_id=tenant.id,
                attrs={"app": app, "entity": entity, "name": name},
            ),
        )
        return bool(decision.allowed)

    def masked_for(self, principal: Any, tenant: Tenant, app: str, ent: Any) -> set[str]:
        """The masked fields this caller may not unmask (they see `****1234`)."""
        return {
            n
            for n in ent.protection.mask
            if not self.may_unmask(principal, tenant, app, ent.name, n)
        }

    async def present(
        self, principal: Any, tenant: Tenant, app: str, ent: Any, records: list[dict[str, Any]]
    ) -> None:
        """Mask what the caller may not see in full; audit reads where the entity asks."""
        p = ent.protection
        if p.mask and records:
            hidden = self.masked_for(principal, tenant, app, ent)
            for rec in records:
                for name in hidden:
                    if rec.get(name) is not None:
                        rec[name] = mask(rec[name], ent.fields[name])
        if p.audit_reads and records:
            ids = [str(r["id"]) for r in records]
            await self.events.publish(
                Event(
                    "compliance.read",
                    tenant.id,
                    {
                        "app": app,
                        "entity": ent.name,
                        "ids": ids[:100],
                        "count": len(ids),
                        "by": principal.audit_name(),
                    },
                )
            )

    async def protect(
        self, tenant: Tenant, app: str, ent: Any, record: dict[str, Any] | None
    ) -> dict[str, Any] | None:
        """A record as it may be copied out of its table (events, workflow variables, step
        outputs, webhook payloads): encrypted values sealed again with the subject's key (so
        erasure shreds the copy too), masked values masked (a copy has no reader to unmask
        for). Other personal values stay, and erasure scrubs them (the data inventory)."""
        p = ent.protection
        if record is None or not (p.encrypt or p.mask):
            return record
        out = dict(record)
        if p.encrypt and record.get("id"):
            plain = {k: v for k, v in record.items() if k in p.encrypt and not is_sealed(v)}
            if plain:
                [sealed] = await self.encrypt(tenant, app, ent, [out])
                out.update({k: sealed[k] for k in plain})
        elif p.encrypt:  # no id to bind a ciphertext to: never copy the value
            out = {k: (None if k in p.encrypt else v) for k, v in out.items()}
        for name in p.mask:
            if name not in p.encrypt and out.get(name) is not None:
                out[name] = mask(out[name], ent.fields[name])
        return out

    @staticmethod
    def redact(ent: Any, record: dict[str, Any] | None) -> dict[str, Any] | None:
        """A record as it may travel in events: encrypted values masked."""
        p = ent.protection
        if record is None or not p.encrypt:
            return record
        return {
            k: (mask(v, ent.fields[k]) if k in p.encrypt and v is not None else v)
            for k, v in record.items()
        }
