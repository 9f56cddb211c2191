"""Prefect tasks for browser sessions: thin wrappers over fleetwright.sessions and browser.

`run_profile_session` is the fleet's unit of work (one task run per profile session, retried
only on retryable errors with exponential back-off and jitter). The finer tasks —
`begin_session`, `apply_proxy`, `launch_profile`, `run_command_steps`, `save_profile_state`,
`record_run` — are the same engine steps one by one (SessionEngine.begin … finish), so a flow
composed from them gets run-command's proxy choice, relay release, proxy health, failure
records and lease release (see flows/custom_session.py).
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any, cast

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.context import get_run_context
from prefect.results import get_result_store, should_persist_result
from prefect.states import Cancelled, exception_to_failed_state
from prefect.tasks import exponential_backoff

from fleetwright.browser import BrowserSession, ProxyConfig
from fleetwright.commands import CommandResult, CommandSpec
from fleetwright.errors import FleetwrightError
from fleetwright.sessions import SessionEngine, SessionHandle, SessionRequest
from fleetwright.sessions.engine import TraceMode
from fleetwright.tasks.retries import retry_if_retryable

__all__ = [
    "apply_proxy",
    "begin_session",
    "current_engine",
    "launch_profile",
    "record_run",
    "run_command_steps",
    "run_profile_session",
    "save_profile_state",
    "use_engine",
]

_engines: dict[int, SessionEngine] = {}


def use_engine(engine: SessionEngine) -> None:
    """Make `engine` the one session tasks on this event loop use (flows set it up)."""
    _engines[id(asyncio.get_running_loop())] = engine


def current_engine() -> SessionEngine:
    """The engine of this event loop, created on first use (one browser pool per worker loop)."""
    key = id(asyncio.get_running_loop())
    engine = _engines.get(key)
    if engine is None:
        engine = _engines[key] = SessionEngine()
    return engine


def _ids() -> tuple[str | None, str | None, int]:
    ctx = get_run_context()
    task_run = getattr(ctx, "task_run", None)
    flow_run_id = str(task_run.flow_run_id) if task_run and task_run.flow_run_id else None
    return (
        flow_run_id,
        str(task_run.id) if task_run else None,
        task_run.run_count if task_run else 1,
    )


def _is_last_attempt(exc: FleetwrightError, attempt: int) -> bool:
    task_obj = getattr(get_run_context(), "task", None)
    retries = int(getattr(task_obj, "retries", 0) or 0)
    return not exc.retryable or attempt > retries


async def _emit_failed(request: SessionRequest, exc: FleetwrightError) -> None:
    # imported here: the registry package pulls in every block class, which a process that only
    # submits sessions (`run --now`) would otherwise pay for at start
    from fleetwright.registry.events import emit

    result = getattr(exc, "session_result", None)
    await emit(
        "fleetwright.session.failed",
        request.profile,
        {
            "command": request.command.name,
            "version": request.command.version,
            "fleet_run_id": request.flow_run_id,
            "task_run_id": request.task_run_id,
            "attempts": request.attempt,
            "run_id": getattr(result, "run_id", None),
            "error": exc.message,
            "error_type": type(exc).__name__,
        },
    )


@task(
    name="run-profile-session",
    task_run_name="{profile}",
    cache_policy=NO_CACHE,
    retries=2,
    retry_delay_seconds=exponential_backoff(backoff_factor=2),
    retry_jitter_factor=0.5,
    retry_condition_fn=retry_if_retryable,
    persist_result=False,
)
async def run_profile_session(
    profile: str,
    command: CommandSpec,
    params: dict[str, Any] | None = None,
    trace: TraceMode | None = None,
    timeout: timedelta | None = None,
    fleet_run_id: str | None = None,
    fleet_key: str | None = None,
) -> dict[str, Any]:
    """Run `command` on `profile`: lease, proxy, browser, steps, state, run record.

    `fleet_run_id` keys the run rows when the task runs outside a flow (warm workers);
    inside a flow the flow run's id is used. `fleet_key` (the first run of a resumed chain)
    keeps the session's idempotency key the same across resumes. The last failed attempt
    emits `fleetwright.session.failed`; when it failed with a Fleetwright error (an expected
    failure: a busy profile, a failed step) the task run ends Failed with one log line and no
    traceback, and returns that state: call the task with `return_state=True` and
    `await state.aresult()`, which raises the error.
    """
    logger = get_run_logger()
    flow_run_id, task_run_id, attempt = _ids()
    request = SessionRequest(
        profile=profile, command=command, params=params or {},
        flow_run_id=flow_run_id or fleet_run_id, task_run_id=task_run_id, attempt=attempt,
        trace=trace, timeout=timeout, fleet_id=fleet_key,
    )  # fmt: skip
    try:
        result = await current_engine().run(request)
    except asyncio.CancelledError:
        # The fleet run was stopped (Ctrl-C, `fleetwright run cancel`): the session has
        # recorded its run row and given its lease back. The task run ends Cancelled by its own
        # state change, in order with its others; left to Prefect, a cancelled task is Crashed.
        logger.warning("session on %s cancelled", profile)
        return cast("dict[str, Any]", Cancelled(message=f"session on {profile} was cancelled"))
    except FleetwrightError as exc:
        kind = "retryable" if exc.retryable else "not retryable"
        logger.error("session on %s failed (%s): %s", profile, kind, exc.message)
        if not _is_last_attempt(exc, attempt):
            raise  # Prefect retries it
        await _emit_failed(request, exc)
        # an expected failure: the task run fails with it (the caller still gets it raised)
        # without Prefect logging a traceback for it; Prefect takes a returned state as the
        # task run's own
        failed = await exception_to_failed_state(
            exc,
            message=f"session on {profile} failed after {attempt} attempt(s): {exc.message}",
            result_store=get_result_store(),
            write_result=should_persist_result(),
        )
        return cast("dict[str, Any]", failed)
    # one line per session: the saved state's version rides on it rather than on a line of
    # its own (each line is a record the API stores)
    saved = f", state v{result.state_version}" if result.state_version is not None else ""
    logger.info(
        "session on %s ok in %.0f ms (run %s%s)", profile, result.duration_ms, result.run_id, saved
    )
    return result.as_dict()


# --- finer tasks for composing your own flows: one engine step each ----------------------


@task(name="begin-session", task_run_name="{profile}", cache_policy=NO_CACHE,
      persist_result=False)  # fmt: skip
async def begin_session(
    profile: str,
    command: CommandSpec,
    params: dict[str, Any] | None = None,
    *,
    trace: TraceMode | None = None,
    timeout: timedelta | None = None,
) -> SessionHandle:
    """Take `profile`'s lease, choose its proxy (its own, or one from its pool) and add the
    run row. End the session with record_run(), whatever happens in between."""
    flow_run_id, task_run_id, attempt = _ids()
    request = SessionRequest(
        profile=profile, command=command, params=params or {}, flow_run_id=flow_run_id,
        task_run_id=task_run_id, attempt=attempt, trace=trace, timeout=timeout,
    )  # fmt: skip
    return await current_engine().begin(request)


@task(name="apply-proxy", cache_policy=NO_CACHE, persist_result=False)
async def apply_proxy(session: SessionHandle) -> ProxyConfig | None:
    """The browser-side settings of the session's chosen proxy (a SOCKS5 relay when needed);
    None when the profile has no proxy."""
    return await current_engine().apply_proxy(session)


@task(name="launch-profile", cache_policy=NO_CACHE, persist_result=False)
async def launch_profile(session: SessionHandle) -> BrowserSession:
    """Open the profile's browser session behind its proxy (applied here if not yet)."""
    return await current_engine().launch(session)


@task(name="run-steps", cache_policy=NO_CACHE, persist_result=False)
async def run_command_steps(
    session: SessionHandle, command: CommandSpec | None = None
) -> CommandResult:
    """Run the session's command (or `command`) on its page; outputs go on the run row."""
    return await current_engine().run_steps(session, command)


@task(name="save-profile-state", cache_policy=NO_CACHE, persist_result=False)
async def save_profile_state(session: SessionHandle) -> int | None:
    """Save the profile's state as a new version; the version number."""
    return await current_engine().save_state(session)


@task(name="record-run", cache_policy=NO_CACHE, persist_result=False)
async def record_run(session: SessionHandle, error: BaseException | None = None) -> dict[str, Any]:
    """Close the browser, release the proxy and its relay, report the proxy's health, record
    the run row (failed with `error` when given) and give the lease back."""
    result = await current_engine().finish(session, error)
    if result.status == "failed":
        get_run_logger().error("session on %s failed: %s", session.profile, result.error)
    return result.as_dict()
