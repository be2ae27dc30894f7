"""The extension layer's copy sites: plugin storage and metering."""

from __future__ import annotations

import sqlalchemy as sa

from plinth.db import Database
from plinth.extensions import store
from plinth.governance.compliance.inventory import CopySite, Erasure


class PluginCopies:
    def __init__(self, db: Database) -> None:
        self.db = db

    def sites(self) -> list[CopySite]:
        return [
            CopySite(
                "extensions.plugin_storage",
                "plugin_kv.value",
                "what a plugin with the kv capability chose to keep",
                encrypted="clear",
                masked="clear",
                erase=self.erase_storage,
                how="erased values replaced in the tenant's plugin storage",
                receives_records=False,
            ),
            CopySite(
                "extensions.metering",
                "plugin_calls",
                "per call: plugin, target, outcome, fuel, time, memory; no values",
                encrypted="redacted",
                masked="redacted",
                personal="none",
                how="holds no values",
            ),
        ]

    async def erase_storage(self, erasure: Erasure) -> int:
        pattern = erasure.pattern()
        if pattern is None:
            return 0
        kv = store.plugin_kv
        changed = 0
        async with self.db.transaction() as conn:
            rows = (
                await conn.execute(
                    sa.select(kv.c.plugin, kv.c.key, kv.c.value).where(
                        kv.c.tenant_id == erasure.tenant.id
                    )
                )
            ).all()
            for row in rows:
                new = pattern.sub("[erased]", row.value)
                if new != row.value:
                    await conn.execute(
                        kv.update()
                        .where(
                            kv.c.tenant_id == erasure.tenant.id,
                            kv.c.plugin == row.plugin,
                            kv.c.key == row.key,
                        )
                        .values(value=new)
                    )
                    changed += 1
        return changed
