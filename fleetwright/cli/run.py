"""`fleetwright run COMMAND [PROFILES...]`: a fleet run through the run-command deployment
(default), on warm workers (--now) or in this process (--local), with a live progress bar.
`fleetwright run cancel RUN_ID...` cancels fleet runs for good (they are not resumed).

`--now` first hands the run to a warm worker on this host over its socket
(`fleetwright.warm_relay`): this module then imports neither Prefect nor the catalogue, which
is most of what a new process would spend before its session starts. The imports of the other
paths are made where they are used for that reason.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections import Counter
from typing import TYPE_CHECKING, Any, cast

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from fleetwright.cli.output import console, err_console, print_json, print_table

if TYPE_CHECKING:
    from fleetwright.commands.models import TraceMode
    from fleetwright.fleet.plan import FleetPlan
    from fleetwright.fleet.runs import FleetRun, SessionRow

__all__ = ["render_summary", "run"]

_COLUMNS = [
    ("profile", "Profile"),
    ("status", "Status"),
    ("attempts", "Attempts"),
    ("duration_ms", "ms"),
    ("error", "Reason"),
]


def run(
    command: str = typer.Argument(..., help="Command name (see `fleetwright commands list`)."),
    profiles: list[str] = typer.Argument(None, help="Profile names."),
    tag: list[str] = typer.Option([], "--tag", "-t", help="Profiles with this tag (repeat)."),
    all_active: bool = typer.Option(False, "--all", help="Every active profile."),
    param: list[str] = typer.Option([], "--param", "-p", help="Command parameter k=v (repeat)."),
    version: str | None = typer.Option(None, "--version", help="Command version (default latest)."),
    concurrency: int = typer.Option(
        4, "--concurrency", "-c", min=1, help="Sessions at once (per shard with --shards)."
    ),
    shards: int = typer.Option(
        1,
        "--shards",
        min=1,
        help="Split the run into N child runs that any worker, on any host, takes.",
    ),
    wait: bool = typer.Option(False, "--wait", "-w", help="Follow the run and show a summary."),
    now: bool = typer.Option(False, "--now", help="Run on warm workers (`worker start`)."),
    local: bool = typer.Option(False, "--local", help="Run the flow in this process."),
    deployment: str = typer.Option("run-command/run-command", help="Deployment to run."),
    trace: str | None = typer.Option(
        None,
        "--trace",
        help="Playwright traces: off, on, on-failure, on-retry (default: the command's, on-retry).",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Run COMMAND on profiles (names, --tag, or --all). Exit 0 all ok, 1 some failed.

    `run cancel RUN_ID...` cancels fleet runs (Cancelled runs are never resumed)."""
    from fleetwright.errors import ValidationError

    if command == "cancel":
        raise typer.Exit(asyncio.run(_cancel(profiles or [], as_json=as_json)))

    if now and local:
        raise ValidationError("--now and --local exclude each other; pick one")
    if shards > 1 and (now or local):
        raise ValidationError(
            "--shards splits a run over the deployment's workers; drop --now/--local"
        )
    if now:
        relayed = _run_relayed(
            command,
            profiles=profiles or [],
            tags=tag,
            all_active=all_active,
            params=param,
            version=version,
            concurrency=concurrency,
            trace=trace,
            as_json=as_json,
        )
        if relayed is not None:
            raise typer.Exit(relayed)
    from fleetwright.commands.models import check_trace_mode
    from fleetwright.fleet.plan import parse_params, plan_run

    check_trace_mode(trace)
    plan = plan_run(
        command,
        profiles=profiles or [],
        tags=tag,
        all_active=all_active,
        params=parse_params(param),
        version=version,
    )
    if now:
        code = asyncio.run(_run_warm(plan, concurrency=concurrency, as_json=as_json, trace=trace))
    elif local:
        code = _run_local(plan, concurrency=concurrency, as_json=as_json, trace=trace)
    else:
        code = asyncio.run(
            _run_deployment(
                plan,
                deployment,
                concurrency=concurrency,
                wait=wait,
                as_json=as_json,
                trace=trace,
                shards=shards,
            )
        )
    raise typer.Exit(code)


def _progress(*, quiet: bool) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("[green]{task.fields[ok]} ok[/] [red]{task.fields[failed]} failed[/]"),
        TimeElapsedColumn(),
        console=err_console,
        disable=quiet or (not err_console.is_terminal and not _force_progress()),
    )


def _force_progress() -> bool:
    import os

    return os.environ.get("FLEETWRIGHT_PROGRESS") == "always"


def _run_relayed(
    command: str,
    *,
    profiles: list[str],
    tags: list[str],
    all_active: bool,
    params: list[str],
    version: str | None,
    concurrency: int,
    trace: str | None,
    as_json: bool,
) -> int | None:
    """The run on a warm worker of this host, through its socket; None when none takes it."""
    import os

    from fleetwright.settings import get_settings
    from fleetwright.warm_relay import RelayDeclined, RelayStart, run_via_relay

    settings = get_settings()
    stream = run_via_relay(
        settings.home,
        api_url=os.environ.get("PREFECT_API_URL", ""),
        catalogue_url=settings.catalogue_url,
        command=command,
        profiles=profiles,
        tags=tags,
        all_active=all_active,
        params=params,
        version=version,
        concurrency=concurrency,
        trace=trace,
    )
    try:
        start = next(stream)
    except RelayDeclined:
        return None
    assert isinstance(start, RelayStart)
    rows: list[dict[str, Any]] = []
    with _progress(quiet=as_json) as bar:
        task = bar.add_task(f"{start.command} (warm)", total=start.profiles, ok=0, failed=0)
        for row in stream:
            assert isinstance(row, dict)
            rows.append(row)
            counts = Counter(str(r.get("status")) for r in rows)
            bar.update(task, completed=len(rows), ok=counts["ok"], failed=counts["failed"])
    counts = Counter(str(r.get("status")) for r in rows)
    summary = {
        "id": start.fleet_id,
        "name": None,
        "state": "COMPLETED",
        "state_name": None,
        "message": None,
        "ok": counts["ok"],
        "failed": counts["failed"],
        "skipped": counts["skipped"],
        "sessions": sorted(rows, key=lambda r: str(r.get("profile"))),
        "artifacts": [],
    }
    return render_summary_data(summary, as_json=as_json)


async def _run_warm(
    plan: FleetPlan, *, concurrency: int, as_json: bool, trace: str | None = None
) -> int:
    import uuid

    from fleetwright.fleet.runs import FleetRun, summarise
    from fleetwright.fleet.warm import astream_warm, await_warm_worker

    await await_warm_worker()
    fleet_id = str(uuid.uuid4())
    rows: list[SessionRow] = []
    with _progress(quiet=as_json) as bar:
        task = bar.add_task(f"{plan.command.name} (warm)", total=len(plan.profiles), ok=0, failed=0)
        async for row in astream_warm(
            plan, concurrency=concurrency, fleet_id=fleet_id, trace=trace
        ):
            rows.append(row)
            counts = summarise(rows)
            bar.update(task, completed=len(rows), ok=counts["ok"], failed=counts["failed"])
    counts = summarise(rows)
    fleet = FleetRun(
        id=fleet_id,
        state="COMPLETED",
        ok=counts["ok"],
        failed=counts["failed"],
        sessions=sorted(rows, key=lambda r: r.profile),
    )
    return render_summary(fleet, as_json=as_json)


async def _cancel(run_ids: list[str], *, as_json: bool) -> int:
    from fleetwright.errors import ValidationError
    from fleetwright.fleet.stop import acancel_run

    if not run_ids:
        raise ValidationError("give the id of the fleet run to cancel: fleetwright run cancel ID")
    ended = {}
    for run_id in run_ids:
        flow_run = await acancel_run(run_id)
        ended[run_id] = flow_run.state.name if flow_run.state else "unknown"
        if not as_json:
            console.print(f"fleet run {run_id}: {ended[run_id]}", highlight=False)
    if as_json:
        print_json(ended)
    return 0


def _run_local(
    plan: FleetPlan, *, concurrency: int, as_json: bool, trace: str | None = None
) -> int:
    """The flow in this process; Ctrl-C stops it for good (Cancelled, not resumed)."""
    import signal

    from fleetwright.api import arun_plan
    from fleetwright.fleet.stop import request_stop, stop_requested

    mode = cast("TraceMode | None", trace)  # checked against TraceMode by run()

    def interrupted() -> None:
        if request_stop("stopped with Ctrl-C"):
            err_console.print(
                "stopping: the sessions in flight stop and are recorded; the run ends "
                "Cancelled and is not resumed"
            )

    async def local() -> FleetRun:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGINT, interrupted)
        try:
            return await arun_plan(plan, concurrency=concurrency, via="local", trace=mode)
        finally:
            loop.remove_signal_handler(signal.SIGINT)

    fleet = asyncio.run(local())
    code = render_summary(fleet, as_json=as_json)
    return 130 if stop_requested() else code


async def _run_deployment(
    plan: FleetPlan,
    deployment: str,
    *,
    concurrency: int,
    wait: bool,
    as_json: bool,
    trace: str | None = None,
    shards: int = 1,
) -> int:
    from fleetwright.fleet.deployments import asubmit_deployment, flow_run_url

    flow_run = await asubmit_deployment(
        plan.flow_parameters(
            concurrency=concurrency, trace=trace, shards=shards if shards > 1 else None
        ),
        deployment=deployment,
    )
    if not wait:
        if as_json:
            print_json(
                {
                    "flow_run_id": str(flow_run.id),
                    "name": flow_run.name,
                    "profiles": len(plan.profiles),
                }
            )
        else:
            url = flow_run_url(flow_run.id)
            console.print(
                f"submitted fleet run {flow_run.id} ({flow_run.name}) on "
                f"{len(plan.profiles)} profiles" + (f": {url}" if url else "")
            )
        return 0
    from fleetwright.cli.watch import follow_fleet  # the run's Prefect event stream

    bar = _progress(quiet=as_json)
    fleet = await follow_fleet(str(flow_run.id), bar, len(plan.profiles), plan.command.name)
    return render_summary(fleet, as_json=as_json)


def render_summary(fleet: FleetRun, *, as_json: bool) -> int:
    """Print the run's summary (table or JSON); the exit code: 0 all ok, 1 otherwise."""
    return render_summary_data(fleet.as_dict(), as_json=as_json)


def render_summary_data(data: dict[str, Any], *, as_json: bool) -> int:
    """`render_summary` of a fleet run as a dict (FleetRun.as_dict's shape)."""
    ok_all = data.get("failed") == 0 and data.get("state") == "COMPLETED"
    if as_json:
        data = {k: v for k, v in data.items() if k != "artifacts"}
        sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
        return 0 if ok_all else 1
    rows = [dict(s) for s in data.get("sessions") or []]
    for r in rows:
        if r.get("duration_ms") is not None:
            r["duration_ms"] = f"{r['duration_ms']:.0f}"
    print_table(rows, _COLUMNS, title=f"fleet run {data.get('id')}")
    counts = Counter(str(r.get("status")) for r in rows)
    line = f"{counts['ok']} ok, {counts['failed']} failed, {counts['skipped']} skipped"
    if data.get("state") != "COMPLETED" and data.get("state_name"):
        line += f" — run {data['state_name']}"
        if data.get("message"):
            line += f": {data['message']}"
    console.print(line, style="green" if ok_all else "red", highlight=False)
    return 0 if ok_all else 1
