"""`plinth audit …`: verify a tenant's hash chain, export its events."""

from __future__ import annotations

import asyncio
import json

import typer

from plinth.settings import Settings

cli = typer.Typer(help="The audit ledger: verify the hash chain, export events.")


async def _verify(tenant: str, anchor: str | None) -> int:
    from plinth.governance.anchor import anchor_of
    from plinth.server.platform import Platform

    platform = Platform(Settings())
    await platform.start()
    try:
        found = await platform.tenants.find(tenant)
        if found is None and tenant != "_platform":
            typer.echo(f"No tenant named {tenant!r}", err=True)
            return 2
        report = await platform.governance.audit.verify(
            found.id if found else None, anchor=anchor_of(anchor) if anchor else None
        )
        target = anchor or platform.settings.audit_anchor
    finally:
        await platform.stop()
    if report.ok:
        legacy = f", {report.legacy} of them from before the keyed chain" if report.legacy else ""
        anchored = f", {report.anchored} anchored checkpoints ({target})" if target else ""
        typer.echo(
            f"OK: {report.checked} events{legacy}, chain intact, "
            f"{report.checkpoints} signed checkpoints{anchored}"
        )
        return 0
    typer.echo(
        f"BROKEN at event {report.broken_at}: {report.reason} "
        f"({report.checked} events verified before it)"
    )
    return 1


@cli.command()
def verify(
    tenant: str = typer.Argument(..., help="tenant slug (or _platform)"),
    anchor: str | None = typer.Option(
        None, help="check against this anchor (file or URL) [PLINTH_AUDIT_ANCHOR]"
    ),
) -> None:
    """Check TENANT's audit chain: every link, MAC, signed checkpoint and anchored checkpoint
    (exit 1 at the first that does not hold)."""
    raise typer.Exit(asyncio.run(_verify(tenant, anchor)))


async def _anchor(target: str | None) -> int:
    from plinth.governance.anchor import anchor_of
    from plinth.server.platform import Platform

    platform = Platform(Settings())
    await platform.start()
    try:
        where = target or platform.settings.audit_anchor
        if not where:
            typer.echo("Name an anchor: --to FILE|URL or PLINTH_AUDIT_ANCHOR", err=True)
            return 2
        sent = await platform.governance.audit.export_anchor(anchor_of(where))
    finally:
        await platform.stop()
    typer.echo(f"Anchored the newest checkpoint of {sent} chains to {where}")
    return 0


@cli.command()
def anchor(
    to: str | None = typer.Option(None, help="file path or http(s) URL [PLINTH_AUDIT_ANCHOR]"),
) -> None:
    """Copy every chain's newest signed checkpoint to an anchor outside the database."""
    raise typer.Exit(asyncio.run(_anchor(to)))


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
