"""Fleetwright from Python: run a command on profiles, run a deployment, read a run.

    from fleetwright.api import run_command, get_run
    run = run_command("demo", tags=["shop"], params={"base_url": url}, via="warm")
    print(run.ok, run.failed, [s.error for s in run.sessions if s.status == "failed"])

Every call has an async twin (`arun_command`, `arun_deployment`, `aget_run`, `await_run`,
`astream_command`). Bad input (unknown command, profile or tag, an empty selection, bad
parameters) raises a UserError before anything is submitted.

Every entry point applies Fleetwright's settings to Prefect first (see
fleetwright.settings.apply_prefect_settings): FLEETWRIGHT_PREFECT_API_URL or
FLEETWRIGHT_PREFECT_PORT pick the server, as in the CLI, and no throwaway server is started.
When no server answers, calls raise PrefectUnavailableError at once.

`via` picks where sessions run: "deployment" (the run-command deployment on a process worker;
scheduled, crash-recovered, ~4–5 s to start), "warm" (warm workers from `fleetwright worker
start`; sub-second start) or "local" (the flow in this process).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from datetime import timedelta
from typing import Any, Literal

from fleetwright.settings import apply_prefect_settings

apply_prefect_settings()

from fleetwright.commands.models import TraceMode  # noqa: E402 - after the settings
from fleetwright.errors import ValidationError  # noqa: E402 - after the settings
from fleetwright.fleet.deployments import RUN_COMMAND_DEPLOYMENT, asubmit_deployment  # noqa: E402
from fleetwright.fleet.plan import FleetPlan, plan_run  # noqa: E402
from fleetwright.fleet.runs import (  # noqa: E402
    FleetRun,
    SessionRow,
    aread_fleet_run,
    summarise,
)
from fleetwright.prefect_api import aensure_prefect_api  # noqa: E402

__all__ = [
    "FleetPlan",
    "FleetRun",
    "SessionRow",
    "Via",
    "aget_run",
    "arun_command",
    "arun_deployment",
    "arun_plan",
    "astream_command",
    "await_run",
    "get_run",
    "plan_run",
    "run_command",
    "run_deployment",
    "wait_run",
]

Via = Literal["deployment", "warm", "local"]
_FINAL = frozenset({"COMPLETED", "FAILED", "CRASHED", "CANCELLED"})


def _sync(coro: Any) -> Any:
    from prefect.utilities.asyncutils import run_coro_as_sync

    return run_coro_as_sync(coro)


async def arun_command(
    command: str,
    profiles: Sequence[str] = (),
    *,
    tags: Sequence[str] = (),
    all_active: bool = False,
    params: dict[str, Any] | None = None,
    version: str | None = None,
    concurrency: int = 4,
    via: Via = "deployment",
    wait: bool = True,
    deployment: str = RUN_COMMAND_DEPLOYMENT,
    timeout: timedelta | None = None,
    trace: TraceMode | None = None,
    shards: int = 1,
) -> FleetRun:
    """Run `command` on the selected profiles; with `wait` (always for warm and local) the
    FleetRun holds every session's outcome, otherwise just the submitted run's id. `shards`
    > 1 (deployment only) splits the run into child runs any worker, on any host, takes."""
    plan = plan_run(
        command, profiles=profiles, tags=tags, all_active=all_active, params=params, version=version
    )
    return await arun_plan(
        plan, concurrency=concurrency, via=via, wait=wait, deployment=deployment, timeout=timeout,
        trace=trace, shards=shards,
    )  # fmt: skip


async def arun_plan(
    plan: FleetPlan,
    *,
    concurrency: int = 4,
    via: Via = "deployment",
    wait: bool = True,
    deployment: str = RUN_COMMAND_DEPLOYMENT,
    timeout: timedelta | None = None,
    trace: TraceMode | None = None,
    shards: int = 1,
) -> FleetRun:
    """Run an already checked plan (see plan_run) the chosen way. `trace` overrides the
    command's trace setting (off, on, on-failure, on-retry)."""
    if shards < 1 or (shards > 1 and via != "deployment"):
        raise ValidationError(
            f"shards={shards}: a run splits into shards (2 or more) only through a deployment "
            "(via='deployment'); use 1 otherwise"
        )
    await aensure_prefect_api()
    if via == "warm":
        fleet_id = _new_fleet_id()
        rows = [
            r async for r in _stream(plan, concurrency=concurrency, fleet_id=fleet_id, trace=trace)
        ]
        return _warm_run(fleet_id, rows)
    if via == "local":
        from fleetwright.flows.run_command import run_command as flow

        parameters = plan.flow_parameters(concurrency=concurrency, trace=trace)
        state: Any = await flow(**parameters, return_state=True)
        return await aread_fleet_run(str(state.state_details.flow_run_id))
    flow_run = await asubmit_deployment(
        plan.flow_parameters(
            concurrency=concurrency, trace=trace, shards=shards if shards > 1 else None
        ),
        deployment=deployment,
    )
    if not wait:
        return await aread_fleet_run(str(flow_run.id))
    return await await_run(str(flow_run.id), timeout=timeout)


async def _stream(
    plan: FleetPlan, *, concurrency: int, fleet_id: str | None = None, trace: str | None = None
) -> AsyncIterator[SessionRow]:
    from fleetwright.fleet.warm import astream_warm, await_warm_worker

    await await_warm_worker()
    async for row in astream_warm(
        plan, concurrency=concurrency, fleet_id=fleet_id or _new_fleet_id(), trace=trace
    ):
        yield row


def _new_fleet_id() -> str:
    import uuid

    return str(uuid.uuid4())


def _warm_run(fleet_id: str, rows: list[SessionRow]) -> FleetRun:
    counts = summarise(rows)
    return FleetRun(
        id=fleet_id,
        state="FAILED" if counts["failed"] else "COMPLETED",
        ok=counts["ok"],
        failed=counts["failed"],
        sessions=sorted(rows, key=lambda r: r.profile),
    )


async def astream_command(
    command: str,
    profiles: Sequence[str] = (),
    *,
    tags: Sequence[str] = (),
    all_active: bool = False,
    params: dict[str, Any] | None = None,
    version: str | None = None,
    concurrency: int = 8,
) -> AsyncIterator[SessionRow]:
    """Run on warm workers and yield each profile's outcome as soon as it finishes."""
    await aensure_prefect_api()
    plan = plan_run(
        command, profiles=profiles, tags=tags, all_active=all_active, params=params, version=version
    )
    async for row in _stream(plan, concurrency=concurrency):
        yield row


async def arun_deployment(
    name: str,
    parameters: dict[str, Any] | None = None,
    *,
    wait: bool = False,
    timeout: timedelta | None = None,
    tags: Sequence[str] = (),
) -> FleetRun:
    """Start a run of any deployment ("flow/deployment"); wait for it if asked."""
    await aensure_prefect_api()
    flow_run = await asubmit_deployment(parameters or {}, deployment=name, tags=tags)
    if wait:
        return await await_run(str(flow_run.id), timeout=timeout)
    return await aread_fleet_run(str(flow_run.id))


async def aget_run(run_id: str) -> FleetRun:
    """A run's state, per-profile sessions (from the catalogue) and artifacts (from Prefect)."""
    await aensure_prefect_api()
    return await aread_fleet_run(run_id)


async def await_run(
    run_id: str,
    *,
    timeout: timedelta | None = None,
    poll_interval: timedelta = timedelta(seconds=1),
) -> FleetRun:
    """Wait until the flow run is final (or `timeout` passes) and return it."""
    await aensure_prefect_api()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout.total_seconds() if timeout else None
    while True:
        run = await aread_fleet_run(run_id)
        if run.state in _FINAL or (deadline is not None and loop.time() >= deadline):
            return run
        await asyncio.sleep(poll_interval.total_seconds())


def run_command(
    command: str,
    profiles: Sequence[str] = (),
    *,
    tags: Sequence[str] = (),
    all_active: bool = False,
    params: dict[str, Any] | None = None,
    version: str | None = None,
    concurrency: int = 4,
    via: Via = "deployment",
    wait: bool = True,
    deployment: str = RUN_COMMAND_DEPLOYMENT,
    timeout: timedelta | None = None,
    trace: TraceMode | None = None,
    shards: int = 1,
) -> FleetRun:
    """Sync twin of arun_command."""
    result: FleetRun = _sync(
        arun_command(
            command,
            profiles,
            tags=tags,
            all_active=all_active,
            params=params,
            version=version,
            concurrency=concurrency,
            via=via,
            wait=wait,
            deployment=deployment,
            timeout=timeout,
            trace=trace,
            shards=shards,
        )
    )
    return result


def run_deployment(
    name: str,
    parameters: dict[str, Any] | None = None,
    *,
    wait: bool = False,
    timeout: timedelta | None = None,
    tags: Sequence[str] = (),
) -> FleetRun:
    """Sync twin of arun_deployment."""
    result: FleetRun = _sync(
        arun_deployment(name, parameters, wait=wait, timeout=timeout, tags=tags)
    )
    return result


def get_run(run_id: str) -> FleetRun:
    """Sync twin of aget_run."""
    result: FleetRun = _sync(aget_run(run_id))
    return result


def wait_run(run_id: str, *, timeout: timedelta | None = None) -> FleetRun:
    """Sync twin of await_run."""
    result: FleetRun = _sync(await_run(run_id, timeout=timeout))
    return result
