"""`plinth audit …`: verify a tenant's hash chain, export its events."""

from __future__ import annotations

import asyncio
import json

import typer

from plinth.settings import Settings

cli = typer.Typer(help="The audit ledger: verify the hash chain, export events.")


async def _verify(tenant: str) -> int:
    from plinth.server.platform import Platform

    platform = Platform(Settings())
    await platform.start()
    try:
        found = await platform.tenants.find(tenant)
        if found is None and tenant != "_platform":
            typer.echo(f"No tenant named {tenant!r}", err=True)
            return 2
        report = await platform.governance.audit.verify(found.id if found else None)
    finally:
        await platform.stop()
    if report.ok:
        typer.echo(f"OK: {report.checked} events, chain intact")
        return 0
    typer.echo(
        f"BROKEN at event {report.broken_at}: {report.reason} "
        f"({report.checked} events verified before it)"
    )
    return 1


@cli.command()
def verify(tenant: str = typer.Argument(..., help="tenant slug (or _platform)")) -> None:
    """Walk TENANT's audit chain and report the first broken link (exit 1 if any)."""
    raise typer.Exit(asyncio.run(_verify(tenant)))


async def _export(tenant: str) -> None:
    from plinth.server.platform import Platform

    platform = Platform(Settings())
    await platform.start()
    try:
        found = await platform.tenants.get(tenant)
        after = 0
        while True:
            page = await platform.governance.audit.list(found.id, after=after, limit=1000)
            for event in page:
                typer.echo(json.dumps(event, default=str))
            if len(page) < 1000:
                return
            after = page[-1]["n"]
    finally:
        await platform.stop()


@cli.command()
def export(tenant: str) -> None:
    """Print TENANT's audit events as JSON Lines."""
    asyncio.run(_export(tenant))
