"""Ending fleet runs for good: what Ctrl-C, `fleetwright run cancel` and a crash leave behind.

A run on a process worker is cancelled Prefect's way: `acancel_run` proposes Cancelling and the
worker ends the flow-run process, which Prefect records as Cancelled. A run in the user's own
process (`fleetwright run --local`) has no worker to do that, so the run-command flow stops
itself (`StopWatch`): when Ctrl-C reaches the CLI (`request_stop`) or the flow run's state on
the API turns Cancelling, its sessions stop (each records its run row and gives its lease
back) and the flow returns a Cancelled state. Cancelled runs are never resumed; only Crashed
ones are (prefect.yaml, run-command-resume).

Whatever ended a run, the task runs it left open are closed through Prefect's API
(`close_task_runs`: Crashed after a crash, Cancelled after a cancel), and the catalogue run
rows and profile leases it left are closed too (`close_sessions`).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Literal

from sqlalchemy import update

from fleetwright.catalogue.db import session_scope
from fleetwright.catalogue.models import Profile, Run, utcnow
from fleetwright.errors import NotFoundError, ValidationError

if TYPE_CHECKING:
    from prefect.client.orchestration import PrefectClient
    from prefect.client.schemas.objects import FlowRun

__all__ = [
    "CANCELLED",
    "StopWatch",
    "acancel_run",
    "close_sessions",
    "close_task_runs",
    "request_stop",
    "stop_requested",
]

logger = logging.getLogger(__name__)

CANCELLED = "cancelled"
_OPEN_TASK_STATES = ("SCHEDULED", "PENDING", "RUNNING", "PAUSED")
#: after the event stream was refused, StopWatch polls this long before trying it again
_STREAM_RETRY_S = 30.0

_requested: str | None = None
_watches: set[StopWatch] = set()


def request_stop(reason: str) -> bool:
    """Ask the fleet runs of this process to stop (the CLI's Ctrl-C); False if already asked."""
    global _requested
    first = _requested is None
    _requested = _requested or reason
    for watch in list(_watches):
        watch.stop(reason)
    return first


def stop_requested() -> str | None:
    """Why this process was asked to stop, if it was."""
    return _requested


class StopWatch:
    """Tells a running run-command flow to stop: Ctrl-C in this process, or its flow run
    set to Cancelling on the API.

    The Cancelling comes from Prefect's event stream (`prefect.flow-run.Cancelling` for this
    run, over one websocket): the flow learns of it as soon as the server emits it, and asks
    the API nothing while it runs. The flow run is read once each time the stream (re)connects
    (a cancel sent before that) and every `interval` while the stream is unavailable (a refused
    stream is tried again after 30 s).
    """

    def __init__(self, flow_run_id: str | None, *, interval: timedelta = timedelta(seconds=1)):
        self.flow_run_id = flow_run_id
        self.interval = interval
        self.reason: str | None = None
        self.event = asyncio.Event()
        #: how many times the flow run was read from the API (the stream's checks and polls)
        self.reads = 0
        self._poller: asyncio.Task[None] | None = None

    def stop(self, reason: str) -> None:
        if self.reason is None:
            self.reason = reason
        self.event.set()

    async def __aenter__(self) -> StopWatch:
        _watches.add(self)
        if _requested is not None:
            self.stop(_requested)
        if self.flow_run_id:
            self._poller = asyncio.create_task(self._watch(self.flow_run_id))
        return self

    async def __aexit__(self, *_exc: object) -> None:
        _watches.discard(self)
        if self._poller is not None:
            self._poller.cancel()
            await asyncio.gather(self._poller, return_exceptions=True)

    async def _watch(self, flow_run_id: str) -> None:
        from prefect.client.orchestration import get_client

        run_id = uuid.UUID(flow_run_id)
        loop = asyncio.get_running_loop()
        stream_at = 0.0  # when to (re)try the stream; a refused one is retried after a while
        async with get_client() as client:
            while not self.event.is_set():
                if loop.time() >= stream_at:
                    try:
                        await self._follow_stream(client, run_id)
                    except Exception as exc:  # no stream (a proxy without websockets, a restart)
                        logger.debug("event stream for flow run %s: %r", flow_run_id, exc)
                        stream_at = loop.time() + _STREAM_RETRY_S
                    if self.event.is_set():
                        return
                # the stream is away: ask the API
                await asyncio.sleep(self.interval.total_seconds())
                await self._check(client, run_id)

    async def _follow_stream(self, client: PrefectClient, run_id: uuid.UUID) -> None:
        from prefect.events.clients import get_events_subscriber
        from prefect.events.filters import EventFilter, EventNameFilter, EventResourceFilter

        wanted = EventFilter(
            event=EventNameFilter(name=["prefect.flow-run.Cancelling"]),
            resource=EventResourceFilter(id=[f"prefect.flow-run.{run_id}"]),
        )
        async with get_events_subscriber(filter=wanted, reconnection_attempts=2) as events:
            if await self._check(client, run_id):  # cancelled before the stream was open
                return
            async for _event in events:
                if await self._check(client, run_id):
                    return

    async def _check(self, client: PrefectClient, run_id: uuid.UUID) -> bool:
        """Read the flow run; stop if it is Cancelling. Whether it stopped."""
        self.reads += 1
        try:
            run = await client.read_flow_run(run_id)
        except Exception:  # the API is away for a moment: ask again next time
            logger.debug("could not read flow run %s", run_id, exc_info=True)
            return False
        if run.state is not None and run.state.type.value == "CANCELLING":
            self.stop(run.state.message or "the run was cancelled")
            return True
        return False


async def close_task_runs(
    flow_run_ids: Sequence[str],
    kind: Literal["CRASHED", "CANCELLED"],
    message: str,
    *,
    also: Sequence[str] = (),
) -> int:
    """Set the task runs the given flow runs left open (running, pending, scheduled; and in
    the states `also` names) to Crashed or Cancelled through Prefect's API; how many."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterId,
        TaskRunFilter,
        TaskRunFilterState,
        TaskRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.states import Cancelled, Crashed

    if not flow_run_ids:
        return 0
    ids = [uuid.UUID(i) for i in flow_run_ids]
    closed = 0
    async with get_client() as client:
        while True:
            page = await client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=ids)),
                task_run_filter=TaskRunFilter(
                    state=TaskRunFilterState(
                        type=TaskRunFilterStateType(
                            any_=[StateType(t) for t in (*_OPEN_TASK_STATES, *also)]
                        )
                    )
                ),
                limit=200,
            )
            final = Crashed if kind == "CRASHED" else Cancelled
            for task_run in page:
                await client.set_task_run_state(task_run.id, final(message=message), force=True)
            closed += len(page)
            if len(page) < 200:
                return closed


def close_sessions(
    flow_run_ids: Sequence[str], status: str, error: str, *, url: str | None = None
) -> int:
    """Close what the given flow runs left in the catalogue: run rows still `running` get
    `status` (interrupted, cancelled) and `error`; leases their sessions held are given back.
    Call it only once those runs' processes are gone. How many run rows there were."""
    if not flow_run_ids:
        return 0
    error_type = status.capitalize()
    with session_scope(url) as s:
        result = s.execute(
            update(Run)
            .where(Run.flow_run_id.in_(list(flow_run_ids)), Run.status == "running")
            .values(status=status, ended_at=utcnow(), error=error, error_type=error_type)
            .execution_options(synchronize_session=False)
        )
        for run_id in flow_run_ids:  # a session's lease holder is "<flow run id>:<nonce>"
            s.execute(
                update(Profile)
                .where(Profile.lease_holder.like(f"{run_id}:%"))
                .values(
                    lease_holder=None,
                    lease_expires_at=None,
                    lease_proxy_id=None,
                    updated_at=Profile.updated_at,
                )
                .execution_options(synchronize_session=False)
            )
        return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def acancel_run(
    flow_run_id: str, *, wait: timedelta = timedelta(seconds=30), url: str | None = None
) -> FlowRun:
    """Cancel a fleet run for good: propose Cancelling (its worker, or the flow itself when it
    runs in a user's process, ends it Cancelled), wait up to `wait` for that, then force
    Cancelled if nobody did (its process is gone) and close what it left open."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound
    from prefect.states import Cancelled, Cancelling

    try:
        run_uuid = uuid.UUID(flow_run_id.strip())
    except ValueError:
        raise ValidationError(
            f"{flow_run_id!r} is not a flow run id; see the id `fleetwright run` printed"
        ) from None
    message = "cancelled by the user (fleetwright run cancel)"
    async with get_client() as client:
        try:
            run = await client.read_flow_run(run_uuid)
        except ObjectNotFound:
            raise NotFoundError(f"no flow run {flow_run_id}") from None
        if run.state is not None and run.state.is_final():
            raise ValidationError(
                f"run {flow_run_id} already ended {run.state.name}; nothing to cancel"
            )
        await client.set_flow_run_state(run_uuid, Cancelling(message=message))
        from fleetwright.fleet.shards import cancel_children

        await cancel_children(client, run_uuid, message)  # a sharded run's shards
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait.total_seconds()
        while True:
            run = await client.read_flow_run(run_uuid)
            if run.state is not None and run.state.is_final():
                break
            if loop.time() >= deadline:
                await client.set_flow_run_state(run_uuid, Cancelled(message=message), force=True)
                run = await client.read_flow_run(run_uuid)
                break
            await asyncio.sleep(0.5)
    await close_task_runs([str(run_uuid)], "CANCELLED", message, also=("CRASHED",))
    await asyncio.to_thread(close_sessions, [str(run_uuid)], CANCELLED, message, url=url)
    return run
