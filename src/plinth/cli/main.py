"""`plinth`: run the platform and operate it from a shell.

Commands that change data open the platform database directly (the operator with access to it
is a platform admin by definition) and go through the same services as the HTTP API.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from collections.abc import Awaitable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from plinth.cli import audit, compliance, pages, plugin, vault, workflow
from plinth.cli.common import (
    DataDir,
    DbUrl,
    console,
    err_console,
    operator,
    run,
    settings_for,
)
from plinth.governance.tokens import IssuedToken
from plinth.server.platform import Platform
from plinth.settings import Settings

app = typer.Typer(
    help="Plinth: an open-source, multi-tenant low-code platform.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
tenant_cli = typer.Typer(help="Create and list tenants.", no_args_is_help=True)
app_cli = typer.Typer(
    help="Apps: export/import as YAML, publish, versions, diff, rollback.", no_args_is_help=True
)
token_cli = typer.Typer(help="API tokens for tenants and the platform admin.", no_args_is_help=True)
app.add_typer(tenant_cli, name="tenant")
app.add_typer(app_cli, name="app")
app.add_typer(token_cli, name="token")

# Each layer's operator commands, mounted as a group.
app.add_typer(audit.cli, name="audit")
app.add_typer(plugin.cli, name="plugin")
app.add_typer(workflow.cli, name="workflow")
app.add_typer(vault.cli, name="vault")
app.add_typer(compliance.cli, name="compliance")

# The commands DESIGN.md names at the top level: `plinth worker`, `plinth app compile`.
app.command("worker", help="Run workflow workers against the platform database.")(workflow.worker)
app_cli.command("compile", help="Compile an app's pages (react | webcomponents).")(
    pages.compile_app
)

# -- serve / demo ----------------------------------------------------------------------------


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Interface to bind [PLINTH_HOST]")] = None,
    port: Annotated[int | None, typer.Option(help="Port [PLINTH_PORT]")] = None,
    data_dir: DataDir = None,
    database_url: DbUrl = None,
    workers: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Server processes sharing the port (default: one per core with "
            "PLINTH_REDIS_URL, else 1: co-editing rooms need Redis across processes)",
        ),
    ] = None,
) -> None:
    """Run the platform server (embedded SQLite by default)."""
    settings = settings_for(data_dir, database_url, host=host, port=port)
    token = run(settings, lambda p: _admin_token(p, rotate=False))
    if workers is None:
        workers = (os.cpu_count() or 1) if settings.redis_url else 1
    _serve(settings, token, workers)


@app.command()
def demo(
    host: Annotated[str | None, typer.Option(help="Interface to bind")] = None,
    port: Annotated[int | None, typer.Option(help="Port")] = None,
    data_dir: DataDir = None,
    database_url: DbUrl = None,
    load_only: Annotated[bool, typer.Option(help="Load the demo, then exit")] = False,
    plugins: Annotated[bool, typer.Option(help="Build and install the example plugins")] = True,
    seed: Annotated[
        bool, typer.Option(help="Create the demo's sample records (policies, claims, tasks)")
    ] = True,
    reset: Annotated[
        bool, typer.Option(help="Delete the data dir first, then load the demo afresh")
    ] = False,
    new_admin_token: Annotated[
        bool, typer.Option(help="Issue a new admin token, revoking the generated one")
    ] = False,
) -> None:
    """Run the platform with the demo insurer tenant and its claims app.

    The demo is loaded into an empty data dir only; later starts serve what is there, your
    changes included, with the same admin token (`--reset` starts afresh)."""
    from plinth.demo import TENANT, demo_state, load_demo
    from plinth.demo.seed import seed_state

    settings = settings_for(data_dir, database_url, host=host, port=port, demo=True)
    if reset:
        _reset(settings)
    if not settings.egress_allow:
        # The demo's connectors call this very server (the FX stand-in, its own webhook
        # endpoint) on loopback, which the SSRF guard refuses unless allowed. Only when the
        # operator has not chosen PLINTH_EGRESS_ALLOW.
        settings = settings.model_copy(update={"egress_allow": "127.0.0.1/32"})
        console.print(
            "… outbound calls may reach 127.0.0.1 (the demo's connectors call this "
            "server; set PLINTH_EGRESS_ALLOW to choose)"
        )
    where = str(settings.data_dir) if settings.database_url is None else "the database"

    async def prepare(platform: Platform) -> str | None:
        from plinth.server.app import create_app  # seeding drives the HTTP API

        state = await demo_state(platform)
        if state in ("empty", "partial"):
            summary = await load_demo(
                platform,
                operator(),
                plugins=plugins,
                compile=not load_only,
                seed=seed,
                progress=lambda note: console.print(f"… {note}"),
                http=create_app(platform=platform),
            )
            for line in summary:
                console.print(f"[green]✓[/green] {line}")
        elif state == "loaded":
            console.print(
                f"… the demo in {where} is served as you left it (--reset loads it afresh)"
            )
            if seed and await seed_state(platform, TENANT) == "started":
                console.print(
                    "[yellow]…[/yellow] the demo's sample records did not finish loading last "
                    "time (some are there); ./scripts/demo --reset loads the demo afresh"
                )
        else:
            console.print(
                f"… {where} holds other tenants: the demo is not loaded (choose another "
                "--data-dir, or --reset)"
            )
        return await _admin_token(platform, rotate=new_admin_token)

    token = run(settings, prepare)
    if load_only:
        if token:
            print(f"Admin token (shown once): {token}")
        return
    _serve(settings, token)


def _reset(settings: Settings) -> None:
    """Delete the embedded data dir, saying so; refuse anything that is not one."""
    folder = settings.data_dir
    if settings.database_url is not None:
        err_console.print(
            "[red]error[/red]: --reset deletes the embedded data dir; the database at "
            "PLINTH_DATABASE_URL is not in it (drop and create that database instead)"
        )
        raise typer.Exit(2)
    if not folder.exists():
        return
    if any(folder.iterdir()) and not (
        (folder / "plinth.db").exists() or (folder / "master.key").exists()
    ):
        err_console.print(
            f"[red]error[/red]: {folder} does not look like a Plinth data dir (no plinth.db, "
            "no master.key): not deleting it"
        )
        raise typer.Exit(2)
    console.print(f"… --reset: deleting {folder} (its database, master key and files)")
    shutil.rmtree(folder)


async def _admin_token(platform: Platform, *, rotate: bool) -> str | None:
    """The platform admin token to show: one created just now, or a new one on request.

    Only the commands that show it (`serve`, `demo`) create one: a token made by any other
    command would exist without anyone ever having seen it."""
    if platform.settings.admin_token:
        if rotate:
            err_console.print("PLINTH_ADMIN_TOKEN is set: that is the admin token (none issued)")
        return platform.admin_token.token if platform.admin_token is not None else None
    audit = platform.governance.audit.by(None, operator().audit_name())  # the platform's chain
    if rotate:
        return (await platform.tokens.rotate_named_admin("admin", audit)).token
    issued = await platform.tokens.ensure_admin(None, audit)  # None: one exists already
    return issued.token if issued is not None else None


def _serve(settings: Settings, token: str | None, workers: int = 1) -> None:
    import uvicorn

    from plinth.server.app import SETTINGS_ENV, create_app

    url = settings.self_url
    console.print(
        f"Plinth is starting at [bold]{url}[/bold] "
        f"(database: {settings.resolved_database_url.split('://')[0]})"
    )
    if token:  # plain print: a wrapped token cannot be copied
        print(f"Admin token (shown once): {token}")
        print(f"  try: curl -H 'Authorization: Bearer {token}' {url}/api/tenants", flush=True)
    else:
        console.print(
            "Admin token: the one shown when it was created (for a new one: `plinth token "
            "rotate-admin`, or `plinth demo --new-admin-token`)"
        )
    # uvloop and httptools: the event loop and HTTP parser in C (uvicorn's "auto" picks them
    # too when installed; said here so a missing one fails loudly instead of running slower).
    # WebSocket messages go out uncompressed, as Hocuspocus and y-websocket's server send
    # them: the designer's are small binary Yjs updates that deflate barely shrinks, and a
    # compressor per connection cost a room of 200 editors a sixth of the server's CPU.
    if workers == 1:
        uvicorn.run(
            create_app(settings),
            host=settings.host,
            port=settings.port,
            loop="uvloop",
            http="httptools",
            ws_per_message_deflate=False,
            log_level=settings.log_level,
        )
        return
    if not settings.redis_url:
        console.print(
            f"… {workers} processes without PLINTH_REDIS_URL: changes reach the others through "
            "local sockets, but co-editing rooms and rate limits are per process"
        )
    with tempfile.TemporaryDirectory(prefix="plinth-workers-") as siblings:
        if not settings.redis_url:
            settings = settings.model_copy(update={"siblings_dir": Path(siblings)})
        os.environ[SETTINGS_ENV] = settings.model_dump_json()
        uvicorn.run(
            "plinth.server.app:app_from_environment",
            factory=True,
            workers=workers,
            # A worker answers the supervisor's pings once its app is imported and started; on
            # a busy machine that takes longer than uvicorn's 5 s, and it would be killed.
            timeout_worker_healthcheck=60,
            host=settings.host,
            port=settings.port,
            loop="uvloop",
            http="httptools",
            ws_per_message_deflate=False,
            log_level=settings.log_level,
        )


# -- tenants ---------------------------------------------------------------------------------


@tenant_cli.command("create")
def tenant_create(
    slug: str,
    name: Annotated[str | None, typer.Option(help="Display name")] = None,
    region: Annotated[str, typer.Option(help="Region the tenant's data lives in")] = "default",
    data_dir: DataDir = None,
    database_url: DbUrl = None,
) -> None:
    """Create a tenant."""
    tenant = run(
        settings_for(data_dir, database_url), lambda p: p.tenants.create(slug, name, region=region)
    )
    console.print(f"Created tenant [bold]{tenant.slug}[/bold] in region {tenant.region}")


@tenant_cli.command("list")
def tenant_list(data_dir: DataDir = None, database_url: DbUrl = None) -> None:
    """List tenants."""
    tenants = run(settings_for(data_dir, database_url), lambda p: p.tenants.list())
    table = Table("slug", "name", "region", "created")
    for t in tenants:
        table.add_row(t.slug, t.name, t.region, t.created_at.isoformat(timespec="seconds"))
    console.print(table)


# -- apps ------------------------------------------------------------------------------------


@app_cli.command("export")
def app_export(
    tenant: str,
    app_slug: Annotated[str, typer.Argument(metavar="APP")],
    folder: Path,
    version: Annotated[str, typer.Option(help="'draft', 'active' or a version number")] = "draft",
    data_dir: DataDir = None,
    database_url: DbUrl = None,
) -> None:
    """Write an app as a folder of YAML files (one per document) that diffs well in git."""
    from plinth.metadata.files import write_folder

    async def work(p: Platform) -> dict[str, str]:
        ref: int | str = int(version) if version.isdigit() else version
        return await p.files.export(await p.tenants.get(tenant), app_slug, ref)

    files = run(settings_for(data_dir, database_url), work)
    write_folder(folder, files)
    console.print(f"Wrote {len(files)} files to {folder}")


@app_cli.command("import")
def app_import(
    tenant: str,
    folder: Path,
    slug: Annotated[str | None, typer.Option(help="App slug (default: from app.yaml)")] = None,
    publish: Annotated[bool, typer.Option(help="Publish the imported draft")] = False,
    data_dir: DataDir = None,
    database_url: DbUrl = None,
) -> None:
    """Read an exported folder into an app's draft (creating the app if needed)."""

    async def work(p: Platform) -> str:
        t = await p.tenants.get(tenant)
        app_, draft = await p.files.import_folder(t, folder, slug=slug, by=operator().name)
        line = f"Imported {folder} into {t.slug}/{app_.slug} (draft revision {draft.revision})"
        if publish:
            outcome = await p.metadata.publish(t, app_.slug, operator())
            line += (
                f"; published version {outcome.version.number}"
                if outcome.created
                else "; unchanged, nothing to publish"
            )
        return line

    console.print(run(settings_for(data_dir, database_url), work))


@app_cli.command("publish")
def app_publish(
    tenant: str,
    app_slug: Annotated[str, typer.Argument(metavar="APP")],
    message: Annotated[str, typer.Option("--message", "-m")] = "",
    allow_destructive: Annotated[bool, typer.Option(help="Allow changes that drop data")] = False,
    data_dir: DataDir = None,
    database_url: DbUrl = None,
) -> None:
    """Publish the app's draft as a new active version."""

    async def work(p: Platform) -> Any:
        return await p.metadata.publish(
            await p.tenants.get(tenant),
            app_slug,
            operator(),
            message=message,
            options={"allow_destructive": allow_destructive},
        )

    outcome = run(settings_for(data_dir, database_url), work)
    if outcome.created:
        console.print(f"Published version {outcome.version.number} ({outcome.version.hash[:12]})")
        for result in outcome.results:
            console.print(f"  {result.step}: {result.status}")
    else:
        console.print(f"Nothing changed since version {outcome.version.number}")


@app_cli.command("versions")
def app_versions(
    tenant: str,
    app_slug: Annotated[str, typer.Argument(metavar="APP")],
    data_dir: DataDir = None,
    database_url: DbUrl = None,
) -> None:
    """List an app's published versions."""

    async def work(p: Platform) -> Any:
        return await p.metadata.versions(await p.tenants.get(tenant), app_slug)

    found, versions = run(settings_for(data_dir, database_url), work)
    table = Table("version", "hash", "by", "when", "message", "active")
    for v in versions:
        table.add_row(
            str(v.number),
            v.hash[:12],
            v.created_by or "",
            v.created_at.isoformat(timespec="seconds"),
            v.message,
            "●" if v.number == found.active_version else "",
        )
    console.print(table)


@app_cli.command("diff")
def app_diff(
    tenant: str,
    app_slug: Annotated[str, typer.Argument(metavar="APP")],
    from_: Annotated[str, typer.Option("--from", help="Version number, 0 (empty) or 'draft'")],
    to: Annotated[str, typer.Option(help="Version number or 'draft'")] = "draft",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
    data_dir: DataDir = None,
    database_url: DbUrl = None,
) -> None:
    """Show what changed between two versions (documents and fields, renames included)."""

    async def work(p: Platform) -> Any:
        return await p.metadata.diff(await p.tenants.get(tenant), app_slug, from_, to)

    changes = run(settings_for(data_dir, database_url), work)
    if as_json:
        sys.stdout.write(json.dumps(changes, indent=2) + "\n")
        return
    if not changes:
        console.print("No changes")
    for change in changes:
        _print_change(change, 0)


def _print_change(change: dict[str, Any], depth: int) -> None:
    sign = {
        "added": "[green]+[/green]",
        "removed": "[red]-[/red]",
        "renamed": "[cyan]→[/cyan]",
        "changed": "[yellow]~[/yellow]",
        "reordered": "[blue]↕[/blue]",
    }[change["op"]]
    text = f"{'  ' * depth}{sign} {change['path']}"
    if change["op"] == "renamed":
        text += f" (was {change['from']})"
    if change["op"] == "changed" and "to" in change:
        text += f": {json.dumps(change.get('from'))} → {json.dumps(change['to'])}"
    console.print(text)
    for inner in change.get("changes", []):
        _print_change(inner, depth + 1)


@app_cli.command("rollback")
def app_rollback(
    tenant: str,
    app_slug: Annotated[str, typer.Argument(metavar="APP")],
    version: int,
    reset_draft: Annotated[bool, typer.Option(help="Also make it the draft")] = False,
    allow_destructive: Annotated[bool, typer.Option(help="Allow changes that drop data")] = False,
    data_dir: DataDir = None,
    database_url: DbUrl = None,
) -> None:
    """Activate an older version."""

    async def work(p: Platform) -> Any:
        return await p.metadata.rollback(
            await p.tenants.get(tenant),
            app_slug,
            version,
            operator(),
            reset_draft=reset_draft,
            options={"allow_destructive": allow_destructive},
        )

    run(settings_for(data_dir, database_url), work)
    console.print(f"Version {version} is active")


# -- tokens ----------------------------------------------------------------------------------


@token_cli.command("create")
def token_create(
    tenant: str,
    role: Annotated[str, typer.Option(help="owner, designer, analyst or viewer")] = "viewer",
    name: Annotated[str, typer.Option(help="What the token is for")] = "cli",
    data_dir: DataDir = None,
    database_url: DbUrl = None,
) -> None:
    """Issue an API token bound to a tenant and role (printed once)."""
    from plinth.governance.access import ROLE_ACTIONS

    if role not in ROLE_ACTIONS:
        err_console.print(f"[red]error[/red]: unknown role {role!r}")
        raise typer.Exit(2)

    async def work(p: Platform) -> Any:
        t = await p.tenants.get(tenant)
        audit = p.governance.audit.by(t.id, operator().audit_name())  # ledgered with the token
        return await p.tokens.issue(name, role, tenant_id=t.id, audit=audit)

    issued = run(settings_for(data_dir, database_url), work)
    print(issued.token)


@token_cli.command("rotate-admin")
def token_rotate_admin(data_dir: DataDir = None, database_url: DbUrl = None) -> None:
    """Issue a new platform admin token, revoking the earlier generated ones."""

    def work(p: Platform) -> Awaitable[IssuedToken]:
        audit = p.governance.audit.by(None, operator().audit_name())  # the platform's chain
        return p.tokens.rotate_named_admin("admin", audit)

    issued = run(settings_for(data_dir, database_url), work)
    print(f"New admin token (shown once): {issued.token}")


if __name__ == "__main__":  # pragma: no cover
    app()
