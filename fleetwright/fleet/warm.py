"""The warm path: sessions submitted to long-running Fleetwright workers (Prefect task workers
that keep a browser pool open), with results streamed back as they finish.

A process worker needs ~4–5 s from trigger to running flow (subprocess start and imports); a
warm worker already has Python, Prefect and Chromium up, so a session starts in well under a
second. Each session is one `run-profile-session` task run (`apply_async`), visible in the UI.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from fleetwright.errors import FleetwrightError, PrefectUnavailableError
from fleetwright.fleet.plan import FleetPlan
from fleetwright.fleet.runs import SessionRow

if TYPE_CHECKING:
    from prefect.client.schemas.objects import State
    from prefect.futures import PrefectDistributedFuture

__all__ = [
    "WarmFleet",
    "astream_warm",
    "await_warm_worker",
    "session_result",
    "warm_worker_count",
]


def _session_task() -> Any:
    from fleetwright.tasks.sessions import run_profile_session

    return run_profile_session


async def warm_worker_count() -> int:
    """How many warm workers are subscribed to run-profile-session right now."""
    from prefect.client.orchestration import get_client

    key = _session_task().task_key
    async with get_client() as client:
        response = await client._client.post(
            "/task_workers/filter", json={"task_worker_filter": {"task_keys": [key]}}
        )
        response.raise_for_status()
        return len(response.json())


async def await_warm_worker(*, timeout: timedelta = timedelta(seconds=0)) -> int:
    """The number of warm workers, waiting up to `timeout` for one; a one-line error if none."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout.total_seconds()
    while True:
        count = await warm_worker_count()
        if count or loop.time() >= deadline:
            break
        await asyncio.sleep(0.2)
    if not count:
        raise PrefectUnavailableError(
            "no warm worker is running; start one with `fleetwright worker start` "
            "(or run without --now to use the process worker)",
            retryable=False,
        )
    return count


@dataclass(kw_only=True)
class WarmFleet:
    """A fleet run on warm workers: its id (keys the catalogue run rows) and task runs."""

    id: str
    plan: FleetPlan
    task_runs: dict[str, str] = field(default_factory=dict)


def _submit(
    plan: FleetPlan, name: str, fleet_id: str, trace: str | None, timeout: timedelta | None
) -> Any:
    return _session_task().apply_async(
        args=(name, plan.command),
        kwargs={
            "params": plan.params,
            "trace": trace,
            "timeout": timeout,
            "fleet_run_id": fleet_id,
        },
    )


# How long one wait on the task-run event stream lasts before the task run is read from the API
# instead: the first read comes quickly, later ones back off to _MAX_POLL seconds.
_FIRST_POLL = 0.5
_MAX_POLL = 2.0


async def _final_state(task_run_id: uuid.UUID, *, timeout: float) -> State[Any]:
    """The task run's final state: from Prefect's task-run event stream when its event arrives,
    else from reading the task run, which this does every few seconds while it waits.

    Prefect's own `result_async` waits on the event alone. Its subscription is made in the
    background and backfills only events already persisted, and it ends for good if the server
    closes the stream; a session that finished while the subscription was being made (a loaded
    machine makes that window seconds long) or after the stream ended was never seen, and
    `run --now` waited for its whole timeout although the task run was COMPLETED.
    """
    from prefect.client.orchestration import get_client
    from prefect.task_runs import TaskRunWaiter

    TaskRunWaiter.instance()  # subscribe before the first read, so the event is likelier seen
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    pause = _FIRST_POLL
    async with get_client() as client:
        while True:
            task_run = await client.read_task_run(task_run_id)
            if task_run.state is not None and task_run.state.is_final():
                return task_run.state
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"task run {task_run_id} did not finish within {timeout:.0f} s")
            state = await TaskRunWaiter.wait_for_task_run(
                task_run_id, timeout=min(pause, remaining)
            )
            if state is not None and state.is_final():
                return state
            pause = min(pause * 2, _MAX_POLL)


async def session_result(future: PrefectDistributedFuture[Any], *, timeout: float = 900.0) -> Any:
    """A submitted session's result (its exception raised if it failed), waited for safely.

    `timeout` bounds the wait: a task run a worker dropped (say, unreadable parameters) never
    finishes, and the caller gets a TimeoutError instead of waiting forever.
    """
    state = await _final_state(future.task_run_id, timeout=timeout)
    return await state.aresult(raise_on_failure=True)


async def _outcome(name: str, future: PrefectDistributedFuture[Any]) -> SessionRow:
    try:
        result = await session_result(future)
    except FleetwrightError as exc:
        partial = getattr(exc, "session_result", None)
        return SessionRow(
            profile=name,
            status="failed",
            run_id=getattr(partial, "run_id", None),
            attempts=getattr(partial, "attempts", 1),
            duration_ms=getattr(partial, "duration_ms", None),
            error=exc.message,
            error_type=type(exc).__name__,
        )
    except Exception as exc:  # a task that failed outside Fleetwright's errors
        return SessionRow(
            profile=name, status="failed", error=f"{type(exc).__name__}: {exc}"[:500],
            error_type=type(exc).__name__,
        )  # fmt: skip
    return SessionRow(
        profile=name,
        status=str(result.get("status", "ok")),
        run_id=result.get("run_id"),
        attempts=int(result.get("attempts", 1)),
        duration_ms=result.get("duration_ms"),
        outputs=dict(result.get("outputs") or {}),
        artifacts=dict(result.get("artifacts") or {}),
    )


async def astream_warm(
    plan: FleetPlan,
    *,
    concurrency: int = 8,
    fleet_id: str | None = None,
    trace: str | None = None,
    session_timeout: timedelta | None = timedelta(minutes=5),
    started: asyncio.Future[WarmFleet] | None = None,
) -> AsyncIterator[SessionRow]:
    """Submit the plan's sessions to warm workers, at most `concurrency` in flight, and yield
    each profile's outcome as it finishes. `started` (if given) receives the WarmFleet."""
    fleet = WarmFleet(id=fleet_id or str(uuid.uuid4()), plan=plan)
    if started is not None and not started.done():
        started.set_result(fleet)
    queue: asyncio.Queue[SessionRow] = asyncio.Queue()
    sem = asyncio.Semaphore(max(1, concurrency))

    async def one(name: str) -> None:
        async with sem:
            try:
                future = await asyncio.to_thread(
                    _submit, plan, name, fleet.id, trace, session_timeout
                )
                fleet.task_runs[name] = str(future.task_run_id)
                row = await _outcome(name, future)
            except Exception as exc:  # the API went away mid-run: report, don't hang
                row = SessionRow(profile=name, status="failed",
                                 error=f"could not submit: {type(exc).__name__}: {exc}"[:500],
                                 error_type=type(exc).__name__)  # fmt: skip
            await queue.put(row)

    workers = [asyncio.create_task(one(n)) for n in plan.profiles]
    try:
        for _ in plan.profiles:
            yield await queue.get()
    finally:
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
