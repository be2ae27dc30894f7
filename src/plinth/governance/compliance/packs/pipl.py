"""PIPL (Personal Information Protection Law of the PRC): subjects in mainland China.

Residency is the rule that matters most here: personal information collected in China is
stored in China (art. 40), so personal entities must say whose country a record is, and the
tenant needs a region located in `cn`.
"""

from plinth.governance.compliance import rules as r
from plinth.governance.compliance.models import SENSITIVE, Pack
from plinth.governance.compliance.packs import register

CN = frozenset({"CN"})

PACK = register(
    Pack(
        "pipl",
        "PIPL (CN)",
        CN,
        (
            r.rule(
                "pipl.residency",
                "Personal information of subjects in China is stored in China",
                "critical",
                "PIPL art. 40",
                r.residency(CN),
            ),
            r.rule(
                "pipl.subject_country",
                "Personal entities name the subject's country",
                "critical",
                "PIPL art. 38-40",
                r.subject_country(CN),
            ),
            r.rule(
                "pipl.retention",
                "Retention is the shortest period necessary",
                "critical",
                "PIPL art. 19",
                r.retention(),
            ),
            r.rule(
                "pipl.sensitive_basis",
                "Sensitive personal information names its basis (separate consent)",
                "critical",
                "PIPL art. 28-29",
                r.lawful_basis(SENSITIVE),
            ),
            r.rule(
                "pipl.restricted_reads",
                "Sensitive personal information has a restricting read policy",
                "critical",
                "PIPL art. 51",
                r.restricted_reads(),
            ),
            r.rule(
                "pipl.copies",
                "Every copy of protected data is sealed, masked and reached by erasure",
                "critical",
                "PIPL art. 47 and 51",
                r.copies_protected(),
            ),
        ),
    )
)
