"""The integration layer's copy sites in the data inventory, and their erasure.

Webhook deliveries keep the payload they sent (the record event: encrypted fields sealed,
masked ones masked), so a delivery can be redelivered and its log read; erasure and retention
replace the erased records' values in it. Connector calls keep no log of their own: what a
call returned is kept by the workflow step that made it (`workflows.step_io`).
"""

from __future__ import annotations

import json

import sqlalchemy as sa

from plinth.db import Database
from plinth.governance.compliance.inventory import CopySite, Erasure, scrub
from plinth.integration import store

BATCH = 500


class IntegrationCopies:
    def __init__(self, db: Database) -> None:
        self.db = db

    def sites(self) -> list[CopySite]:
        return [
            CopySite(
                "integration.deliveries",
                "integration_deliveries.payload",
                "the record events each webhook_out connector delivered (kept for redelivery "
                "and the delivery log)",
                encrypted="sealed",
                masked="masked",
                erase=self.erase_deliveries,
                how="erased values replaced in the app's delivery payloads",
            ),
            CopySite(
                "integration.connector_calls",
                "(none: results are kept by the calling workflow step)",
                "connector requests and responses",
                encrypted="redacted",
                masked="redacted",
                personal="none",
                how="nothing kept here",
            ),
        ]

    async def erase_deliveries(self, erasure: Erasure) -> int:
        pattern = erasure.pattern()
        if pattern is None:
            return 0
        d = store.deliveries
        changed, after = 0, ""
        while True:
            async with self.db.transaction() as conn:
                rows = (
                    await conn.execute(
                        sa.select(d.c.id, d.c.payload)
                        .where(
                            d.c.tenant_id == erasure.tenant.id,
                            d.c.app == erasure.app,
                            d.c.id > after,
                        )
                        .order_by(d.c.id)
                        .limit(BATCH)
                    )
                ).all()
                for row in rows:
                    new, hit = scrub(json.loads(row.payload), pattern)
                    if hit:
                        text = json.dumps(new, separators=(",", ":"), default=str)
                        await conn.execute(d.update().where(d.c.id == row.id).values(payload=text))
                        changed += 1
            if len(rows) < BATCH:
                return changed
            after = rows[-1].id
