"""What every `plinth` command shares: settings from flags, the operator, running a platform."""

from __future__ import annotations

import asyncio
import getpass
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console

from plinth.errors import PlinthError
from plinth.governance.principal import PLATFORM_ADMIN, Principal
from plinth.server.platform import Platform
from plinth.settings import Settings

T = TypeVar("T")
console = Console(soft_wrap=True)  # long lines (URLs, secrets) stay whole, to be copied
err_console = Console(stderr=True, soft_wrap=True)

DataDir = Annotated[Path | None, typer.Option(help="Where embedded data lives [PLINTH_DATA_DIR]")]
DbUrl = Annotated[str | None, typer.Option(help="Database URL [PLINTH_DATABASE_URL]")]


def settings_for(
    data_dir: Path | None = None, database_url: str | None = None, **overrides: Any
) -> Settings:
    """Settings from the environment, with CLI flags taking precedence."""
    values: dict[str, Any] = {k: v for k, v in overrides.items() if v is not None}
    if data_dir is not None:
        values["data_dir"] = data_dir
    if database_url is not None:
        values["database_url"] = database_url
    return Settings(**values)


def operator() -> Principal:
    """The shell user, acting as platform admin."""
    user = getpass.getuser()
    return Principal(
        id=f"cli:{user}", kind="cli", roles=frozenset({PLATFORM_ADMIN}), name=f"cli:{user}"
    )


def run(settings: Settings, work: Callable[[Platform], Awaitable[T]]) -> T:
    """Start a platform (migrations included), run `work`, stop; errors end the command."""

    async def main() -> T:
        platform = Platform(settings)
        await platform.start()
        try:
            return await work(platform)
        finally:
            await platform.stop()

    try:
        return asyncio.run(main())
    except PlinthError as exc:
        err_console.print(f"[red]error[/red] ({exc.code}): {exc.detail}")
        for fault in exc.faults:
            err_console.print(f"  {fault.path or '(root)'}: {fault.message}")
        raise typer.Exit(2) from exc
