"""A fleet run split into shards, so the workers of every host share it.

A run-command flow run with `shards` > 1 runs no session itself: it splits its remaining
profiles into that many child flow runs of its own deployment (Prefect subflows, created with
`run_deployment`), which any worker polling the work pool takes, on any host. It then follows
each shard to its end. A shard whose process dies ends Crashed and is resumed by the
`run-command-resume` trigger like any fleet run; the parent follows the resume chain to the
run that finishes the shard. A parent that is itself resumed adopts the shards of the runs it
resumes (it waits for those still going and starts none twice) and shards only the profiles
no earlier shard was given.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from fleetwright.errors import ValidationError

if TYPE_CHECKING:
    from prefect.client.orchestration import PrefectClient
    from prefect.client.schemas.objects import FlowRun

__all__ = ["Shard", "adopt_shards", "cancel_shards", "follow_shard", "split", "start_shard"]

#: how long a parent waits for the Crashed trigger's resume run of a crashed shard
RESUME_WAIT = timedelta(seconds=180)
_RESUME_TAG = "resume"


def split(names: Sequence[str], shards: int) -> list[list[str]]:
    """`names` in at most `shards` contiguous parts whose sizes differ by at most one."""
    if shards < 1:
        raise ValidationError(f"shards must be 1 or more, not {shards}")
    count = min(shards, len(names))
    if count == 0:
        return []
    size, extra = divmod(len(names), count)
    parts, start = [], 0
    for i in range(count):
        end = start + size + (1 if i < extra else 0)
        parts.append(list(names[start:end]))
        start = end
    return parts


@dataclass(kw_only=True)
class Shard:
    """One shard: the profiles it was given and its flow runs, first to newest (a crashed run
    is followed by the run resuming it)."""

    profiles: list[str]
    run_ids: list[str] = field(default_factory=list)
    state: str = "PENDING"
    message: str | None = None

    @property
    def final(self) -> bool:
        return self.state in ("COMPLETED", "FAILED", "CANCELLED", "CRASHED")


async def start_shard(
    deployment_id: uuid.UUID,
    parameters: dict[str, Any],
    *,
    name: str,
    key: str,
) -> Shard:
    """Create the shard's flow run on `deployment_id` (a subflow of the calling flow run).

    `key` is the flow run's idempotency key: the same shard of the same fleet run is created
    once even if its parent asks twice."""
    from prefect.deployments import arun_deployment

    flow_run = await arun_deployment(
        deployment_id,
        parameters=parameters,
        timeout=0,
        as_subflow=True,
        flow_run_name=name,
        idempotency_key=key,
    )
    return Shard(profiles=list(parameters.get("profiles") or []), run_ids=[str(flow_run.id)])


async def adopt_shards(parent_ids: Sequence[str]) -> list[Shard]:
    """The shards earlier runs of a resumed parent started (each with its profiles)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterParentFlowRunId
    from prefect.client.schemas.sorting import FlowRunSort

    if not parent_ids:
        return []
    async with get_client() as client:
        runs = await client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                parent_flow_run_id=FlowRunFilterParentFlowRunId(
                    any_=[uuid.UUID(p) for p in parent_ids]
                )
            ),
            sort=FlowRunSort.START_TIME_ASC,
            limit=200,
        )
    return [
        Shard(profiles=list(run.parameters.get("profiles") or []), run_ids=[str(run.id)])
        for run in runs
    ]


async def _resume_of(client: PrefectClient, crashed: FlowRun) -> FlowRun | None:
    """The run the Crashed trigger started for `crashed`, if there is one yet."""
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterExpectedStartTime,
        FlowRunFilterTags,
    )

    runs = await client.read_flow_runs(
        flow_run_filter=FlowRunFilter(
            tags=FlowRunFilterTags(all_=[_RESUME_TAG]),
            expected_start_time=FlowRunFilterExpectedStartTime(after_=crashed.created),
        ),
        limit=200,
    )
    wanted = str(crashed.id)
    for run in runs:
        if str(run.parameters.get("resume_from") or "").removeprefix("prefect.flow-run.") == (
            wanted
        ):
            return run
    return None


async def follow_shard(
    shard: Shard,
    *,
    poll: timedelta = timedelta(seconds=2),
    resume_wait: timedelta = RESUME_WAIT,
) -> Shard:
    """Wait until the shard's newest run ends; a Crashed run is followed to the run resuming
    it (the Crashed trigger's). Transient API errors are waited out (an API server or the
    load balancer may be restarting)."""
    from prefect.client.orchestration import get_client

    loop = asyncio.get_running_loop()
    crashed_at: float | None = None
    async with get_client() as client:
        while True:
            try:
                run = await client.read_flow_run(uuid.UUID(shard.run_ids[-1]))
                state = run.state
                if state is not None and state.type.value == "CRASHED":
                    resume = await _resume_of(client, run)
                    if resume is not None:
                        shard.run_ids.append(str(resume.id))
                        crashed_at = None
                        continue
                    crashed_at = crashed_at if crashed_at is not None else loop.time()
                    if loop.time() - crashed_at >= resume_wait.total_seconds():
                        shard.state, shard.message = "CRASHED", state.message
                        return shard
                elif state is not None and state.is_final():
                    shard.state, shard.message = state.type.value, state.message
                    return shard
                elif state is not None:
                    shard.state = state.type.value
            except asyncio.CancelledError:
                raise
            except Exception:  # the API is away for a moment: ask again
                pass
            await asyncio.sleep(poll.total_seconds())


async def cancel_shards(shards: Sequence[Shard], reason: str) -> None:
    """Ask every shard still going to stop (Cancelling: its flow ends its sessions)."""
    from prefect.client.orchestration import get_client
    from prefect.states import Cancelling

    async with get_client() as client:
        for shard in shards:
            if shard.final or not shard.run_ids:
                continue
            try:
                await client.set_flow_run_state(
                    uuid.UUID(shard.run_ids[-1]), Cancelling(message=reason)
                )
            except Exception:  # already ended: nothing to stop
                continue
