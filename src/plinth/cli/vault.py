"""`plinth integration …`: operator commands for the secrets vault."""

from __future__ import annotations

import asyncio
import base64
import os

import typer

from plinth.integration.vault import parse_master_key
from plinth.settings import Settings

cli = typer.Typer(help="The integration mesh: secrets vault keys.")


@cli.command("new-master-key")
def new_master_key() -> None:
    """Print a fresh random master key (base64) for PLINTH_MASTER_KEY."""
    typer.echo(base64.b64encode(os.urandom(32)).decode())


@cli.command("rotate-master-key")
def rotate_master_key(
    new_key: str = typer.Option(
        ...,
        envvar="PLINTH_NEW_MASTER_KEY",
        prompt=True,
        hide_input=True,
        help="The new key (base64 of 32 bytes)",
    ),
) -> None:
    """Rewrap every tenant's data key with a new master key (then set PLINTH_MASTER_KEY)."""
    from plinth.server import Platform

    key = parse_master_key(new_key)

    async def run() -> int:
        platform = Platform(Settings())
        await platform.start()
        try:
            return await platform.vault.rotate_master(key, by="cli")
        finally:
            await platform.stop()

    moved = asyncio.run(run())
    typer.echo(
        f"Rewrapped {moved} data keys. Now run every node with the new "
        "PLINTH_MASTER_KEY (embedded: replace data_dir/master.key)."
    )


@cli.command("rotate-tenant-key")
def rotate_tenant_key(tenant: str) -> None:
    """Give a tenant a new data key and re-encrypt its secrets."""
    from plinth.server import Platform

    async def run() -> int:
        platform = Platform(Settings())
        await platform.start()
        try:
            found = await platform.tenants.get(tenant)
            return await platform.vault.rotate_tenant_key(found.id, by="cli")
        finally:
            await platform.stop()

    typer.echo(f"Tenant {tenant} now uses data key version {asyncio.run(run())}.")
