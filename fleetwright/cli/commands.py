"""`fleetwright commands ...`: load command files into the catalogue, list and show them."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from fleetwright.cli.output import console, print_json, print_table

__all__ = ["app"]

app = typer.Typer(no_args_is_help=True, help="Declarative and Python commands.")
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


@app.command("load")
def load(
    paths: Annotated[
        list[Path] | None, typer.Argument(help="Files or folders (default: commands/ and home).")
    ] = None,
) -> None:
    """Validate command files and store them in the catalogue (all or nothing)."""
    from fleetwright.commands import load_commands

    report = load_commands(paths or None)
    console.print(
        f"{report.files} files: {len(report.added)} added ({', '.join(report.added) or '—'}), "
        f"{len(report.unchanged)} unchanged."
    )


@app.command("list")
def list_(as_json: JsonOpt = False) -> None:
    """Commands in the catalogue, every version."""
    from fleetwright.commands import list_commands

    specs = list_commands()
    rows = [
        {
            "name": s.name,
            "version": s.version,
            "description": s.description,
            "params": ", ".join(s.params),
        }
        for s in specs
    ]
    if as_json:
        print_json(rows)
    else:
        print_table(
            rows,
            [
                ("name", "Name"),
                ("version", "Version"),
                ("params", "Params"),
                ("description", "Description"),
            ],
            title=f"{len(rows)} commands",
        )


@app.command("show")
def show(name: str, version: Annotated[str | None, typer.Option()] = None) -> None:
    """A command's full spec as JSON."""
    from fleetwright.commands import get_command

    print_json(get_command(name, version=version).model_dump(mode="json", exclude_none=True))
