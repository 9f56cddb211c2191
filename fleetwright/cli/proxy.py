"""`fleetwright proxy ...`: add, list, show, remove, assign, import and check proxies.

Passwords never go on the command line (other users of the machine can read process
arguments): give them on standard input with --password-stdin, or at the hidden prompt.
"""

from __future__ import annotations

import asyncio
import sys
from datetime import timedelta
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

import typer

from fleetwright.cli.output import console, err_console, print_json, print_record, print_table
from fleetwright.errors import ValidationError
from fleetwright.specs import validate_proxy

__all__ = ["app"]

app = typer.Typer(no_args_is_help=True)
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
COLUMNS = [
    ("name", "Name"),
    ("scheme", "Scheme"),
    ("host", "Host"),
    ("port", "Port"),
    ("username", "User"),
    ("pool", "Pool"),
    ("health", "Health"),
    ("error_score", "Score"),
    ("last_latency_ms", "Latency ms"),
    ("last_exit_ip", "Exit IP"),
    ("last_country", "Country"),
    ("quarantined_until", "Quarantined until"),
]


def _read_password(password_stdin: bool, username: str | None) -> str | None:
    if password_stdin:
        line = sys.stdin.readline().rstrip("\r\n")
        if not line:
            raise ValidationError("--password-stdin was given but standard input was empty")
        return line
    if username and sys.stdin.isatty():
        return (
            typer.prompt(
                f"password for {username}", hide_input=True, default="", show_default=False
            )
            or None
        )
    return None


@app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="Unique proxy name.")],
    url: Annotated[str, typer.Argument(help="scheme://[user@]host:port (no password here).")],
    pool: Annotated[str | None, typer.Option(help="Pool to put it in (created if new).")] = None,
    label: Annotated[
        list[str] | None, typer.Option("--label", help="KEY=VALUE, e.g. country=DE.")
    ] = None,
    max_sessions: Annotated[
        int | None, typer.Option(help="Cap on concurrent sessions through this proxy.")
    ] = None,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Add a proxy: its Proxy block (holding the password) and its catalogue row."""
    from fleetwright.registry import add_proxy
    from fleetwright.specs import short_repr

    try:
        parts = urlsplit(url if "://" in url else f"http://{url}")
    except ValueError:
        raise ValidationError(
            f"{short_repr(url)} is not a proxy URL; use scheme://host:port"
        ) from None
    if parts.password:
        raise ValidationError(
            "do not put the password in the URL (process arguments are visible to other "
            "users); pass it with --password-stdin or at the prompt"
        )
    try:
        port = parts.port
    except ValueError:
        raise ValidationError(
            f"port in {short_repr(url)} is not a number or is outside 1–65535"
        ) from None
    if port is None:
        raise ValidationError(f"{short_repr(url)} has no port; use scheme://host:port")
    labels = {}
    for item in label or []:
        k, sep, v = item.partition("=")
        if not sep:
            raise ValidationError(f"label {short_repr(item)} is not KEY=VALUE")
        labels[k] = v
    spec = validate_proxy(
        {
            "name": name,
            "scheme": parts.scheme,
            "host": parts.hostname or "",
            "port": port,
            "username": parts.username,
            "password": _read_password(password_stdin, parts.username),
            "pool": pool,
            "labels": labels,
            "max_sessions": max_sessions,
        },
        where=f"proxy {name!r}",
    )
    record = asyncio.run(add_proxy(spec))
    if as_json:
        print_json(record)
    else:
        console.print(f"Added proxy [bold]{name}[/] ({spec.server}).")


@app.command("list")
def list_(
    pool: Annotated[str | None, typer.Option(help="Only this pool.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """List proxies with their health, score, last exit IP and quarantine state."""
    from fleetwright.registry import list_proxies

    rows = list_proxies(pool=pool)
    if as_json:
        print_json(rows)
    else:
        print_table(rows, COLUMNS, title=f"{len(rows)} proxies")


@app.command("show")
def show(name: str, as_json: JsonOpt = False) -> None:
    """Show one proxy (never its password)."""
    from fleetwright.registry import get_proxy

    record = get_proxy(name)
    if as_json:
        print_json(record)
    else:
        print_record(record, title=f"proxy {name}")


@app.command("remove")
def remove(name: str) -> None:
    """Remove a proxy and its block; profiles using it are left without a proxy."""
    from fleetwright.registry import remove_proxy

    users = asyncio.run(remove_proxy(name))
    console.print(f"Removed proxy [bold]{name}[/].")
    if users:
        err_console.print(f"{len(users)} profiles now have no proxy: {', '.join(users[:10])}")


@app.command("assign")
def assign(
    proxy: Annotated[str | None, typer.Argument(help="Proxy name (or use --pool).")] = None,
    pool: Annotated[str | None, typer.Option(help="Assign a pool instead of one proxy.")] = None,
    profile: Annotated[list[str] | None, typer.Option("--profile", "-p")] = None,
    tag: Annotated[list[str] | None, typer.Option("--tag", "-t")] = None,
) -> None:
    """Give profiles (by name or tag) a proxy or a pool."""
    from fleetwright.registry import assign_proxy

    changed = asyncio.run(assign_proxy(proxy=proxy, pool=pool, names=profile or [], tags=tag or []))
    console.print(f"Assigned {proxy or 'pool ' + str(pool)} to {len(changed)} profiles.")


@app.command("import")
def import_(
    path: Annotated[Path, typer.Argument(help="Text or CSV file of proxies.")],
    pool: Annotated[str | None, typer.Option(help="Put them all in this pool.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Import proxies (host:port:user:pass, scheme://user:pass@host:port, or CSV)."""
    from rich.markup import escape

    from fleetwright.inputs import exit_code_for, report_rejections
    from fleetwright.proxies.parse import parse_proxy_file
    from fleetwright.registry import import_proxies

    parsed = parse_proxy_file(path, pool=pool)
    report = asyncio.run(import_proxies(parsed.proxies))
    problems = [(f"line {line}", reason) for line, reason in parsed.problems] + report.errors
    if as_json:
        print_json({**report.__dict__, "errors": problems})
    else:
        console.print(
            f"{report.created} created, {report.updated} updated, {report.unchanged} unchanged, "
            f"{len(problems) + parsed.problems_dropped} rejected."
        )
        report_rejections(
            problems,
            lambda line: err_console.print(
                f"  [red]rejected[/] {escape(line)}", highlight=False, soft_wrap=True
            ),
            more=parsed.problems_dropped,
        )
    imported = report.created + report.updated + report.unchanged
    code = exit_code_for(imported, len(problems) + parsed.problems_dropped)
    if code:
        raise typer.Exit(code)


@app.command("check")
def check(
    names: Annotated[list[str] | None, typer.Argument(help="Proxies to probe.")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Probe every proxy that is due.")] = False,
    echo_url: Annotated[str | None, typer.Option(help="IP-echo URL.")] = None,
    info_url: Annotated[str | None, typer.Option(help="IP-info URL (country).")] = None,
    timeout: Annotated[float, typer.Option(help="Seconds per probe.")] = 10.0,
    concurrency: Annotated[int, typer.Option(help="Probes at once.")] = 8,
) -> None:
    """Probe proxies now, with a live table; exit 1 if any failed."""
    from fleetwright.cli.proxy_check import check_command

    code = check_command(
        names or None,
        all_=all_,
        echo_url=echo_url,
        info_url=info_url,
        timeout=timedelta(seconds=timeout),
        concurrency=concurrency,
        console=console,
    )
    raise typer.Exit(code)
