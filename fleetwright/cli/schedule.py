"""`fleetwright schedule add|list|pause|resume|remove`: fleet runs on a schedule, kept on the
Prefect API (one deployment per schedule; see fleetwright/fleet/schedules.py)."""

from __future__ import annotations

import asyncio
import hashlib
import json

import typer

from fleetwright.cli.output import console, print_json, print_table

__all__ = ["app"]

app = typer.Typer(no_args_is_help=True, help="Fleet runs on a schedule (cron, interval, rrule).")

_COLUMNS = [
    ("name", "Name"),
    ("command", "Command"),
    ("schedule", "Schedule"),
    ("timezone", "Timezone"),
    ("active", "Active"),
    ("deployment", "Deployment"),
]


@app.command("add")
def add(
    command: str = typer.Argument(..., help="Command name."),
    profiles: list[str] = typer.Argument(None, help="Profile names."),
    name: str | None = typer.Option(None, "--name", help="Schedule name (default derived)."),
    cron: str | None = typer.Option(None, "--cron", help='Cron, e.g. "0 * * * *".'),
    interval: float | None = typer.Option(None, "--interval", help="Every N seconds."),
    rrule: str | None = typer.Option(None, "--rrule", help="An RFC 5545 RRULE."),
    timezone: str | None = typer.Option(None, "--timezone", help="IANA zone, e.g. Europe/Berlin."),
    tag: list[str] = typer.Option([], "--tag", "-t", help="Profiles with this tag (repeat)."),
    all_active: bool = typer.Option(False, "--all", help="Every active profile."),
    param: list[str] = typer.Option([], "--param", "-p", help="Command parameter k=v (repeat)."),
    concurrency: int = typer.Option(4, "--concurrency", "-c", min=1),
    replace: bool = typer.Option(False, "--replace", help="Replace a schedule of that name."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Run COMMAND on a selection on a schedule (checked now: command, params, selection)."""
    from fleetwright.fleet.plan import parse_params, plan_run
    from fleetwright.fleet.schedules import aadd_schedule, deployment_name, parse_schedule

    schedule = parse_schedule(cron=cron, interval=interval, rrule=rrule, timezone=timezone)
    plan = plan_run(
        command,
        profiles=profiles or [],
        tags=tag,
        all_active=all_active,
        params=parse_params(param),
    )
    if name is None:
        key = json.dumps([plan.flow_parameters(), cron, interval, rrule, timezone], sort_keys=True)
        name = f"{command}-{hashlib.sha1(key.encode()).hexdigest()[:6]}".lower()
    deployment_name(name)
    info = asyncio.run(
        aadd_schedule(name, plan, schedule, concurrency=concurrency, replace=replace)
    )
    if as_json:
        print_json(info.as_dict())
    else:
        console.print(
            f"schedule {info.name}: {info.command} {info.schedule}"
            + (f" ({info.timezone})" if info.timezone else "")
            + f" → deployment {info.deployment}"
        )


@app.command("list")
def list_(as_json: bool = typer.Option(False, "--json")) -> None:
    """The schedules added here (paused ones show active = False)."""
    from fleetwright.fleet.schedules import alist_schedules

    infos = asyncio.run(alist_schedules())
    if as_json:
        print_json([i.as_dict() for i in infos])
    else:
        print_table([i.as_dict() for i in infos], _COLUMNS, title="schedules")


@app.command("pause")
def pause(name: str = typer.Argument(...)) -> None:
    """Stop a schedule from starting runs."""
    from fleetwright.fleet.schedules import apause_schedule

    info = asyncio.run(apause_schedule(name))
    console.print(f"schedule {info.name} paused")


@app.command("resume")
def resume(name: str = typer.Argument(...)) -> None:
    """Start a paused schedule again."""
    from fleetwright.fleet.schedules import aresume_schedule

    info = asyncio.run(aresume_schedule(name))
    console.print(f"schedule {info.name} resumed")


@app.command("remove")
def remove(name: str = typer.Argument(...)) -> None:
    """Delete a schedule (its past runs stay in Prefect)."""
    from fleetwright.fleet.schedules import aremove_schedule

    asyncio.run(aremove_schedule(name))
    console.print(f"schedule {name} removed")
