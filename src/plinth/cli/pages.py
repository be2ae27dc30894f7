"""`plinth app compile`: write an app's pages as a compile target (react, webcomponents)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from plinth.cli.common import run, settings_for
from plinth.compiler.targets.spec import app_spec

cli = typer.Typer(help="Compile an app's pages to a target.", no_args_is_help=True)

TARGETS = ("react", "webcomponents")


@cli.callback()
def _group() -> None:
    """Keep `compile` a subcommand even while it is the only one."""


def spec_from_folder(folder: Path, tenant: str) -> dict[str, Any]:
    """The spec of an exported YAML folder (checked like a publish would)."""
    from plinth.metadata.definition import check, content_hash
    from plinth.metadata.files import read_folder

    head, definition = read_folder(folder)
    check(definition)
    return app_spec(
        tenant, head["app"], head.get("name", head["app"]), 0, content_hash(definition), definition
    )


async def spec_from_platform(
    platform: Any, tenant: str, app: str, version: int | None
) -> dict[str, Any]:
    """The spec of a published version (the active one by default)."""
    from plinth.errors import NotFound

    t = await platform.tenants.get(tenant)
    a = await platform.metadata.get_app(t, app)
    v = (
        await platform.metadata.version(t, app, version)
        if version is not None
        else await platform.metadata.active_version(t, app)
    )
    if v is None:
        raise NotFound(f"App {app!r} has no published version", path="app")
    return app_spec(t.slug, a.slug, a.name, v.number, v.hash, v.definition)


@cli.command("compile")
def compile_app(
    tenant: str,
    app: Annotated[str, typer.Argument(metavar="APP")],
    out: Annotated[Path, typer.Argument(metavar="DIR", help="where to write the output")],
    target: Annotated[str, typer.Option(help="react | webcomponents")] = "react",
    version: Annotated[int | None, typer.Option(help="published version (default: active)")] = None,
    folder: Annotated[
        Path | None, typer.Option(help="compile an exported YAML folder instead of the database")
    ] = None,
    data_dir: Annotated[Path | None, typer.Option(envvar="PLINTH_DATA_DIR")] = None,
    database_url: Annotated[str | None, typer.Option(envvar="PLINTH_DATABASE_URL")] = None,
) -> None:
    """Write the pages of TENANT/APP into DIR as a React project or a Web Components module."""
    if target not in TARGETS:
        raise typer.BadParameter(f"choose one of {', '.join(TARGETS)}", param_hint="--target")
    if folder is not None:
        spec = spec_from_folder(folder, tenant)
    else:
        settings = settings_for(data_dir, database_url)
        spec = run(settings, lambda p: spec_from_platform(p, tenant, app, version))
    if target == "react":
        from plinth.compiler.targets.react import write_project

        written = write_project(out, spec)
        typer.echo(
            f"wrote a React project ({len(written)} files) to {out}; "
            f"build it with: cd {out} && npm install && npm run build"
        )
    else:
        from plinth.compiler.targets.webcomponents import compile_module

        out.mkdir(parents=True, exist_ok=True)
        path = out / f"{spec['slug']}.{spec['hash'][:16]}.js"
        path.write_text(compile_module(spec, "./plinth-runtime.js"))
        typer.echo(f"wrote {path}; serve it beside the runtime (tests/pages/setup.sh builds it)")
