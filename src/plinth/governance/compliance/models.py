"""Compliance types: rules, the findings they produce, waivers, and what a check sees."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from plinth.governance.compliance.inventory import CopySite
from plinth.tenancy.profile import ComplianceProfile

Severity = Literal["critical", "warning"]
Status = Literal["pass", "fail", "waived", "unchecked"]

PERSONAL = frozenset({"pii", "pii.sensitive", "financial", "pci.pan", "credential"})
SENSITIVE = frozenset({"pii.sensitive"})


@dataclass(frozen=True)
class CheckContext:
    """What a rule looks at: the app definition, the tenant's profile, region locations."""

    definition: dict[str, Any]
    profile: ComplianceProfile
    locations: dict[str, str]  # region name -> location
    tenant_regions: tuple[str, ...]  # the regions this tenant may store data in
    copies: tuple[CopySite, ...] = ()  # the data inventory's copy sites
    # The definition sections whose document kinds exist here (None: the installed kinds).
    sections: frozenset[str] | None = None

    def entities(self) -> dict[str, dict[str, Any]]:
        return dict(self.definition.get("entities", {}))

    def policies(self) -> dict[str, dict[str, Any]]:
        return dict(self.definition.get("policies", {}))


@dataclass(frozen=True)
class Finding:
    """One violation of one rule at one place, with the JSON Patch that fixes it (if any)."""

    path: str
    message: str
    patch: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True)
class Rule:
    id: str  # "gdpr.retention"
    title: str
    severity: Severity
    reference: str  # "GDPR art. 5(1)(e)"
    check: Callable[[CheckContext], list[Finding]]
    needs: str | None = None  # a definition section (kind) the rule cannot be checked without


@dataclass(frozen=True)
class Pack:
    id: str  # "gdpr"
    name: str
    countries: frozenset[str]  # where it applies; empty: wherever its data classes appear
    rules: tuple[Rule, ...]


@dataclass(frozen=True)
class Violation:
    """A finding of a rule, as reported: with the rule's identity and whether it is waived."""

    rule: str
    pack: str
    severity: Severity
    reference: str
    path: str
    message: str
    patch: tuple[dict[str, Any], ...] = ()
    waiver: str | None = None  # id of the waiver that covers it

    def as_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "pack": self.pack,
            "severity": self.severity,
            "reference": self.reference,
            "path": self.path,
            "message": self.message,
            "remediation": list(self.patch),
            "waived_by": self.waiver,
        }


@dataclass(frozen=True)
class Waiver:
    id: str
    tenant_id: str
    app: str
    rule: str
    path: str | None  # None: every path of the rule in this app
    reason: str
    by: str
    until: datetime
    created_at: datetime

    def covers(self, rule: str, path: str, now: datetime) -> bool:
        if rule != self.rule or now >= self.until:
            return False
        return self.path is None or path == self.path or path.startswith(self.path + ".")

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "app": self.app,
            "rule": self.rule,
            "path": self.path,
            "reason": self.reason,
            "by": self.by,
            "until": self.until.isoformat(),
            "created_at": self.created_at.isoformat(),
        }


@dataclass
class Outcome:
    """Every rule of every applicable pack, checked against one definition."""

    packs: list[str]
    rules: list[Rule] = field(default_factory=list)
    rule_pack: dict[str, str] = field(default_factory=dict)
    violations: list[Violation] = field(default_factory=list)
    unchecked: set[str] = field(default_factory=set)  # rules whose kind is not installed

    def blocking(self) -> list[Violation]:
        return [v for v in self.violations if v.severity == "critical" and v.waiver is None]

    def status_of(self, rule_id: str) -> Status:
        if rule_id in self.unchecked:
            return "unchecked"
        found = [v for v in self.violations if v.rule == rule_id]
        if not found:
            return "pass"
        return "waived" if all(v.waiver for v in found) else "fail"

    def remediation(self) -> list[dict[str, Any]]:
        """One JSON Patch fixing every unwaived violation that has a fix (no duplicate ops)."""
        ops: list[dict[str, Any]] = []
        removes: list[dict[str, Any]] = []
        seen: set[str] = set()  # rules of several packs often propose the same operation
        created: set[str] = set()  # sections a previous op adds whole

        def keep(op: dict[str, Any], into: list[dict[str, Any]]) -> None:
            key = json.dumps(op, sort_keys=True)
            if key not in seen:
                seen.add(key)
                into.append(op)

        for v in self.violations:
            if v.waiver is not None:
                continue
            for op in v.patch:
                if op["op"] == "remove":  # after the adds, so no add targets a removed field
                    keep(op, removes)
                    continue
                path = op["path"]
                if op["op"] == "add" and path.count("/") == 1 and isinstance(op["value"], dict):
                    if path in created:  # a second "add the section": add its members instead
                        for k, member in op["value"].items():
                            keep({"op": "add", "path": f"{path}/{k}", "value": member}, ops)
                        continue
                    created.add(path)
                keep(op, ops)
        return ops + removes
