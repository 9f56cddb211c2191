"""Schedules for fleet runs, kept on the Prefect API: one deployment per schedule.

Each schedule is a deployment of the run-command flow named `schedule-<name>` (tagged
`fleetwright-schedule`), copied from the `run-command` deployment (entrypoint, pull steps, work
pool) with its own parameters and schedule. Why not schedules on the run-command deployment
itself: `prefect deploy` (and `fleetwright up`) replaces a deployment's schedules with those in
prefect.yaml, which would silently drop schedules added here; separate deployments survive a
redeploy, and each shows up in the UI with its own runs, parameters and pause switch.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from fleetwright.errors import AlreadyExistsError, NotFoundError, ValidationError
from fleetwright.fleet.deployments import RUN_COMMAND_DEPLOYMENT
from fleetwright.fleet.plan import FleetPlan

if TYPE_CHECKING:
    from prefect.client.orchestration import PrefectClient
    from prefect.client.schemas.responses import DeploymentResponse as Deployment
    from prefect.client.schemas.schedules import SCHEDULE_TYPES

__all__ = [
    "SCHEDULE_TAG",
    "ScheduleInfo",
    "aadd_schedule",
    "alist_schedules",
    "apause_schedule",
    "aremove_schedule",
    "aresume_schedule",
    "deployment_name",
    "parse_schedule",
]

SCHEDULE_TAG = "fleetwright-schedule"
_PREFIX = "schedule-"
_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


@dataclass(kw_only=True)
class ScheduleInfo:
    """A schedule as listed: its name, command, when it fires and whether it is paused."""

    name: str
    deployment: str
    command: str
    schedule: str
    timezone: str | None
    active: bool
    parameters: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def deployment_name(name: str) -> str:
    """The deployment that holds schedule `name`."""
    if not _NAME.match(name):
        raise ValidationError(
            f"schedule name {name!r}: use lower-case letters, digits and '-' (at most 63)"
        )
    return f"{_PREFIX}{name}"


def parse_schedule(
    *,
    cron: str | None = None,
    interval: float | None = None,
    rrule: str | None = None,
    timezone: str | None = None,
) -> SCHEDULE_TYPES:
    """Exactly one of cron / interval (seconds) / rrule, with an optional IANA timezone; a
    one-line ValidationError when it does not parse."""
    from prefect.client.schemas.schedules import CronSchedule, IntervalSchedule, RRuleSchedule

    given = [
        k
        for k, v in (("--cron", cron), ("--interval", interval), ("--rrule", rrule))
        if v is not None
    ]
    if len(given) != 1:
        raise ValidationError("give exactly one of --cron, --interval or --rrule")
    tz = {"timezone": timezone} if timezone else {}
    try:
        if cron is not None:
            return CronSchedule(cron=cron, **tz)
        if interval is not None:
            if interval <= 0:
                raise ValueError("the interval must be more than 0 seconds")
            return IntervalSchedule(interval=timedelta(seconds=interval), **tz)
        assert rrule is not None
        return RRuleSchedule(rrule=rrule, **tz)
    except ValueError as exc:  # pydantic's ValidationError is a ValueError
        raise ValidationError(f"{given[0]} {cron or interval or rrule!r}: {_reason(exc)}") from None


def _reason(exc: ValueError) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        first = errors()[0]
        return str(first.get("msg", exc)).removeprefix("Value error, ")
    return str(exc).splitlines()[0]


def _describe(schedule: Any) -> tuple[str, str | None]:
    from prefect.client.schemas.schedules import CronSchedule, IntervalSchedule, RRuleSchedule

    if isinstance(schedule, CronSchedule):
        return f"cron {schedule.cron}", schedule.timezone
    if isinstance(schedule, IntervalSchedule):
        return f"every {schedule.interval.total_seconds():g}s", schedule.timezone
    if isinstance(schedule, RRuleSchedule):
        return f"rrule {schedule.rrule}", schedule.timezone
    return str(schedule), None


async def _base(client: PrefectClient, base: str) -> Deployment:
    from prefect.exceptions import ObjectNotFound

    try:
        return await client.read_deployment_by_name(base)
    except ObjectNotFound:
        raise NotFoundError(
            f"deployment {base!r} not found; run `fleetwright up` (or `prefect deploy --name "
            "run-command`) before adding schedules"
        ) from None


async def _find(client: PrefectClient, name: str) -> Deployment:
    from prefect.exceptions import ObjectNotFound

    try:
        return await client.read_deployment_by_name(f"run-command/{deployment_name(name)}")
    except ObjectNotFound:
        raise NotFoundError(
            f"no schedule named {name!r}; see `fleetwright schedule list`"
        ) from None


async def aadd_schedule(
    name: str,
    plan: FleetPlan,
    schedule: SCHEDULE_TYPES,
    *,
    concurrency: int = 4,
    replace: bool = False,
    base: str = RUN_COMMAND_DEPLOYMENT,
) -> ScheduleInfo:
    """Create the schedule's deployment (a copy of `base` with the plan's parameters)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import DeploymentScheduleCreate
    from prefect.exceptions import ObjectNotFound

    dep_name = deployment_name(name)
    async with get_client() as client:
        template = await _base(client, base)
        if not replace:
            try:
                await client.read_deployment_by_name(f"run-command/{dep_name}")
            except ObjectNotFound:
                pass
            else:
                raise AlreadyExistsError(
                    f"schedule {name!r} exists; remove it first or pass --replace"
                )
        parameters = plan.flow_parameters(concurrency=concurrency)
        await client.create_deployment(
            flow_id=template.flow_id,
            name=dep_name,
            description=f"Scheduled fleet run of {plan.command.name} (fleetwright schedule).",
            schedules=[DeploymentScheduleCreate(schedule=schedule, active=True)],
            parameters=parameters,
            work_pool_name=template.work_pool_name,
            work_queue_name=template.work_queue_name,
            tags=[*template.tags, SCHEDULE_TAG, f"command:{plan.command.name}"],
            path=template.path,
            entrypoint=template.entrypoint,
            pull_steps=template.pull_steps,
            job_variables=dict(template.job_variables or {}),
            parameter_openapi_schema=template.parameter_openapi_schema,
            enforce_parameter_schema=template.enforce_parameter_schema,
            concurrency_limit=1,  # one run of a schedule at a time; late ones queue
        )
        return _info(await client.read_deployment_by_name(f"run-command/{dep_name}"))


def _info(dep: Deployment) -> ScheduleInfo:
    text, tz = ("none", None)
    active = not dep.paused
    if dep.schedules:
        text, tz = _describe(dep.schedules[0].schedule)
        active = active and dep.schedules[0].active
    return ScheduleInfo(
        name=dep.name.removeprefix(_PREFIX),
        deployment=f"run-command/{dep.name}",
        command=str((dep.parameters or {}).get("command", "")),
        schedule=text,
        timezone=tz,
        active=active,
        parameters=dict(dep.parameters or {}),
    )


async def alist_schedules() -> list[ScheduleInfo]:
    """Every schedule added with `fleetwright schedule add`, by name."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterTags

    async with get_client() as client:
        deps = await client.read_deployments(
            deployment_filter=DeploymentFilter(tags=DeploymentFilterTags(all_=[SCHEDULE_TAG]))
        )
    return sorted((_info(d) for d in deps), key=lambda s: s.name)


async def apause_schedule(name: str) -> ScheduleInfo:
    """Stop the schedule from creating runs (kept, can be resumed)."""
    from prefect.client.orchestration import get_client

    async with get_client() as client:
        dep = await _find(client, name)
        await client.pause_deployment(dep.id)
        return _info(await client.read_deployment(dep.id))


async def aresume_schedule(name: str) -> ScheduleInfo:
    """Start a paused schedule again."""
    from prefect.client.orchestration import get_client

    async with get_client() as client:
        dep = await _find(client, name)
        await client.resume_deployment(dep.id)
        return _info(await client.read_deployment(dep.id))


async def aremove_schedule(name: str) -> None:
    """Delete the schedule's deployment (its past runs stay in Prefect's history)."""
    from prefect.client.orchestration import get_client

    async with get_client() as client:
        dep = await _find(client, name)
        await client.delete_deployment(dep.id)
