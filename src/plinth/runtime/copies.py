"""The runtime's copy sites in the data inventory: record events, caches, subject exports.

None of them stores values: events are copies made by `RecordService.copy_of` and handed to
subscribers (which declare their own sites), compiled entities cache metadata only, and an
export is returned to the caller, never kept.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from plinth.governance.compliance.inventory import CopySite, Erasure, scrub

if TYPE_CHECKING:
    from plinth.runtime.service import RecordService


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


def outbox_site(records: RecordService) -> CopySite:
    """The outbox rows a record write leaves beside the records until they are dispatched."""

    async def erase(erasure: Erasure) -> int:
        pattern = erasure.pattern()
        if pattern is None:
            return 0
        source = records.storage.database(erasure.tenant)
        return await records.outbox.scrub(
            source, erasure.tenant.id, lambda value: scrub(value, pattern)
        )

    return CopySite(
        "runtime.outbox",
        "plinth_outbox.data (beside the records)",
        "a write's record event until its effects are dispatched (usually under a second)",
        encrypted="sealed",
        masked="masked",
        erase=erase,
        how="dispatched rows deleted, erased values replaced in rows still pending",
    )
