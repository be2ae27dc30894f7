"""Data-subject rights: export every record of a subject, and erase them.

A subject is named by a value (an e-mail, a customer number) that entities declaring
`subject.key_field` hold; entities whose key field is a reference belong to the subject of
the record they refer to (a policy to its holder, a claim to its policy, a payout to its
claim), followed to a fixed point. Erasure deletes or anonymises each record per its
entity's retention action (children first), then destroys the subject's keys, so encrypted
values left anywhere (backups, replicas) can never be read again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from plinth.governance.compliance.enforcement import anonymised_fields
from plinth.governance.compliance.keys import FieldKeys
from plinth.tenancy.models import Tenant


@dataclass
class Found:
    """A subject's records in one app: entity -> id -> record, and each entity's depth."""

    app: str
    records: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    depth: dict[str, int] = field(default_factory=dict)

    def count(self) -> int:
        return sum(len(v) for v in self.records.values())


async def collect(maintenance: Any, tenant: Tenant, app: str, subject: str) -> Found:
    """Every record of `subject` in `app`'s active version (decrypted, unmasked)."""
    ents = await maintenance.entities(tenant, app)
    found = Found(app)
    for name, ent in ents.items():
        p = ent.protection
        if p.key_field and not p.key_is_reference:
            recs = await maintenance.find(tenant, app, name, p.key_field, [subject])
            if recs:
                found.records[name] = {r["id"]: r for r in recs}
                found.depth[name] = 0
    asked: set[tuple[str, str]] = set()
    changed = True
    while changed:
        changed = False
        for name, ent in ents.items():
            p = ent.protection
            if not (p.key_field and p.key_is_reference):
                continue
            target = ent.references[p.key_field]
            parents = [i for i in found.records.get(target, {}) if (name, i) not in asked]
            if not parents:
                continue
            asked.update((name, i) for i in parents)
            for rec in await maintenance.find(tenant, app, name, p.key_field, parents):
                bucket = found.records.setdefault(name, {})
                if rec["id"] not in bucket:
                    bucket[rec["id"]] = rec
                    changed = True
            found.depth[name] = max(found.depth.get(name, 0), found.depth.get(target, 0) + 1)
    return found


async def refs_of(keys: FieldKeys, tenant: Tenant, subject: str, apps: list[Found]) -> set[str]:
    """The key refs sealing this subject's values: its own, and each of its records'."""
    refs = {await keys.ref(tenant.id, f"v:{subject}")}
    for found in apps:
        for bucket in found.records.values():
            for rid in bucket:
                refs.add(await keys.ref(tenant.id, f"r:{rid}"))
    return refs


async def erase(
    maintenance: Any, tenant: Tenant, found: Found, by: str
) -> dict[str, dict[str, int]]:
    """Delete or anonymise the subject's records of one app, deepest entities first."""
    ents = await maintenance.entities(tenant, found.app)
    out: dict[str, dict[str, int]] = {}
    for name in sorted(found.records, key=lambda n: -found.depth.get(n, 0)):
        doc = ents[name].doc
        action = (doc.get("retention") or {}).get("action", "delete")
        out[name] = await maintenance.remove(
            tenant, found.app, name, list(found.records[name]), action, anonymised_fields(doc), by
        )
    return out
