"""`fleetwright secret`: store Prefect Secret blocks for `secret` command parameters.

A value is read from stdin (a hidden prompt on a terminal), never from arguments: argv is
visible to every local process and lands in shell history.
"""

from __future__ import annotations

import asyncio
import sys

import typer

from fleetwright.errors import FleetwrightError, PrefectUnavailableError, ValidationError
from fleetwright.specs import block_name_for

__all__ = ["app"]

app = typer.Typer(
    help="Secrets for command parameters (Prefect Secret blocks).", no_args_is_help=True
)


@app.callback()
def _group() -> None:
    """Secrets for command parameters (Prefect Secret blocks)."""


def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


def _read_value(name: str) -> str:
    if sys.stdin.isatty():
        value = str(typer.prompt(f"Value of {name}", hide_input=True))
    else:
        value = sys.stdin.read()
        if value.endswith("\n"):  # `echo pw | ...` and here-strings add one
            value = value[:-1]
            value = value.removesuffix("\r")
    if not value:
        raise ValidationError(f"secret {name!r}: stdin was empty; pipe the value in")
    return value


async def _save(name: str, value: str) -> None:
    from prefect.blocks.system import Secret

    try:
        await Secret(value=value).asave(name, overwrite=True)
    except Exception as exc:
        raise PrefectUnavailableError(
            f"could not store Secret block {name!r} ({type(exc).__name__}); "
            "check the Prefect server is up (`fleetwright up`)"
        ) from None


@app.command("set")
def set_secret(
    name: str = typer.Argument(
        help="Block name, or a per-profile name as a command renders it, e.g. site-Ada_1"
    ),
) -> None:
    """Store a secret read from stdin under NAME (overwriting it)."""
    block = block_name_for(name)
    try:
        value = _read_value(block)
        asyncio.run(_save(block, value))
    except FleetwrightError as exc:
        _fail(exc.message)
    typer.echo(f"stored Secret block {block}")
