"""`plinth plugin …`: scaffold, build, package and publish plugins."""

from __future__ import annotations

import asyncio
from pathlib import Path

import typer

from plinth.errors import PlinthError
from plinth.extensions import build as build_mod
from plinth.extensions.package import pack, read_modules

cli = typer.Typer(help="Write, build and publish sandboxed plugins.", no_args_is_help=True)

MANIFEST_TEMPLATE = """name = "{name}"
version = "0.1.0"
publisher = "me"
description = "What {name} does."
# Capabilities the tenant admin approves at install: log, records.read, records.write,
# http, kv, clock. Ask for as little as you can.
capabilities = ["log"]

[actions.hello]
description = "Greets someone."
input = {{ type = "object", properties = {{ name = {{ type = "string" }} }}, required = ["name"] }}
output = {{ type = "object", properties = {{ greeting = {{ type = "string" }} }} }}

# [before_write]
# entities = ["claims.claim"]
"""

PLUGIN_TEMPLATE = '''"""{name}: a Plinth plugin. Plain Python; it runs in a WebAssembly sandbox."""

from plinth_sdk import Reject, action, before_write, log  # noqa: F401


@action("hello")
def hello(input):
    log(f"greeting {{input['name']}}")
    return {{"greeting": f"Hello, {{input['name']}}!"}}


# @before_write
# def check(app, entity, record):
#     if record.get("amount", 0) < 0:
#         raise Reject(("amount", "must not be negative"))
#     return record
'''


def _fail(exc: PlinthError) -> None:
    typer.secho(
        f"error: {exc.detail}" + (f" (at {exc.path})" if exc.path else ""), fg="red", err=True
    )
    for fault in exc.faults:
        typer.echo(f"  {fault.path}: {fault.message}", err=True)
    if "output" in exc.extra:
        typer.echo(str(exc.extra["output"]), err=True)
    raise typer.Exit(1)


@cli.command()
def new(name: str, directory: Path = typer.Option(None, help="Default: ./NAME")) -> None:
    """Scaffold a plugin: plinth-plugin.toml and plugin.py."""
    target = directory or Path(name)
    if target.exists() and any(target.iterdir()):
        typer.secho(f"error: {target} exists and is not empty", fg="red", err=True)
        raise typer.Exit(1)
    target.mkdir(parents=True, exist_ok=True)
    (target / build_mod.MANIFEST).write_text(MANIFEST_TEMPLATE.format(name=name))
    (target / build_mod.ENTRY).write_text(PLUGIN_TEMPLATE.format(name=name))
    typer.echo(f"Created {target}/ — edit plugin.py, then: plinth plugin build {target}")


@cli.command()
def build(
    directory: Path,
    cache_dir: Path = typer.Option(None, help="Build cache"),
    out: Path = typer.Option(None, help="Package file; default DIR/dist/NAME-VERSION.zip"),
) -> None:
    """Build the plugin in DIRECTORY into a package (cached by source hash)."""
    from plinth.extensions import manifest as manifest_mod

    try:
        wasm = build_mod.build(directory, cache_dir)
        text = (directory / build_mod.MANIFEST).read_text()
        m = manifest_mod.parse(text)
        modules = read_modules(m, directory)  # the UI modules its components name
        data = pack(text, wasm.read_bytes(), modules=modules)
    except PlinthError as exc:
        _fail(exc)
        return
    target = out or directory / "dist" / f"{m.name}-{m.version}.zip"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    typer.echo(f"Built {target} ({target.stat().st_size} bytes; component {wasm.name})")


@cli.command()
def publish(file: Path) -> None:
    """Publish a package file to this server's registry (as platform admin)."""
    from plinth.governance.principal import PLATFORM_ADMIN, Principal
    from plinth.server.platform import Platform
    from plinth.settings import Settings

    data = file.read_bytes()

    async def run() -> None:
        platform = Platform(Settings())
        await platform.start()
        try:
            admin = Principal("cli", "user", frozenset({PLATFORM_ADMIN}), name="cli")
            v = await platform.plugins.publish(data, admin)
            typer.echo(f"Published {v.name} {v.version} sha256={v.sha256} size={v.size}")
        finally:
            await platform.stop()

    try:
        asyncio.run(run())
    except PlinthError as exc:
        _fail(exc)
