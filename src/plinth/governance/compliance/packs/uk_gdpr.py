"""UK GDPR and the Data Protection Act 2018: subjects in the United Kingdom."""

from plinth.governance.compliance import rules as r
from plinth.governance.compliance.models import SENSITIVE, Pack
from plinth.governance.compliance.packs import register

UK = frozenset({"GB"})

PACK = register(
    Pack(
        "uk_gdpr",
        "UK GDPR",
        UK,
        (
            r.rule(
                "uk_gdpr.retention",
                "Personal data has a retention period",
                "critical",
                "UK GDPR art. 5(1)(e)",
                r.retention(),
            ),
            r.rule(
                "uk_gdpr.special_category_basis",
                "Special-category data names its lawful basis",
                "critical",
                "UK GDPR art. 9(2); DPA 2018 sch. 1",
                r.lawful_basis(SENSITIVE),
            ),
            r.rule(
                "uk_gdpr.restricted_reads",
                "Special-category data has a restricting read policy",
                "critical",
                "UK GDPR art. 32; DPA 2018 s. 10",
                r.restricted_reads(),
            ),
            r.rule(
                "uk_gdpr.audit_reads",
                "Reads of special-category data are audited",
                "warning",
                "UK GDPR art. 5(2) accountability",
                r.audited_reads(),
            ),
            r.rule(
                "uk_gdpr.residency",
                "Declared residency of UK subjects is satisfiable",
                "critical",
                "UK GDPR art. 44-49 (restricted transfers)",
                r.residency(UK),
            ),
            r.rule(
                "uk_gdpr.copies",
                "Every copy of protected data is sealed, masked and reached by erasure",
                "critical",
                "UK GDPR art. 5(1)(f), 17 and 32",
                r.copies_protected(),
            ),
        ),
    )
)
