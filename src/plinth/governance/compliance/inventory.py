"""The data inventory: every place a record's values are copied to, and how each treats them.

Each layer registers its own copy sites on the platform's `DataInventory` (an instance, not a
module global): the runtime its record events, workflows their variables, step inputs and
outputs and task data, integration its webhook deliveries, governance its audit details. A
site declares, for classified fields:

- `encrypted`: how an encrypted field's value is held there: `sealed` (the ciphertext under
  the subject's key, so destroying the key shreds the copy too), `reference` (the record's id
  only), `redacted` (never copied), `hashed` (a keyed or salted digest of the whole record), or
  `clear` (in plain text: the compliance report fails the app for it);
- `masked`: how a masked field is held: `masked`, `redacted`, `hashed`, or `clear`;
- `erase`: what erasure and retention do there (None: nothing reaches it; the report fails an
  app with personal data for it).

Erasure and retention call every site's `erase` with the erased records' values (`Erasure`):
a site replaces each occurrence of those values in what it holds (`scrub`), and sealed copies
are shredded with the subject's keys.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from plinth.tenancy.models import Tenant

EncryptedAs = Literal["sealed", "reference", "redacted", "hashed", "clear"]
MaskedAs = Literal["masked", "redacted", "hashed", "clear"]
ERASED = "[erased]"
MIN_NEEDLE = 4  # shorter values ("DE", "42") name nobody and would erase unrelated text


@dataclass(frozen=True)
class Erasure:
    """What one erasure (or retention run) removes: the values of the records it erased."""

    tenant: Tenant
    app: str
    record_ids: frozenset[str]
    values: frozenset[str]  # every personal or encrypted value of those records, as text
    reason: str = "erasure"  # or "retention"

    def pattern(self) -> re.Pattern[str] | None:
        needles = sorted((v for v in self.values if len(v) >= MIN_NEEDLE), key=len, reverse=True)
        if not needles:
            return None
        return re.compile("|".join(re.escape(n) for n in needles), re.IGNORECASE)


EraseFn = Callable[[Erasure], Awaitable[int]]


@dataclass(frozen=True)
class CopySite:
    """One place record values are copied to."""

    name: str  # "workflows.step_io"
    where: str  # "wf_steps.input, wf_steps.output, wf_effects.result"
    holds: str  # what is copied there, for a person
    encrypted: EncryptedAs
    masked: MaskedAs
    erase: EraseFn | None = None  # returns how many rows it changed
    how: str = ""  # what erasure does there, for the report
    # Whether the platform copies record values here by itself (events, workflows, webhooks).
    # A site a plugin writes what it chooses to (its own storage) is declared, scrubbed at
    # erasure, but not held to the at-rest rules: the report checks the others.
    receives_records: bool = True
    personal: Literal["clear", "hashed", "redacted", "none"] = "clear"

    def public(self) -> dict[str, Any]:
        return {
            "site": self.name,
            "where": self.where,
            "holds": self.holds,
            "encrypted_fields": self.encrypted,
            "masked_fields": self.masked,
            "personal_fields": self.personal,
            "erasure": self.how or ("not reached" if self.erase is None else "scrubbed"),
        }

    def unprotected(self, encrypted: bool, masked: bool, personal: bool) -> str | None:
        """Why this site would keep a field of that kind unprotected, or None."""
        if not self.receives_records:
            return None
        if encrypted and self.encrypted == "clear":
            return f"{self.where} keeps it in plain text (encrypted fields must be sealed)"
        if masked and self.masked == "clear":
            return f"{self.where} keeps it unmasked for readers who may not unmask it"
        if (encrypted or masked or personal) and self.personal == "clear" and self.erase is None:
            return f"{self.where} keeps it and erasure does not reach it"
        return None


@dataclass
class DataInventory:
    """The platform's copy sites, by name."""

    sites: dict[str, CopySite] = field(default_factory=dict)

    def register(self, *sites: CopySite) -> None:
        for site in sites:
            self.sites[site.name] = site

    def __iter__(self) -> Any:
        return iter(self.sites.values())

    async def erase(self, erasure: Erasure) -> list[dict[str, Any]]:
        """Reach every copy site: what each holds, and what was done there."""
        done = []
        for site in self.sites.values():
            changed = await site.erase(erasure) if site.erase is not None else 0
            done.append(
                {
                    "site": site.name,
                    "where": site.where,
                    "action": site.how or ("nothing reaches it" if site.erase is None else ""),
                    "rows_changed": changed,
                }
            )
        return done


def scrub(value: Any, pattern: re.Pattern[str]) -> tuple[Any, bool]:
    """`value` (JSON) with every match of `pattern` in its strings replaced; and whether any
    was. Keys stay (they are field names, not values)."""
    if isinstance(value, str):
        new = pattern.sub(ERASED, value)
        return new, new != value
    if isinstance(value, list):
        out, changed = [], False
        for item in value:
            new, hit = scrub(item, pattern)
            out.append(new)
            changed |= hit
        return out, changed
    if isinstance(value, dict):
        result, changed = {}, False
        for k, item in value.items():
            new, hit = scrub(item, pattern)
            result[k] = new
            changed |= hit
        return result, changed
    return value, False


def values_of(record: dict[str, Any], fields: Iterable[str]) -> set[str]:
    """The text of a record's values in `fields` (nested JSON flattened to its strings)."""
    found: set[str] = set()

    def walk(v: Any) -> None:
        if isinstance(v, dict):
            for item in v.values():
                walk(item)
        elif isinstance(v, list):
            for item in v:
                walk(item)
        elif v is not None and not isinstance(v, bool):
            found.add(str(v))

    for name in fields:
        walk(record.get(name))
    return found
