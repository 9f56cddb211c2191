"""One Fleetwright session: lease → proxy → launch → steps → save state → record → release.

`SessionEngine` holds what a worker keeps warm between sessions (the browser pool, the SOCKS5
relays, the integrations client). Its steps — `begin` (lease, proxy choice, run row),
`apply_proxy`, `launch`, `run_steps`, `save_state`, `finish` (close, relay release, proxy
health, run record, lease release) — are public; `run` is those steps in order. The
run-profile-session task wraps `run`, the fine-grained tasks wrap one step each, so a
hand-written flow gets what run-command gets.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
import time
import uuid
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import bindparam, insert, update

from fleetwright.browser import BrowserPool, BrowserSession, LaunchSpec, ProxyConfig
from fleetwright.browser.state import BrowserState
from fleetwright.catalogue.db import session_scope
from fleetwright.catalogue.models import Run, utcnow
from fleetwright.commands import (
    CommandContext,
    CommandResult,
    CommandSpec,
    TraceMode,
    run_steps,
)
from fleetwright.errors import (
    FleetwrightError,
    ProxyAuthError,
    StateError,
    ValidationError,
)
from fleetwright.listeners import provider
from fleetwright.proxies.pools import Failover, notify_failover
from fleetwright.proxies.relay import RelayRegistry
from fleetwright.sessions import lease as leases
from fleetwright.sessions.claim import claim_profile
from fleetwright.sessions.observers import SessionObservers, SessionStart
from fleetwright.settings import Settings, get_settings
from fleetwright.specs import ProfileSpec, ProxySpec

__all__ = [
    "SessionEngine",
    "SessionHandle",
    "SessionRequest",
    "SessionResult",
    "TraceMode",
    "profile_scope",
    "session_key",
]

logger = logging.getLogger(__name__)
#: Entry points the engine asks (it stays free of Prefect): a proxy's spec with its password
#: (fleetwright.registry.proxies:proxy_spec reads the Proxy block), and the integrations
#: client for github.* / openai.* steps (fleetwright.integrations:Integrations).
PROXY_SPECS = "fleetwright.proxy_spec"
INTEGRATIONS = "fleetwright.integrations"

#: the run row's statements, built once (see fleetwright/browser/state.py)
_ADD_RUN = insert(Run).returning(Run.id)
_ENDED = ("status", "ended_at", "duration_ms", "error", "error_type", "outputs", "artifacts",
          "model", "tokens_used")  # fmt: skip
_END_RUN = (
    update(Run)
    .where(Run.id == bindparam("run_id"))
    .values({name: bindparam(f"v_{name}", type_=Run.__table__.c[name].type) for name in _ENDED})
    .execution_options(synchronize_session=False)
)

_KEY_NAMESPACE = uuid.UUID("6c1f5a52-3f0e-4b1e-9d5c-2a8f2f6c9b10")


def session_key(fleet_id: str, profile: str, command: str) -> str:
    """A session's idempotency key: the same for every attempt of the session on `profile`
    in fleet run `fleet_id` (retries, and resumes of a crashed run, which pass the first
    run's id), different for every other profile, command or fleet run."""
    return uuid.uuid5(_KEY_NAMESPACE, f"{fleet_id}|{profile}|{command}").hex


@dataclass(kw_only=True)
class SessionRequest:
    """What to run: a command on one profile, and how."""

    profile: str
    command: CommandSpec
    params: dict[str, Any] = field(default_factory=dict)
    flow_run_id: str | None = None
    task_run_id: str | None = None
    attempt: int = 1
    #: None: the command's own `trace` setting (default "on-retry")
    trace: TraceMode | None = None
    timeout: timedelta | None = None
    #: the session's idempotency key (`{{ run.idempotency_key }}`); derived from the fleet run
    #: (`fleet_id`, else the flow run) when not given
    idempotency_key: str | None = None
    #: the fleet run the key is derived from: the first run of a resumed chain
    fleet_id: str | None = None

    def __post_init__(self) -> None:
        if self.idempotency_key is None:
            fleet = self.fleet_id or self.flow_run_id or uuid.uuid4().hex
            self.idempotency_key = session_key(fleet, self.profile, self.command.name)

    def key(self) -> str:
        """The idempotency key (always set after construction)."""
        return self.idempotency_key or ""

    def trace_plan(self) -> tuple[bool, bool]:
        """(record, keep_always) for this attempt; a recorded trace that is not always kept
        is kept when the session fails."""
        mode = self.trace or self.command.trace
        if mode == "on-retry":
            retried = self.attempt > 1
            return retried, retried
        return mode in ("on", "on-failure"), mode == "on"


@dataclass(kw_only=True)
class SessionResult:
    """How a session went, as recorded on its catalogue run row."""

    profile: str
    #: cancelled: the session was stopped (Ctrl-C, `fleetwright run cancel`) before it ended
    status: Literal["ok", "failed", "skipped", "cancelled"]
    run_id: int | None = None
    #: which attempt of the task this was (its run row's `attempts`)
    attempts: int = 1
    outputs: dict[str, Any] = field(default_factory=dict)
    artifacts: dict[str, str] = field(default_factory=dict)
    error: str | None = None
    error_type: str | None = None
    retryable: bool = False
    duration_ms: float = 0.0
    state_version: int | None = None
    proxy: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def profile_scope(spec: ProfileSpec) -> dict[str, Any]:
    """The profile's fields as templates see them: every ProfileSpec field (`{{ profile.name
    }}`, `{{ profile.fingerprint.locale }}`), and the fingerprint's also at the top level
    (`{{ profile.timezone }}`)."""
    data = spec.model_dump(mode="json")
    return {**data["fingerprint"], **data}


@dataclass
class _Loaded:
    profile_id: int
    spec: ProfileSpec


@dataclass
class _Begun:
    run_id: int
    proxy: tuple[int, str] | None
    failover: Failover | None = None
    state: BrowserState | Literal["load"] | None = "load"


class SessionHandle:
    """One session between its steps (`SessionEngine.begin` … `finish`): the request, the
    profile, its run row, lease and chosen proxy, the open browser session and the outcome
    so far. A live object: pass it between tasks of one flow run, never serialise it."""

    def __init__(
        self, request: SessionRequest, loaded: _Loaded, begun: _Begun, *, started: float
    ) -> None:
        self.request = request
        self.profile_id = loaded.profile_id
        self.spec = loaded.spec
        self.run_id = begun.run_id
        #: (catalogue id, name) of the proxy chosen for this session, None for no proxy
        self.proxy = begun.proxy
        self.state = begun.state
        self.started = started
        self.started_at = datetime.now(UTC).isoformat(timespec="seconds")
        self.held: leases.ProfileLease | None = None
        self.result = SessionResult(
            profile=loaded.spec.name, status="failed", run_id=begun.run_id,
            attempts=request.attempt, proxy=begun.proxy[1] if begun.proxy else None,
        )  # fmt: skip
        self.extra: dict[str, Any] = {}
        self.artifacts: dict[str, Path] = {}
        self.proxy_spec: ProxySpec | None = None
        self.proxy_config: ProxyConfig | None = None
        self.browser: BrowserSession | None = None
        self.saving: asyncio.Future[int] | None = None
        self.finishing: asyncio.Future[SessionResult] | None = None
        #: the error the session ended with, when the close turned it into another one
        self.error: BaseException | None = None
        #: the session's installed observers (metrics, events), told of each phase's end
        self.observed: SessionObservers | None = None
        self._browser_stack = contextlib.AsyncExitStack()
        self._lease_stack = contextlib.AsyncExitStack()

    @property
    def profile(self) -> str:
        return self.spec.name

    def __repr__(self) -> str:
        return f"SessionHandle(profile={self.spec.name!r}, run_id={self.run_id})"


class SessionEngine:
    """Runs sessions on one event loop, keeping browsers and relays warm between them."""

    def __init__(
        self,
        *,
        pool: BrowserPool | None = None,
        integrations: Any = None,
        settings: Settings | None = None,
        url: str | None = None,
        holder_prefix: str | None = None,
    ) -> None:
        self.settings = settings or get_settings()
        self.pool = pool or BrowserPool(settings=self.settings)
        self.relays = RelayRegistry()
        if integrations is None:
            integrations = provider(INTEGRATIONS)()
        self.integrations = integrations
        self.url = url
        self.holder_prefix = holder_prefix or f"{socket.gethostname()}:{os.getpid()}"

    async def __aenter__(self) -> SessionEngine:
        await self.pool.start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        try:
            await self.pool.close()
        finally:
            await self.relays.close()

    def _begin(
        self, name: str, holder: str, req: SessionRequest, *, take_lease: bool
    ) -> tuple[_Loaded, _Begun | None]:
        """One transaction: read the profile, take its lease, pick its proxy, add the run row.

        Returns the profile and, when the lease was taken (or not wanted), the run's start;
        None when another run holds the lease (nothing was written).
        """
        with session_scope(self.url) as s:
            claim = claim_profile(
                s, name, holder, self.settings.lease_ttl,
                store=self.pool.store, take_lease=take_lease,
            )  # fmt: skip
            loaded = _Loaded(claim.profile_id, claim.spec)
            if not claim.taken:
                return loaded, None
            stored, chosen, failover = claim.stored, claim.proxy, claim.failover
            run_id = s.execute(
                _ADD_RUN,
                {
                    "profile_id": claim.profile_id,
                    "profile_name": loaded.spec.name,
                    "command_name": req.command.name,
                    "command_version": req.command.version,
                    "flow_run_id": req.flow_run_id,
                    "task_run_id": req.task_run_id,
                    "attempts": req.attempt,
                    "status": "running",
                    "proxy_name": chosen[1] if chosen else None,
                },
            ).scalar_one()
            begun = _Begun(run_id=run_id, proxy=chosen, failover=failover)
        if stored is not None:  # read under the lease: no other run can switch it meanwhile
            try:
                begun.state = self.pool.store.read(stored)
            except StateError:  # left to the pool, so the run row records the error
                begun.state = "load"
        return loaded, begun

    def _end(
        self,
        run_id: int,
        result: SessionResult,
        extra: dict[str, Any],
        release: tuple[int, str] | None,
        proxy_id: int | None = None,
    ) -> None:
        """The proxy's health told; then one transaction: the run row's outcome, and the
        lease given back."""
        if proxy_id is not None:
            self._report_proxy(proxy_id, result)
        with session_scope(self.url) as s:
            ended = {
                "status": result.status,
                "ended_at": utcnow(),
                "duration_ms": result.duration_ms,
                "error": result.error,
                "error_type": result.error_type,
                "outputs": result.outputs,
                "artifacts": result.artifacts,
                "model": extra.get("model"),
                "tokens_used": extra.get("tokens_used"),
            }
            s.execute(_END_RUN, {"run_id": run_id, **{f"v_{k}": v for k, v in ended.items()}})
            if release is not None:
                leases.release_in(s, release[0], release[1])

    async def _start(self, req: SessionRequest, holder: str) -> tuple[_Loaded, _Begun]:
        """Begin the session, waiting up to lease_wait (with back-off) for a busy profile."""
        wait = self.settings.lease_wait
        deadline = time.monotonic() + wait.total_seconds()
        delay = 0.05
        take = leases.external is None
        while True:
            beginning = asyncio.ensure_future(
                asyncio.to_thread(self._begin, req.profile, holder, req, take_lease=take)
            )
            try:
                loaded, begun = await asyncio.shield(beginning)
            except asyncio.CancelledError:
                # the transaction runs on in its thread and may commit: undo what it wrote
                await asyncio.wait([beginning])
                if not beginning.cancelled() and beginning.exception() is None:
                    done, started = beginning.result()
                    if started is not None:
                        await asyncio.to_thread(
                            self._cancel_begun, started.run_id, done.profile_id, holder
                        )
                raise
            if begun is not None:
                if begun.failover is not None:
                    notify_failover(begun.failover)
                return loaded, begun
            if time.monotonic() >= deadline:
                other = await asyncio.to_thread(leases.holder_of, loaded.profile_id, self.url)
                busy = leases.busy_error(loaded.spec.name, other, wait)
                busy.session_result = SessionResult(  # type: ignore[attr-defined]
                    profile=loaded.spec.name, status="failed", attempts=req.attempt,
                    error=busy.message, error_type=type(busy).__name__, retryable=busy.retryable,
                )  # fmt: skip
                raise busy
            await asyncio.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, 1.0)

    # -- the session's steps: one code path for run() and the fine-grained tasks ---------

    async def begin(self, req: SessionRequest) -> SessionHandle:
        """Step 1: take the profile's lease (waiting up to lease_wait for a busy profile),
        choose its proxy and add the run row. Every begun session must be ended with
        `finish`, which records the run and gives the lease back."""
        started = time.perf_counter()
        holder = f"{req.flow_run_id or self.holder_prefix}:{uuid.uuid4().hex[:8]}"
        loaded, begun = await self._start(req, holder)
        handle = SessionHandle(req, loaded, begun, started=started)
        if leases.external is not None:
            try:
                await handle._lease_stack.enter_async_context(
                    leases.external(
                        loaded.profile_id, loaded.spec.name, holder,
                        ttl=self.settings.lease_ttl, wait=self.settings.lease_wait, url=self.url,
                    )
                )  # fmt: skip
            except BaseException:
                await asyncio.shield(asyncio.to_thread(self._abandon, begun.run_id))
                raise
        else:
            handle.held = leases.ProfileLease(
                loaded.profile_id, loaded.spec.name, holder, self.settings.lease_ttl, url=self.url
            )
            handle.held.start_renewing()
        handle.observed = self._observe(handle)
        return handle

    def _observe(self, handle: SessionHandle) -> SessionObservers:
        req = handle.request
        return SessionObservers(
            SessionStart(
                profile=handle.spec.name, command=req.command.name, run_id=handle.run_id,
                flow_run_id=req.flow_run_id, task_run_id=req.task_run_id, attempt=req.attempt,
                proxy=handle.proxy[1] if handle.proxy else None,
                lease_wait=time.perf_counter() - handle.started, pool=self.pool,
            )
        )  # fmt: skip

    @staticmethod
    def _phase(handle: SessionHandle, name: str) -> None:
        if handle.observed is not None:
            handle.observed.phase(name)

    async def apply_proxy(self, handle: SessionHandle) -> ProxyConfig | None:
        """Step 2: the browser-side settings of the proxy `begin` chose (a SOCKS5 relay when
        the proxy needs one; the exit IP checked when the profile asks). None: no proxy."""
        if handle.proxy is None:
            return None
        if handle.proxy_spec is None:
            handle.proxy_spec = await provider(PROXY_SPECS)(handle.proxy[1], url=self.url)
            try:
                handle.proxy_config = await self._proxy_config(handle.proxy_spec)
            except ProxyAuthError as exc:
                if handle.spec.name in exc.message:
                    raise
                raise ProxyAuthError(f"profile {handle.spec.name!r}: {exc.message}") from None
            loaded = _Loaded(handle.profile_id, handle.spec)
            await self._check_exit_ip(loaded, handle.proxy[0], handle.proxy_spec)
        return handle.proxy_config

    async def launch(self, handle: SessionHandle) -> BrowserSession:
        """Step 3: open the profile's browser session, behind its proxy (applied here if
        `apply_proxy` was not called: a profile with a proxy never runs without it)."""
        if handle.browser is not None:
            return handle.browser
        await self.apply_proxy(handle)
        req = handle.request
        record_trace, keep_always = req.trace_plan()
        spec = LaunchSpec(
            profile_name=handle.spec.name,
            fingerprint=handle.spec.fingerprint,
            state_mode=handle.spec.state_mode,
            proxy=handle.proxy_config,
            trace=keep_always,
            trace_on_failure=record_trace and not keep_always,
            run_key=f"run-{handle.run_id}",
        )
        handle.browser = await handle._browser_stack.enter_async_context(
            self.pool.session(spec, timeout=req.timeout, state=handle.state)
        )
        self._phase(handle, "launch")
        return handle.browser

    def context(self, handle: SessionHandle) -> CommandContext:
        """What templates and steps see: the profile, the parameters and the run (with its
        idempotency key)."""
        req = handle.request
        return CommandContext(
            artifacts_dir=self.settings.artifacts_dir / f"run-{handle.run_id}",
            profile=profile_scope(handle.spec),
            params=req.params,
            run={
                "id": handle.run_id,
                "flow_run_id": req.flow_run_id,
                "task_run_id": req.task_run_id,
                "attempt": req.attempt,
                "started_at": handle.started_at,
                "command": req.command.name,
                "version": req.command.version,
                "idempotency_key": req.key(),
            },
            integrations=self.integrations,
        )

    async def run_steps(
        self, handle: SessionHandle, command: CommandSpec | None = None
    ) -> CommandResult:
        """Step 4: run the request's command (or `command`) on the open session's page; the
        outputs and artifacts go on the run's record."""
        browser = await self.launch(handle)
        outcome = await run_steps(browser.page, command or handle.request.command,
                                  self.context(handle))  # fmt: skip
        handle.result.outputs.update(_jsonable(outcome.outputs))
        handle.artifacts.update({p.name: p for p in outcome.artifacts})
        handle.artifacts.update(browser.artifact_paths)
        handle.extra = _usage(handle.result.outputs)
        self._phase(handle, "steps")
        return outcome

    async def save_state(self, handle: SessionHandle, *, wait: bool = True) -> int | None:
        """Step 5: capture the profile's state and write it as a new version (switched
        atomically). `wait=False` lets the write overlap the browser's close in `finish`."""
        if handle.browser is None or handle.saving is not None:
            return handle.result.state_version
        handle.saving = await handle.browser.begin_save(handle.run_id)
        if wait:
            handle.result.state_version = await handle.saving
            self._phase(handle, "save")
        return handle.result.state_version

    async def finish(
        self, handle: SessionHandle, error: BaseException | None = None
    ) -> SessionResult:
        """Step 6: close the browser, release the proxy (and its relay), report the proxy's
        health, record the run row's outcome and give the lease back — also when the session
        failed (`error`) or was cancelled. Safe to call twice; the second returns the record.

        When the close turns `error` into a Fleetwright error, `handle.error` holds it."""
        if handle.finishing is None:
            handle.finishing = asyncio.ensure_future(self._finish(handle, error))
        try:
            return await asyncio.shield(handle.finishing)
        except asyncio.CancelledError:
            await asyncio.wait([handle.finishing])  # the record is written whatever happens
            raise
        finally:
            # An external lease (Prefect's concurrency limit: an anyio cancel scope) must be
            # left in the task that entered it, so it is given back here, not in `_finish`.
            if handle.finishing.done():
                await handle._lease_stack.aclose()

    async def run(self, req: SessionRequest) -> SessionResult:
        """Run the session through its steps; on failure the error is raised after the run
        row is recorded. The raised error carries the SessionResult as `error.session_result`.
        """
        handle = await self.begin(req)
        try:
            await self.apply_proxy(handle)
            await self.launch(handle)
            await self.run_steps(handle)
            await self.save_state(handle, wait=False)
        except BaseException as exc:
            await self.finish(handle, exc)
            if handle.error is not None and handle.error is not exc:
                raise handle.error from exc
            raise
        result = await self.finish(handle)
        if handle.error is not None:
            raise handle.error
        return result

    async def _finish(self, handle: SessionHandle, error: BaseException | None) -> SessionResult:
        result = handle.result
        recording: asyncio.Future[None] | None = None
        browser = handle.browser
        try:
            tracing = browser is not None and browser.artifacts.tracing
            if error is None and handle.saving is not None and not tracing:
                # the outcome is recorded while the context closes: the close has nothing
                # to add to the record (no trace being written)
                recording = asyncio.ensure_future(self._saved_and_recorded(handle))
            try:
                await handle._browser_stack.__aexit__(*_exc_info(error))
            except BaseException as mapped:  # the pool maps Playwright errors and timeouts
                if error is None or mapped is not error:
                    error = mapped
                    handle.error = mapped
            if error is None:
                if recording is not None:
                    await recording
                else:
                    await self._saved(handle)
        except BaseException as exc:
            error = exc
            handle.error = exc
        if error is not None:
            result.status = "cancelled" if isinstance(error, asyncio.CancelledError) else "failed"
            handle.artifacts.update(_session_artifacts(error))
            result.error, result.error_type, result.retryable = _describe(error)
            partial = getattr(error, "result", None)
            if partial is not None and getattr(partial, "outputs", None):
                result.outputs = _jsonable(partial.outputs)
            for raised in (error, handle.error):
                if isinstance(raised, FleetwrightError):
                    raised.session_result = result  # type: ignore[attr-defined]
        for pending in (handle.saving, recording):
            if pending is not None and not pending.done():
                # the lease stays held until the state write has switched
                await asyncio.wait([pending])
        if handle.proxy_spec is not None:
            await self._release_proxy(handle.proxy_spec)
        recorded = (
            recording is not None and not recording.cancelled() and (recording.exception() is None)
        )
        if not recorded:
            if browser is not None:
                handle.artifacts.update(browser.artifact_paths)
            await self._record(handle)
        if handle.observed is not None:
            await handle.observed.finished(replace(result))
        return result

    async def _saved(self, handle: SessionHandle) -> None:
        if handle.saving is not None and handle.result.state_version is None:
            handle.result.state_version = await handle.saving
            self._phase(handle, "save")
        handle.result.status = "ok"

    async def _saved_and_recorded(self, handle: SessionHandle) -> None:
        await self._saved(handle)
        await self._record(handle)

    async def _record(self, handle: SessionHandle) -> None:
        """The lease's renewal stopped, then the run row's outcome and the lease given back
        (with the proxy's health) in one transaction."""
        held = handle.held
        if held is not None:
            await held.stop_renewing()
        result = handle.result
        result.duration_ms = (time.perf_counter() - handle.started) * 1000
        result.artifacts = {k: str(v) for k, v in handle.artifacts.items()}
        release = (held.profile_id, held.holder) if held is not None else None
        outcome = replace(result)  # as it is now, whatever the caller changes meanwhile
        proxy_id = handle.proxy[0] if handle.proxy else None
        await asyncio.shield(
            asyncio.to_thread(self._end, handle.run_id, outcome, handle.extra, release, proxy_id)
        )
        self._phase(handle, "record")

    def _cancel_begun(self, run_id: int, profile_id: int, holder: str) -> None:
        """A session cancelled while it began: its run row cancelled, its lease given back."""
        with session_scope(self.url) as s:
            s.execute(
                update(Run)
                .where(Run.id == run_id, Run.status == "running")
                .values(
                    status="cancelled",
                    ended_at=utcnow(),
                    error="the session was cancelled",
                    error_type="Cancelled",
                )
                .execution_options(synchronize_session=False)
            )
            leases.release_in(s, profile_id, holder)

    def _abandon(self, run_id: int) -> None:
        """A run row whose session never started (its external lease was not granted)."""
        with session_scope(self.url) as s:
            s.execute(
                update(Run)
                .where(Run.id == run_id, Run.status == "running")
                .values(status="failed", ended_at=utcnow(), error="no lease")
                .execution_options(synchronize_session=False)
            )

    async def _proxy_config(self, pspec: ProxySpec) -> ProxyConfig:
        from fleetwright.proxies.browser import browser_proxy

        settings = await browser_proxy(pspec, registry=self.relays)
        return ProxyConfig.build(**settings)

    async def _release_proxy(self, pspec: ProxySpec) -> None:
        from fleetwright.proxies.browser import release_browser_proxy

        try:
            await release_browser_proxy(pspec, registry=self.relays)
        except Exception:  # a relay that is already gone
            logger.debug("relay release failed", exc_info=True)

    async def _check_exit_ip(self, loaded: _Loaded, proxy_id: int | None, pspec: ProxySpec) -> None:
        if loaded.spec.ip_check == "off":
            return
        from fleetwright.proxies.exitip import verify_exit_ip

        info_url = self.settings.proxy_info_url
        if not info_url:
            raise ValidationError(
                f"profile {loaded.spec.name!r} asks for an exit-IP check but no IP-info URL is "
                "set; set FLEETWRIGHT_PROXY_INFO_URL or set the profile's ip_check to off"
            )
        await verify_exit_ip(loaded.profile_id, proxy_id, pspec, info_url=info_url, url=self.url)

    def _report_proxy(self, proxy_id: int, result: SessionResult) -> None:
        from fleetwright.proxies.health import report_session_result

        proxy_failed = result.error_type is not None and result.error_type.startswith("Proxy")
        if result.status == "ok" or proxy_failed:
            try:
                report_session_result(
                    proxy_id,
                    result.status == "ok",
                    result.error,
                    url=self.url,
                    auth_failed=result.error_type == "ProxyAuthError",
                )
            except Exception:  # health bookkeeping never fails a session
                logger.warning("could not record proxy health", exc_info=True)


def _exc_info(
    error: BaseException | None,
) -> tuple[type[BaseException] | None, BaseException | None, Any]:
    if error is None:
        return None, None, None
    return type(error), error, error.__traceback__


def _describe(exc: BaseException) -> tuple[str, str, bool]:
    if isinstance(exc, FleetwrightError):
        return exc.message, type(exc).__name__, exc.retryable
    if isinstance(exc, asyncio.CancelledError):
        return "the session was cancelled", "Cancelled", False
    if isinstance(exc, TimeoutError):
        return "the session timed out", "TimeoutError", True
    return (
        f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}",
        type(exc).__name__,
        False,
    )


def _session_artifacts(exc: BaseException) -> dict[str, Path]:
    partial = getattr(exc, "result", None)
    paths = getattr(partial, "artifacts", None) or []
    return {p.name: p for p in paths if isinstance(p, Path)}


def _usage(outputs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    tokens = 0
    model = None
    for out in outputs.values():
        if isinstance(out, dict) and "tokens_used" in out:
            tokens += int(out.get("tokens_used") or 0)
            model = out.get("model") or model
    return {"model": model, "tokens_used": tokens} if model else {}


def _jsonable(value: Any) -> Any:
    import json

    return json.loads(json.dumps(value, default=str))
