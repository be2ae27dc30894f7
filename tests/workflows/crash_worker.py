"""A real worker process for the crash test: its plugin pays out into a ledger table.

The payout honours the idempotency key the engine hands it (a unique key column), then writes a
marker and sleeps, so the test can SIGKILL the process between the side effect and the commit.
Run: python crash_worker.py <database_url> <marker_dir> <sleep_seconds>
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

from sqlalchemy import text

from plinth.server.platform import Platform
from plinth.settings import Settings


class LedgerPlugin:
    def __init__(self, platform: Platform, marker: Path, sleep: float) -> None:
        self.platform, self.marker, self.sleep = platform, marker, sleep

    async def call_action(
        self, tenant: Any, plugin: str, action: str, input: dict[str, Any], principal: Any
    ) -> dict[str, Any]:
        key = input["idempotency_key"]
        async with self.platform.db.transaction() as conn:
            await conn.execute(text("INSERT INTO crash_calls (key) VALUES (:k)"), {"k": key})
            seen = (
                await conn.execute(text("SELECT 1 FROM crash_ledger WHERE key = :k"), {"k": key})
            ).first()
            if seen is None:
                await conn.execute(
                    text("INSERT INTO crash_ledger (key, amount) VALUES (:k, :a)"),
                    {"k": key, "a": input["amount"]},
                )
        (self.marker / key.replace(":", "_")).write_text("paid")
        await asyncio.sleep(self.sleep)  # the window a crash hits: paid, not yet committed
        return {"paid": input["amount"]}


async def main(url: str, marker: Path, sleep: float) -> None:
    platform = Platform(Settings(database_url=url, embedded_worker=False))
    await platform.start()
    platform.plugins = LedgerPlugin(platform, marker, sleep)  # type: ignore[attr-defined]
    platform.workflows.engine.lease = 1.0
    stop = asyncio.Event()
    await platform.workflows.engine.work(stop, 0.05)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], Path(sys.argv[2]), float(sys.argv[3])))
