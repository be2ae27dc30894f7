"""GDPR (Regulation (EU) 2016/679): EU and EEA data subjects."""

from plinth.governance.compliance import rules as r
from plinth.governance.compliance.models import SENSITIVE, Pack
from plinth.governance.compliance.packs import register
from plinth.tenancy.profile import EEA

PACK = register(
    Pack(
        "gdpr",
        "GDPR (EU)",
        EEA,
        (
            r.rule(
                "gdpr.retention",
                "Personal data has a retention period",
                "critical",
                "GDPR art. 5(1)(e) storage limitation",
                r.retention(),
            ),
            r.rule(
                "gdpr.special_category_basis",
                "Special-category data names its lawful basis",
                "critical",
                "GDPR art. 6(1) and 9(2)",
                r.lawful_basis(SENSITIVE),
            ),
            r.rule(
                "gdpr.restricted_reads",
                "Special-category data has a restricting read policy",
                "critical",
                "GDPR art. 25 and 32(1)(b)",
                r.restricted_reads(),
            ),
            r.rule(
                "gdpr.audit_reads",
                "Reads of special-category data are audited",
                "critical",
                "GDPR art. 5(2) accountability, 30",
                r.audited_reads(),
            ),
            r.rule(
                "gdpr.encrypt_sensitive",
                "Special-category and credential data encrypted at rest",
                "warning",
                "GDPR art. 32(1)(a)",
                r.protected_fields(frozenset({"pii.sensitive", "credential"})),
            ),
            r.rule(
                "gdpr.subject_country",
                "Personal entities name the subject's country",
                "warning",
                "GDPR art. 3 territorial scope, 44 transfers",
                r.subject_country(EEA),
            ),
            r.rule(
                "gdpr.residency",
                "Declared residency of EU subjects is satisfiable",
                "critical",
                "GDPR art. 44-46 transfers",
                r.residency(EEA),
            ),
            r.rule(
                "gdpr.copies",
                "Every copy of protected data is sealed, masked and reached by erasure",
                "critical",
                "GDPR art. 5(1)(f), 17 and 32",
                r.copies_protected(),
            ),
        ),
    )
)
