"""What the runtime must do with a published entity's compliance keys: pure seams.

The runtime (records, CRUD) and the vault (envelope encryption) live in other layers; these
functions are the contract between them and the compliance metadata, compiled once per
version (`Protection.of(entity)`) and applied per record:

- before a write: `region_for(tenant, subject_country(entity, record, profile))` picks the
  region database (raises ResidencyRefused), then `protection.encrypt` names the fields to
  seal with the tenant's data key (AES-GCM via the vault);
- on a read: the runtime decrypts, then applies `mask(value, field)` to `protection.mask`
  fields unless the policy decision grants `data.unmask`, and emits `record.read` for the
  audit ledger when `protection.audit_reads`;
- retention job (a workflow timer, daily): `retention_due(entity, now)` gives the column,
  cutoff and action; rows older than the cutoff are deleted or passed through `anonymise`;
- subject erasure: `anonymise` (or delete per the entity's retention action), and for
  encrypted fields destroying the subject's key (crypto-shredding).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from plinth.governance.compliance.models import PERSONAL
from plinth.tenancy.profile import ComplianceProfile


@dataclass(frozen=True)
class Protection:
    """The per-entity handling a runtime compiles once per published version."""

    encrypt: tuple[str, ...]
    mask: tuple[str, ...]
    personal: tuple[str, ...]
    audit_reads: bool

    @classmethod
    def of(cls, entity: dict[str, Any]) -> Protection:
        fields = entity.get("fields", {})
        return cls(
            encrypt=tuple(n for n, f in fields.items() if f.get("encrypted")),
            mask=tuple(n for n, f in fields.items() if f.get("masked")),
            personal=tuple(n for n, f in fields.items()
                           if f.get("classification", "none") in PERSONAL),
            audit_reads=bool(entity.get("audit_reads")),
        )


def subject_country(entity: dict[str, Any], record: dict[str, Any],
                    profile: ComplianceProfile) -> str | None:
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
    return (rule.get("field", "created_at"), now - timedelta(days=rule["days"]),
            rule.get("action", "delete"))


def anonymise(entity: dict[str, Any], record: dict[str, Any]) -> dict[str, Any]:
    """The record with every personal field emptied (what stays is not about a person)."""
    personal = set(Protection.of(entity).personal)
    return {k: (None if k in personal else v) for k, v in record.items()}
