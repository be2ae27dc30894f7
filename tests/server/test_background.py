"""Only a server (`plinth serve`, `plinth demo`) and `plinth worker` work the queues.

A CLI command opens the same database as the server; had it started the workflow and webhook
workers, it would attempt deliveries with its own settings (its own egress allowance, no
demo stand-ins) and could mark them dead behind the server's back.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from plinth.server import Platform
from plinth.settings import Settings
from tests.conftest import ADMIN_TOKEN
from tests.helpers import run_cli


async def _queue_a_delivery(settings: Settings) -> tuple[str, str]:
    """A tenant and a webhook delivery due now, for a connector no app publishes: whoever
    attempts it marks it dead at once."""
    platform = Platform(settings)
    await platform.start()
    try:
        tenant = await platform.tenants.create("acme", "Acme")
        delivery = await platform.connectors.webhooks.enqueue(
            tenant.id,
            "claims",
            "gone",
            {"url": "http://127.0.0.1:9/hook"},
            "record.created",
            {"app": "claims", "entity": "claim", "id": "r1"},
        )
        return tenant.id, delivery
    finally:
        await platform.stop()


async def _delivery(settings: Settings, tenant_id: str, delivery_id: str) -> tuple[str, int]:
    platform = Platform(settings)
    await platform.start()
    try:
        found = await platform.connectors.webhooks.get(tenant_id, delivery_id)
        return found.status, found.attempts
    finally:
        await platform.stop()


def test_cli_commands_leave_the_queues_to_the_server(database_url: str, tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path / "data", database_url=database_url, admin_token=ADMIN_TOKEN
    )
    assert settings.embedded_worker  # a server with these settings would work the queue
    tenant_id, delivery_id = asyncio.run(_queue_a_delivery(settings))
    env = {
        "PLINTH_DATA_DIR": str(settings.data_dir),
        "PLINTH_DATABASE_URL": database_url,
        "PLINTH_EMBEDDED_WORKER": "true",
    }
    assert "OK:" in run_cli(env, "audit", "verify", "acme")
    assert "acme" in run_cli(env, "tenant", "list")
    assert "Nothing changed" not in run_cli(env, "token", "create", "acme", "--role", "viewer")
    assert asyncio.run(_delivery(settings, tenant_id, delivery_id)) == ("pending", 0)

    # What a server does with the same queue (the worker is what `plinth serve` runs).
    async def serve_briefly() -> tuple[str, int]:
        platform = Platform(settings)
        await platform.start(workers=True)
        try:
            for _ in range(200):
                found = await platform.connectors.webhooks.get(tenant_id, delivery_id)
                if found.status != "pending":
                    return found.status, found.attempts
                await asyncio.sleep(0.05)
            return found.status, found.attempts
        finally:
            await platform.stop()

    assert asyncio.run(serve_briefly()) == ("dead", 1)
