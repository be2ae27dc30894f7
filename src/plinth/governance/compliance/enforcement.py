"""What the runtime must do with a published entity's compliance keys: pure seams.

The contract between the compliance metadata and the runtime, compiled once per version
(`Protection.of(entity)`, kept on each compiled entity) and applied per record by
`guard.RecordGuard`, which the record service calls:

- before a write: `Regions.region_for(tenant, country)` must be the tenant's home region
  (else ResidencyRefused naming the country field), then `protection.encrypt` names the
  fields sealed with the subject's key (`keys.FieldKeys`, envelope encryption);
- on a read: sealed values are opened, then `mask(value, field)` is applied to
  `protection.mask` fields unless the caller may `field.unmask`, and reads of
  `audit_reads` entities are published as `compliance.read` for the ledger;
- retention (the `retention` workflow node, on a schedule): `retention_due(entity, now)`
  gives the column, cutoff and action; older rows are deleted or `anonymised_fields` emptied;
- subject erasure: delete or anonymise per the entity's retention action, then destroy the
  subject's keys (crypto-shredding).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from plinth.governance.compliance.models import PERSONAL
from plinth.tenancy.profile import ComplianceProfile

# Field types whose JSON form is what the API shows, so a value can be sealed as JSON text
# and handed back unchanged (numbers, booleans and timestamps are compared and sorted in SQL).
ENCRYPTABLE = frozenset({"string", "text", "email", "url", "enum", "json", "date"})


@dataclass(frozen=True)
class Protection:
    """The per-entity handling a runtime compiles once per published version."""

    encrypt: tuple[str, ...]
    mask: tuple[str, ...]
    personal: tuple[str, ...]
    audit_reads: bool
    key_field: str | None = None  # names the data subject (subject.key_field)
    key_is_reference: bool = False  # the subject is whoever the referenced record is about
    country_field: str | None = None
    fixed_country: str | None = None
    holds_personal: bool = False
    field_ids: dict[str, str] = field(default_factory=dict)
    anonymised: tuple[str, ...] = ()  # what anonymisation empties (`anonymised_fields`)

    @classmethod
    def of(cls, entity: dict[str, Any]) -> Protection:
        fields = entity.get("fields", {})
        subject = entity.get("subject", {})
        key = subject.get("key_field")
        personal = tuple(
            n for n, f in fields.items() if f.get("classification", "none") in PERSONAL
        )
        key_is_reference = bool(key and fields.get(key, {}).get("type") == "reference")
        emptied = set(personal) | {n for n, f in fields.items() if f.get("encrypted")}
        if key and not key_is_reference:
            emptied.add(key)
        return cls(
            encrypt=tuple(n for n, f in fields.items() if f.get("encrypted")),
            mask=tuple(n for n, f in fields.items() if f.get("masked")),
            personal=personal,
            audit_reads=bool(entity.get("audit_reads")),
            key_field=key,
            key_is_reference=key_is_reference,
            country_field=subject.get("country_field"),
            fixed_country=subject.get("country"),
            holds_personal=bool(personal or subject),
            field_ids={n: str(f.get("id", n)) for n, f in fields.items()},
            anonymised=tuple(n for n in fields if n in emptied),
        )

    def subject_of(self, record: dict[str, Any]) -> str:
        """What names a record's subject for its key: the subject's value, the record it
        refers to, or (no subject field) the record itself."""
        value = record.get(self.key_field) if self.key_field else None
        if value is None or value == "":
            return f"r:{record['id']}"
        return f"r:{value}" if self.key_is_reference else f"v:{value}"


def field_aad(tenant_id: str, app: str, entity_id: str, field_id: str, record_id: str) -> bytes:
    """Associated data of an encrypted value: a ciphertext moved to another tenant, app,
    field or record fails to open. Stable ids, so renames keep values readable."""
    return "\x00".join((tenant_id, app, entity_id, field_id, record_id)).encode()


def encode(value: Any) -> bytes:
    """A field's JSON value as the bytes that get sealed."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def decode(data: bytes) -> Any:
    return json.loads(data)


def check_protection(name: str, doc: dict[str, Any]) -> list[tuple[str, str]]:
    """(path, message) for field protection the runtime cannot honour."""
    found = []
    fields = doc.get("fields", {})
    for fname, spec in fields.items():
        if not spec.get("encrypted"):
            continue
        at = f"entities.{name}.fields.{fname}.encrypted"
        if spec.get("type") not in ENCRYPTABLE:
            found.append(
                (
                    at,
                    f"{spec.get('type')} fields cannot be encrypted (only "
                    f"{', '.join(sorted(ENCRYPTABLE))}); store it as text",
                )
            )
        elif spec.get("unique") or spec.get("index") or "computed" in spec:
            found.append(
                (
                    at,
                    "an encrypted field cannot be unique, indexed or computed: "
                    "its ciphertext differs at every write",
                )
            )
    subject = doc.get("subject", {})
    for key in ("key_field", "country_field"):
        ref = subject.get(key)
        if ref and fields.get(ref, {}).get("encrypted"):
            found.append(
                (
                    f"entities.{name}.subject.{key}",
                    f"{ref!r} is encrypted, so records cannot be found by it; "
                    "name a field that is not encrypted",
                )
            )
    return found


def subject_country(
    entity: dict[str, Any], record: dict[str, Any], profile: ComplianceProfile
) -> str | None:
    """The data subject's country of a record: its country field, the entity's fixed country,
    else the tenant's default."""
    subject = entity.get("subject", {})
    field = subject.get("country_field")
    if field and record.get(field):
        return str(record[field])
    return subject.get("country") or profile.default_country


def retention_due(entity: dict[str, Any], now: datetime) -> tuple[str, datetime, str] | None:
    """(column, cutoff, action) for the retention job, or None when the entity keeps records."""
    rule = entity.get("retention")
    if not rule:
        return None
    return (
        rule.get("field", "created_at"),
        now - timedelta(days=rule["days"]),
        rule.get("action", "delete"),
    )


def anonymise(entity: dict[str, Any], record: dict[str, Any]) -> dict[str, Any]:
    """The record with every personal field emptied (what stays is not about a person)."""
    personal = set(anonymised_fields(entity))
    return {k: (None if k in personal else v) for k, v in record.items()}


def anonymised_fields(entity: dict[str, Any]) -> tuple[str, ...]:
    """Fields emptied on anonymisation: the personal ones, the encrypted ones, and the field
    naming the subject (else the record still says whose it is)."""
    return Protection.of(entity).anonymised


def summary(definition: dict[str, Any]) -> dict[str, Any]:
    """What the runtime enforces for an app version: for the report's evidence."""
    encrypted, masked, audited, subjects, retention = [], [], [], {}, []
    for name, entity in definition.get("entities", {}).items():
        p = Protection.of(entity)
        encrypted += [f"{name}.{f}" for f in p.encrypt]
        masked += [f"{name}.{f}" for f in p.mask]
        if p.audit_reads:
            audited.append(name)
        if p.key_field:
            subjects[name] = p.key_field
        if entity.get("retention"):
            rule = entity["retention"]
            retention.append(
                {
                    "entity": name,
                    "days": rule["days"],
                    "action": rule.get("action", "delete"),
                    "field": rule.get("field", "created_at"),
                }
            )
    scheduled = sorted(
        name
        for name, wf in definition.get("workflows", {}).items()
        if any(s.get("type") == "schedule" for s in wf.get("start", []))
        and any(n.get("type") == "retention" for n in wf.get("nodes", {}).values())
    )
    return {
        "encrypted": encrypted,
        "masked": masked,
        "audit_reads": audited,
        "subjects": subjects,
        "retention": retention,
        "retention_workflows": scheduled,
    }
