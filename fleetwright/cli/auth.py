"""`fleetwright auth ...`: the credential of the local Prefect server `fleetwright up` runs."""

from __future__ import annotations

import typer

from fleetwright.cli.output import console

__all__ = ["app"]

app = typer.Typer(no_args_is_help=True)


@app.callback()
def _group() -> None:
    """The Prefect API credential of the local server `fleetwright up` runs."""


@app.command("rotate")
def rotate_cmd() -> None:
    """Write a new Prefect API credential into the home (the old one stops working once
    `fleetwright up` is restarted)."""
    from fleetwright.prefect_auth import auth_path, hint, rotate_auth
    from fleetwright.settings import get_settings

    home = get_settings().home
    value = rotate_auth(home)
    console.print(
        f"New Prefect API credential {hint(value)} in {auth_path(home)}. Restart "
        "`fleetwright up` (Ctrl-C, then start it again): the server and its workers keep the "
        "old one until then. Browsers log in again with the new one.",
        highlight=False,
        soft_wrap=True,  # paths stay whole for copying
    )


@app.command("where")
def where_cmd() -> None:
    """Print the file that holds the credential (for the UI's login); never the credential."""
    from fleetwright.prefect_auth import auth_path, hint, read_auth
    from fleetwright.settings import get_settings

    home = get_settings().home
    value = read_auth(home)
    if value is None:
        console.print(
            f"No credential yet at {auth_path(home)}: `fleetwright up` generates it.",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(1)
    typer.echo(f"{auth_path(home)} ({hint(value)})")
