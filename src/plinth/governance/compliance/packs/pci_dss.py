"""PCI DSS v4.0: wherever card data appears, in any country."""

from plinth.governance.compliance import rules as r
from plinth.governance.compliance.models import Pack
from plinth.governance.compliance.packs import register

PAN = frozenset({"pci.pan"})

PACK = register(
    Pack(
        "pci_dss",
        "PCI DSS v4.0",
        frozenset(),
        (
            r.rule(
                "pci_dss.sad_not_stored",
                "Sensitive authentication data (CVV, PIN, track) is never stored",
                "critical",
                "PCI DSS 3.3.1",
                r.never_stored(frozenset({"pci.sad"})),
            ),
            r.rule(
                "pci_dss.pan_encrypted",
                "Card numbers are encrypted at rest and masked when displayed",
                "critical",
                "PCI DSS 3.4.1 and 3.5.1",
                r.protected_fields(PAN, encrypted=True, masked=True),
            ),
            r.rule(
                "pci_dss.pan_retention",
                "Card data has a retention period",
                "critical",
                "PCI DSS 3.2.1",
                r.retention(days=365, classes=PAN),
            ),
            r.rule(
                "pci_dss.audit_reads",
                "Access to card data is logged",
                "critical",
                "PCI DSS 10.2.1.1",
                r.audited_reads(PAN),
            ),
            r.rule(
                "pci_dss.credentials_encrypted",
                "Credentials are encrypted at rest",
                "warning",
                "PCI DSS 8.3.2",
                r.protected_fields(frozenset({"credential"})),
            ),
            r.rule(
                "pci_dss.copies",
                "Every copy of protected data is sealed, masked and reached by erasure",
                "critical",
                "PCI DSS 3.5.1 (stored PAN unreadable anywhere)",
                r.copies_protected(frozenset({"pci.pan"})),
            ),
        ),
    )
)
