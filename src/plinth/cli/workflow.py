"""`plinth worker`: run workflow workers against the platform database."""

from __future__ import annotations

import asyncio
import logging
import signal

import typer

cli = typer.Typer(help="Run workflow workers (the job queue lives in the platform database).")


@cli.callback()
def _group() -> None:
    """Workflow commands (kept a group so `worker` stays a named subcommand)."""


@cli.command()
def worker(
    poll: float = typer.Option(0.2, help="Seconds to sleep when no job is due"),
    lease: float = typer.Option(
        30.0,
        help="Seconds a claimed job stays ours before others "
        "may retry it (a crashed worker's jobs resume then)",
    ),
    concurrency: int = typer.Option(1, help="Jobs processed at once in this process"),
) -> None:
    """Process workflow jobs until interrupted (SIGINT/SIGTERM finish the current step)."""
    from plinth.server.platform import Platform
    from plinth.settings import Settings

    logging.basicConfig(level=logging.INFO)
    settings = Settings(embedded_worker=False)
    asyncio.run(_work(Platform(settings), poll, lease, concurrency))


async def _work(platform: object, poll: float, lease: float, concurrency: int) -> None:
    from plinth.server.platform import Platform

    assert isinstance(platform, Platform)
    await platform.start(listen=True)  # steps write records: compiled apps must follow
    platform.workflows.engine.lease = lease
    platform.governance.start_anchoring()
    platform.start_outbox_worker()
    # Steps call plugins: their worker pool starts now, not during the first calls.
    warming = asyncio.create_task(platform.plugins.warm())
    warming.add_done_callback(_warmed)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await asyncio.gather(
            *(platform.workflows.engine.work(stop, poll) for _ in range(concurrency)),
            platform.connectors.webhooks.work(stop, poll),
        )  # webhook queue
    finally:
        warming.cancel()
        await platform.stop()


def _warmed(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logging.getLogger("plinth.workflows").warning(
            "the plugin workers could not be started ahead: %s", task.exception()
        )
