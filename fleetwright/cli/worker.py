"""`fleetwright worker start`: a warm worker that keeps a browser pool open for `run --now`."""

from __future__ import annotations

import asyncio
import logging

import typer

__all__ = ["app", "start"]

app = typer.Typer(no_args_is_help=True, help="Warm workers for on-demand sessions.")


@app.command("start")
def start(
    limit: int = typer.Option(8, "--limit", "-n", min=1, help="Sessions run at once."),
    status_port: int | None = typer.Option(None, help="Serve /status on this local port."),
    timeout: float | None = typer.Option(None, help="Stop after this many seconds."),
    relay: bool = typer.Option(
        True, "--relay/--no-relay", help="Take `run --now` from this host on a local socket."
    ),
) -> None:
    """Serve sessions as a Prefect task worker with a warm browser pool (Ctrl-C stops it)."""
    from fleetwright.deployments.warm_worker import serve_warm

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    try:
        asyncio.run(serve_warm(limit=limit, status_port=status_port, timeout=timeout, relay=relay))
    except KeyboardInterrupt:
        raise typer.Exit(0) from None
