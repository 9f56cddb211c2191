"""`fleetwright sync`: reconcile blocks and catalogue rows now (the trigger does it on edits)."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from fleetwright.cli.output import console, print_json

__all__ = ["sync"]


def sync(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Bring the catalogue in line with blocks edited in the Prefect UI."""
    from fleetwright.registry.sync import sync_catalogue

    report = asyncio.run(sync_catalogue())
    if as_json:
        print_json(report.as_dict())
        return
    console.print(f"{report.changed} changes.")
    for key, values in report.as_dict().items():
        if isinstance(values, list) and values:
            console.print(f"  {key.replace('_', ' ')}: {', '.join(values[:20])}")
    if report.blocks_written:
        console.print(f"  blocks written: {report.blocks_written}")
