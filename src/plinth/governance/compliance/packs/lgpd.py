"""LGPD (Lei 13.709/2018): data subjects in Brazil."""

from plinth.governance.compliance import rules as r
from plinth.governance.compliance.models import SENSITIVE, Pack
from plinth.governance.compliance.packs import register

BR = frozenset({"BR"})

PACK = register(
    Pack(
        "lgpd",
        "LGPD (BR)",
        BR,
        (
            r.rule(
                "lgpd.retention",
                "Personal data is eliminated at the end of its processing",
                "critical",
                "LGPD art. 15 and 16",
                r.retention(),
            ),
            r.rule(
                "lgpd.sensitive_basis",
                "Sensitive data names its legal basis",
                "critical",
                "LGPD art. 11",
                r.lawful_basis(SENSITIVE),
            ),
            r.rule(
                "lgpd.restricted_reads",
                "Sensitive data has a restricting read policy",
                "critical",
                "LGPD art. 46",
                r.restricted_reads(),
            ),
            r.rule(
                "lgpd.audit_reads",
                "Reads of sensitive data are audited",
                "warning",
                "LGPD art. 37 (records of processing)",
                r.audited_reads(),
            ),
            r.rule(
                "lgpd.residency",
                "Declared residency of Brazilian subjects is satisfiable",
                "critical",
                "LGPD art. 33 (international transfer)",
                r.residency(BR),
            ),
            r.rule(
                "lgpd.copies",
                "Every copy of protected data is sealed, masked and reached by erasure",
                "critical",
                "LGPD art. 16, 18(VI) and 46",
                r.copies_protected(),
            ),
        ),
    )
)
