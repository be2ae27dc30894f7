"""Governance's copy sites in the data inventory: the audit ledger's details."""

from __future__ import annotations

from plinth.governance.compliance.inventory import CopySite


def sites() -> list[CopySite]:
    return [
        CopySite(
            "governance.audit_details",
            "audit_events.data",
            "who changed which record, with SHA-256 digests of the whole record before and "
            "after (never the values); subjects named by opaque refs",
            encrypted="hashed",
            masked="hashed",
            personal="hashed",
            how="append-only and holds no values: nothing to erase",
        )
    ]
