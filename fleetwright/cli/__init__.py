"""The `fleetwright` command line: typer app, one module per command group."""

from fleetwright.cli.main import app, main

__all__ = ["app", "main"]
