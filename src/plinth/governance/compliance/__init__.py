"""The compliance engine: jurisdiction packs checked at publish, remediation, waivers, reports.

Pure in the middle (`engine.evaluate` over a definition and a profile), I/O at the edges
(`service`, `step`, `api`). Runtime enforcement: `guard` (residency, encryption, masking,
read audit around every record read and write), `keys` (field keys, envelope encryption),
`retention` (the workflow node) and `subjects` (export and erasure).
"""

from plinth.governance.compliance import retention as _retention  # noqa: F401  (node type)
from plinth.governance.compliance.classify import mask, suggest, suggestions
from plinth.governance.compliance.entity_checks import check_compliance_keys
from plinth.governance.compliance.models import Finding, Outcome, Pack, Rule, Violation, Waiver
from plinth.metadata.kinds import add_check

add_check("entity", check_compliance_keys)

__all__ = [
    "Finding",
    "Outcome",
    "Pack",
    "Rule",
    "Violation",
    "Waiver",
    "mask",
    "suggest",
    "suggestions",
]
