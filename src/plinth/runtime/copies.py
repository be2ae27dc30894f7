"""The runtime's copy sites in the data inventory: record events, caches, subject exports.

None of them stores values: events are copies made by `RecordService.copy_of` and handed to
subscribers (which declare their own sites), compiled entities cache metadata only, and an
export is returned to the caller, never kept.
"""

from __future__ import annotations

from plinth.governance.compliance.inventory import CopySite


def sites() -> list[CopySite]:
    return [
        CopySite(
            "runtime.record_events",
            "record.* events (in memory, relayed to subscribers)",
            "the record before and after each write",
            encrypted="sealed",
            masked="masked",
            personal="none",
            how="not stored: each subscriber is a site of its own",
        ),
        CopySite(
            "runtime.caches",
            "compiled apps, field keys (memory)",
            "metadata and unwrapped keys for at most a minute; no record values",
            encrypted="redacted",
            masked="redacted",
            personal="none",
            how="holds no values (an erased subject's key leaves within a minute)",
        ),
        CopySite(
            "compliance.exports",
            "subject export responses",
            "a subject's records, returned to the caller",
            encrypted="redacted",
            masked="redacted",
            personal="none",
            how="not kept",
        ),
        CopySite(
            "platform.logs",
            "process logs",
            "errors and operations; record values are never logged",
            encrypted="redacted",
            masked="redacted",
            personal="none",
            how="holds no values",
        ),
    ]
