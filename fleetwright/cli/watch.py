"""`fleetwright watch [RUN|--all]`: a live view of a fleet run (or of every run) fed by
Prefect's event stream; `--json` prints one event per line for piping."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import Progress

from fleetwright.cli.output import console, err_console
from fleetwright.observability.watch import FleetTally, WatchEvent

if TYPE_CHECKING:
    from fleetwright.fleet.runs import FleetRun

__all__ = ["describe", "follow_fleet", "watch"]


def watch(
    run: Annotated[str | None, typer.Argument(help="Flow run id of a fleet run.")] = None,
    all_runs: Annotated[bool, typer.Option("--all", help="Every run, until Ctrl-C.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON event per line.")] = False,
    timeout: Annotated[float | None, typer.Option(help="Stop after this many seconds.")] = None,
) -> None:
    """Follow sessions starting and finishing, failures, quarantines, failovers and breakers."""
    from fleetwright.errors import ValidationError
    from fleetwright.observability.watch import check_run_id

    if (run is None) == (not all_runs):
        raise ValidationError("give a fleet run's id or --all (not both)")
    if timeout is not None and timeout < 0:
        raise ValidationError(f"--timeout {timeout:g} is negative; give seconds, or leave it out")
    run_id = check_run_id(run) if run is not None else None
    try:
        tally = asyncio.run(_watch(run_id, as_json=as_json, timeout=timeout))
    except KeyboardInterrupt:
        raise typer.Exit(0) from None
    if run_id is not None and tally.state not in ("RUNNING", "COMPLETED"):
        raise typer.Exit(1)


async def _watch(run_id: str | None, *, as_json: bool, timeout: float | None) -> FleetTally:
    from fleetwright.observability.watch import afollow

    tally = FleetTally()

    def ready() -> None:
        what = f"fleet run {run_id}" if run_id else "every fleet run"
        err_console.print(f"watching {what} (Ctrl-C stops)", highlight=False)

    async def consume() -> None:
        async for ev in afollow(run_id, on_ready=ready):
            tally.add(ev)
            if as_json:
                sys.stdout.write(json.dumps(ev.as_dict(), default=str) + "\n")
                sys.stdout.flush()
                continue
            line = describe(ev)
            if line:
                console.print(line, highlight=False)
            if ev.event == "fleetwright.session.finished":
                console.print(f"  [dim]{progress_line(tally)}[/]", highlight=False)

    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(consume(), timeout)
    if not as_json:
        console.print(progress_line(tally), highlight=False)
    return tally


def progress_line(tally: FleetTally) -> str:
    """Counts, rate and ETA in one line."""
    total = f"/{tally.total}" if tally.total is not None else ""
    parts = [f"{tally.finished}{total} finished", f"{tally.ok} ok", f"{tally.failed} failed"]
    rate = tally.rate_per_min()
    if rate is not None:
        parts.append(f"{rate:.1f}/min")
    eta = tally.eta_seconds()
    if eta is not None:
        parts.append(f"ETA {eta:.0f} s")
    if tally.errors:
        parts.append(", ".join(f"{k}×{n}" for k, n in sorted(tally.errors.items())))
    return " · ".join(parts)


def describe(ev: WatchEvent) -> str | None:
    """One human line for an event (None for events the view does not show)."""
    p = ev.payload
    at = ev.occurred.strftime("%H:%M:%S")
    who = p.get("profile") or ev.name
    match ev.event:
        case "fleetwright.session.started":
            via = f" via {p['proxy']}" if p.get("proxy") else ""
            return f"{at} ▶ {who}: {p.get('command')} started{via}"
        case "fleetwright.session.finished" if p.get("outcome") == "ok":
            return f"{at} [green]✓[/] {who}: ok in {p.get('duration_ms', 0):.0f} ms"
        case "fleetwright.session.finished":
            return (
                f"{at} [red]✗[/] {who}: {p.get('outcome')} — {p.get('error_type')}: "
                f"{p.get('error')}"
            )
        case "fleetwright.profile.failover":
            return (
                f"{at} ↪ {who}: fails over {p.get('from')} → {p.get('to')} (pool {p.get('pool')})"
            )
        case "fleetwright.proxy.quarantined":
            return f"{at} [yellow]⚠[/] proxy {ev.name} quarantined: {p.get('error')}"
        case "fleetwright.proxy.recovered":
            return f"{at} proxy {ev.name} recovered"
        case "fleetwright.run.started":
            return f"{at} fleet run: {p.get('command')} on {p.get('todo')} profiles"
        case "fleetwright.run.finished":
            return (
                f"{at} fleet run finished: {p.get('ok')} ok, {p.get('failed')} failed, "
                f"{p.get('skipped')} skipped"
            )
    if ev.event.startswith("fleetwright.") and "breaker" in ev.event:
        return f"{at} breaker {ev.name}: {ev.event.rsplit('.', 1)[-1]}"
    if ev.final:
        return f"{at} flow run {ev.flow_run_id} {ev.state}"
    return None


async def follow_fleet(flow_run_id: str, bar: Progress, total: int, label: str) -> FleetRun:
    """`run --wait`: a progress bar fed by the run's events until the run ends, then the run's
    record read from the API, whose counts the bar ends on.

    The record, not the stream, has the last word: a session's events sent just before the
    run ended can reach the stream after the run's final state, so the bar does not wait for
    them (the stream's settle time) and takes the record's counts instead."""
    from fleetwright.fleet.runs import aread_fleet_run
    from fleetwright.observability.watch import afollow

    tally = FleetTally(total=total)
    with bar:
        task = bar.add_task(f"{label} (waiting for a worker)", total=total, ok=0, failed=0)
        async for ev in afollow(flow_run_id, settle=0):
            tally.add(ev)
            desc = label if ev.event.startswith("fleetwright.") else None
            if ev.final:
                desc = f"{label} ({(ev.state or '').lower()})"
            bar.update(task, completed=tally.finished, ok=tally.ok, failed=tally.failed)
            if desc:
                bar.update(task, description=desc)
        fleet = await aread_fleet_run(flow_run_id)
        bar.update(
            task,
            completed=fleet.ok + fleet.failed,
            ok=fleet.ok,
            failed=fleet.failed,
            description=f"{label} ({fleet.state.lower()})",
        )
    return fleet
