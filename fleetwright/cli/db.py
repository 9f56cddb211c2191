"""`fleetwright db ...`: the catalogue's migrations."""

from __future__ import annotations

import typer

from fleetwright.cli.output import console

__all__ = ["app"]

app = typer.Typer(no_args_is_help=True)


@app.command("upgrade")
def upgrade_cmd() -> None:
    """Apply the catalogue's migrations (safe to run again)."""
    from fleetwright.catalogue.db import safe_url, upgrade
    from fleetwright.settings import get_settings

    url = get_settings().catalogue_url
    revision = upgrade(url)
    console.print(f"Catalogue at {safe_url(url)} is at revision {revision}.")


@app.command("url")
def url_cmd() -> None:
    """Print the catalogue URL (password hidden)."""
    from fleetwright.catalogue.db import safe_url
    from fleetwright.settings import get_settings

    typer.echo(safe_url(get_settings().catalogue_url))
