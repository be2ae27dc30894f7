"""PDPA 2012 (Singapore): individuals in Singapore."""

from plinth.governance.compliance import rules as r
from plinth.governance.compliance.models import Pack
from plinth.governance.compliance.packs import register

SG = frozenset({"SG"})

PACK = register(
    Pack(
        "pdpa",
        "PDPA (SG)",
        SG,
        (
            r.rule(
                "pdpa.retention",
                "Personal data is not kept longer than needed",
                "critical",
                "PDPA s. 25 (retention limitation)",
                r.retention(),
            ),
            r.rule(
                "pdpa.protection",
                "Sensitive, financial and credential data encrypted at rest",
                "warning",
                "PDPA s. 24 (protection obligation)",
                r.protected_fields(frozenset({"pii.sensitive", "financial", "credential"})),
            ),
            r.rule(
                "pdpa.restricted_reads",
                "Sensitive data has a restricting read policy",
                "warning",
                "PDPA s. 24",
                r.restricted_reads(),
            ),
            r.rule(
                "pdpa.residency",
                "Declared residency of Singapore subjects is satisfiable",
                "critical",
                "PDPA s. 26 (transfer limitation)",
                r.residency(SG),
            ),
            r.rule(
                "pdpa.copies",
                "Every copy of protected data is sealed, masked and reached by erasure",
                "critical",
                "PDPA s. 24 and 25",
                r.copies_protected(),
            ),
        ),
    )
)
