"""Shared CLI output: rich tables for people, JSON for scripts, one-line errors."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

__all__ = ["console", "err_console", "fail", "print_json", "print_table"]

console = Console()
err_console = Console(stderr=True)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def print_table(
    rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str]], *, title: str | None = None
) -> None:
    """A table of `rows`; columns are (key, header) pairs."""
    table = Table(title=title, show_lines=False)
    for _, header in columns:
        table.add_column(header, overflow="fold")
    for row in rows:
        table.add_row(*[_cell(row.get(key)) for key, _ in columns])
    console.print(table)


def print_record(record: dict[str, Any], *, title: str) -> None:
    """One object as a two-column field/value table."""
    print_table(
        [{"field": k, "value": v} for k, v in record.items()],
        [("field", "Field"), ("value", "Value")],
        title=title,
    )


def _cell(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items())
    return str(value)


def fail(message: str, *, code: int = 2) -> None:
    """Print one error line and exit."""
    from rich.markup import escape

    # The message quotes user input: "[/]" in a name must print as it is, not as markup.
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise SystemExit(code)
