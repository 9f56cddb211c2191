"""Prefect tasks for browser sessions: thin wrappers over fleetwright.sessions and browser.

`run_profile_session` is the fleet's unit of work (one task run per profile session, retried
only on retryable errors with exponential back-off and jitter). The finer tasks —
`launch_profile`, `apply_proxy`, `run_command_steps`, `save_profile_state`, `record_run` — let
users compose their own flows (see flows/custom_session.py).
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.context import get_run_context
from prefect.tasks import exponential_backoff

from fleetwright.browser import BrowserPool, BrowserSession, LaunchSpec, ProxyConfig
from fleetwright.catalogue.db import session_scope
from fleetwright.catalogue.models import Run, utcnow
from fleetwright.commands import CommandContext, CommandResult, CommandSpec, run_steps
from fleetwright.errors import FleetwrightError
from fleetwright.registry.events import emit
from fleetwright.registry.proxies import proxy_spec
from fleetwright.sessions import SessionEngine, SessionRequest
from fleetwright.sessions.engine import TraceMode
from fleetwright.tasks.retries import retry_if_retryable

__all__ = [
    "apply_proxy",
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
) -> dict[str, Any]:
    """Run `command` on `profile`: lease, proxy, browser, steps, state, run record.

    `fleet_run_id` keys the run rows when the task runs outside a flow (warm workers);
    inside a flow the flow run's id is used. The last failed attempt emits
    `fleetwright.session.failed`.
    """
    logger = get_run_logger()
    flow_run_id, task_run_id, attempt = _ids()
    request = SessionRequest(
        profile=profile, command=command, params=params or {},
        flow_run_id=flow_run_id or fleet_run_id, task_run_id=task_run_id, attempt=attempt,
        trace=trace, timeout=timeout,
    )  # fmt: skip
    try:
        result = await current_engine().run(request)
    except FleetwrightError as exc:
        kind = "retryable" if exc.retryable else "not retryable"
        logger.error("session on %s failed (%s): %s", profile, kind, exc.message)
        if _is_last_attempt(exc, attempt):
            await _emit_failed(request, exc)
        raise
    logger.info("session on %s ok in %.0f ms (run %s)", profile, result.duration_ms, result.run_id)
    return result.as_dict()


# --- finer tasks for composing your own flows --------------------------------------------


@task(name="apply-proxy", cache_policy=NO_CACHE)
async def apply_proxy(proxy_name: str | None) -> ProxyConfig | None:
    """The browser-side proxy settings of a catalogue proxy (password from its block)."""
    if not proxy_name:
        return None
    spec = await proxy_spec(proxy_name)
    from fleetwright.proxies.browser import browser_proxy

    return ProxyConfig.build(**await browser_proxy(spec, registry=current_engine().relays))


@task(name="launch-profile", cache_policy=NO_CACHE)
async def launch_profile(spec: LaunchSpec, pool: BrowserPool | None = None) -> BrowserSession:
    """Open a session for `spec` in the worker's pool. Close it with save_profile_state()."""
    pool = pool or current_engine().pool
    cm = pool.session(spec)
    session = await cm.__aenter__()
    session._fw_cm = cm  # type: ignore[attr-defined]
    return session


@task(name="run-steps", cache_policy=NO_CACHE)
async def run_command_steps(
    session: BrowserSession, command: CommandSpec, ctx: CommandContext
) -> CommandResult:
    """Run a command's steps on an open session's page."""
    return await run_steps(session.page, command, ctx)


@task(name="save-profile-state", cache_policy=NO_CACHE)
async def save_profile_state(session: BrowserSession, *, failed: bool = False) -> int | None:
    """Save the session's state as a new version (unless it failed), then close it."""
    cm = getattr(session, "_fw_cm", None)
    version = None if failed else await session.save_state()
    if cm is not None:
        await cm.__aexit__(None, None, None)
    return version


@task(name="record-run", cache_policy=NO_CACHE)
def record_run(
    profile: str,
    command: CommandSpec,
    *,
    status: str,
    outputs: dict[str, Any] | None = None,
    error: str | None = None,
    artifacts: dict[str, str] | None = None,
) -> int:
    """Write a run row to the catalogue (run_profile_session does this itself)."""
    flow_run_id, task_run_id, _ = _ids()
    from sqlalchemy import select

    from fleetwright.catalogue.models import Profile

    with session_scope() as s:
        profile_id = s.scalar(select(Profile.id).where(Profile.name == profile))
        run = Run(
            profile_id=profile_id, profile_name=profile, command_name=command.name,
            command_version=command.version, flow_run_id=flow_run_id, task_run_id=task_run_id,
            status=status, outputs=outputs or {}, error=error, artifacts=artifacts or {},
            ended_at=utcnow(),
        )  # fmt: skip
        s.add(run)
        s.flush()
        return run.id
