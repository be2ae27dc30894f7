"""CCPA as amended by the CPRA (Cal. Civ. Code 1798.100 ff.): California consumers.

Applied to tenants operating in the US, since a US insurer almost always has Californian
customers; name `ccpa` in the profile's jurisdictions explicitly to be precise.
"""

from plinth.governance.compliance import rules as r
from plinth.governance.compliance.models import Pack
from plinth.governance.compliance.packs import register

PACK = register(
    Pack(
        "ccpa",
        "CCPA/CPRA (US-CA)",
        frozenset({"US"}),
        (
            r.rule(
                "ccpa.retention",
                "Personal information has a disclosed retention period",
                "critical",
                "Cal. Civ. Code 1798.100(a)(3)",
                r.retention(),
            ),
            r.rule(
                "ccpa.sensitive_limited",
                "Sensitive personal information has a restricting read policy",
                "critical",
                "Cal. Civ. Code 1798.121",
                r.restricted_reads(),
            ),
            r.rule(
                "ccpa.security",
                "Sensitive personal information and credentials encrypted",
                "warning",
                "Cal. Civ. Code 1798.100(e), 1798.150",
                r.protected_fields(frozenset({"pii.sensitive", "credential"})),
            ),
            r.rule(
                "ccpa.audit_reads",
                "Reads of sensitive personal information are audited",
                "warning",
                "Cal. Civ. Code 1798.185(a)(15) (risk assessments)",
                r.audited_reads(),
            ),
            r.rule(
                "ccpa.copies",
                "Every copy of protected data is sealed, masked and reached by erasure",
                "critical",
                "Cal. Civ. Code 1798.105, 1798.150",
                r.copies_protected(),
            ),
        ),
    )
)
