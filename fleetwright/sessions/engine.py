"""One Fleetwright session: lease → proxy → launch → steps → save state → record → release.

`SessionEngine` holds what a worker keeps warm between sessions (the browser pool, the SOCKS5
relays, the integrations client). Prefect tasks wrap `SessionEngine.run`; so do benchmarks.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import socket
import time
import uuid
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import select, update
from sqlalchemy.orm import joinedload

from fleetwright.browser import BrowserPool, LaunchSpec, ProxyConfig
from fleetwright.browser.state import BrowserState
from fleetwright.catalogue.db import session_scope
from fleetwright.catalogue.models import Profile, Run, utcnow
from fleetwright.commands import CommandContext, CommandSpec, TraceMode, run_steps
from fleetwright.errors import (
    FleetwrightError,
    NotFoundError,
    StateError,
    ValidationError,
)
from fleetwright.observability import observe_session
from fleetwright.proxies.pools import Failover
from fleetwright.proxies.relay import RelayRegistry
from fleetwright.registry.events import emit
from fleetwright.registry.proxies import proxy_spec
from fleetwright.registry.shape import row_to_spec
from fleetwright.sessions import lease as leases
from fleetwright.settings import Settings, get_settings
from fleetwright.specs import ProfileSpec, ProxySpec

__all__ = ["SessionEngine", "SessionRequest", "SessionResult", "TraceMode", "profile_scope"]

logger = logging.getLogger(__name__)


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
    status: Literal["ok", "failed", "skipped"]
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
            from fleetwright.integrations import Integrations

            integrations = Integrations()
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
        from fleetwright.proxies.pools import choose_proxy_for

        with session_scope(self.url) as s:
            row = s.scalar(
                select(Profile)
                .where(Profile.name == name)
                .options(joinedload(Profile.proxy), joinedload(Profile.proxy_pool))
            )
            if row is None:
                raise NotFoundError(f"unknown profile {name!r}; see `fleetwright profile list`")
            if row.status != "active":
                raise ValidationError(f"profile {name!r} is {row.status}; only active ones run")
            loaded = _Loaded(row.id, row_to_spec(row))
            if take_lease and not leases.take(s, row.id, holder, self.settings.lease_ttl):
                return loaded, None
            stored = self.pool.store.current_in(s, name) if row.state_mode == "storage" else None
            chosen = None
            failover = None
            if row.proxy_id is not None or row.proxy_pool_id is not None:
                proxy, failover = choose_proxy_for(s, row)
                chosen = (proxy.id, proxy.name) if proxy is not None else None
            run = Run(
                profile_id=row.id,
                profile_name=loaded.spec.name,
                command_name=req.command.name,
                command_version=req.command.version,
                flow_run_id=req.flow_run_id,
                task_run_id=req.task_run_id,
                attempts=req.attempt,
                status="running",
                proxy_name=chosen[1] if chosen else None,
            )
            s.add(run)
            s.flush()
            begun = _Begun(run_id=run.id, proxy=chosen, failover=failover)
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
            s.execute(
                update(Run)
                .where(Run.id == run_id)
                .values(
                    status=result.status,
                    ended_at=utcnow(),
                    duration_ms=result.duration_ms,
                    error=result.error,
                    error_type=result.error_type,
                    outputs=result.outputs,
                    artifacts=result.artifacts,
                    model=extra.get("model"),
                    tokens_used=extra.get("tokens_used"),
                )
                .execution_options(synchronize_session=False)
            )
            if release is not None:
                leases.release_in(s, release[0], release[1])

    async def _start(self, req: SessionRequest, holder: str) -> tuple[_Loaded, _Begun]:
        """Begin the session, waiting up to lease_wait (with back-off) for a busy profile."""
        wait = self.settings.lease_wait
        deadline = time.monotonic() + wait.total_seconds()
        delay = 0.05
        take = leases.external is None
        while True:
            loaded, begun = await asyncio.to_thread(
                self._begin, req.profile, holder, req, take_lease=take
            )
            if begun is not None:
                if begun.failover is not None:
                    f = begun.failover
                    await emit(
                        "fleetwright.profile.failover",
                        f.profile,
                        {"from": f.from_proxy, "to": f.to_proxy, "pool": f.pool},
                    )
                return loaded, begun
            if time.monotonic() >= deadline:
                other = await asyncio.to_thread(leases.holder_of, loaded.profile_id, self.url)
                raise leases.busy_error(loaded.spec.name, other, wait)
            await asyncio.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, 1.0)

    async def run(self, req: SessionRequest) -> SessionResult:
        """Run the session; on failure the error is raised after the run row is recorded.

        The raised error carries the SessionResult as `error.session_result`.
        """
        started = time.perf_counter()
        holder = f"{req.flow_run_id or self.holder_prefix}:{uuid.uuid4().hex[:8]}"
        if leases.external is not None:
            loaded, begun = await self._start(req, holder)
            try:
                async with leases.external(
                    loaded.profile_id, loaded.spec.name, holder,
                    ttl=self.settings.lease_ttl, wait=self.settings.lease_wait, url=self.url,
                ):  # fmt: skip
                    return await self._run_leased(req, loaded, begun, started, None)
            except BaseException:
                await asyncio.shield(asyncio.to_thread(self._abandon, begun.run_id))
                raise
        loaded, begun = await self._start(req, holder)
        held = leases.ProfileLease(
            loaded.profile_id, loaded.spec.name, holder, self.settings.lease_ttl, url=self.url
        )
        held.start_renewing()
        return await self._run_leased(req, loaded, begun, started, held)

    def _abandon(self, run_id: int) -> None:
        """A run row whose session never started (its external lease was not granted)."""
        with session_scope(self.url) as s:
            s.execute(
                update(Run)
                .where(Run.id == run_id, Run.status == "running")
                .values(status="failed", ended_at=utcnow(), error="no lease")
                .execution_options(synchronize_session=False)
            )

    async def _run_leased(
        self,
        req: SessionRequest,
        loaded: _Loaded,
        begun: _Begun,
        started: float,
        held: leases.ProfileLease | None,
    ) -> SessionResult:
        run_id, chosen = begun.run_id, begun.proxy
        proxy_id, proxy_name = (chosen[0], chosen[1]) if chosen else (None, None)
        result = SessionResult(profile=loaded.spec.name, status="failed", run_id=run_id,
                               attempts=req.attempt, proxy=proxy_name)  # fmt: skip
        extra: dict[str, Any] = {}
        pspec: ProxySpec | None = None
        artifacts: dict[str, Path] = {}
        browser_session = None
        saving: asyncio.Future[int] | None = None
        recording: asyncio.Future[None] | None = None
        obs = observe_session(
            req, loaded.spec.name, run_id, proxy_name, started=started, pool=self.pool
        )

        async def record() -> None:
            """The lease's renewal stopped, then the run row's outcome and the lease given
            back (with the proxy's health) in one transaction."""
            if held is not None:
                await held.stop_renewing()
            result.duration_ms = (time.perf_counter() - started) * 1000
            result.artifacts = {k: str(v) for k, v in artifacts.items()}
            release = (held.profile_id, held.holder) if held is not None else None
            outcome = replace(result)  # as it is now, whatever the caller changes meanwhile
            await asyncio.shield(
                asyncio.to_thread(self._end, run_id, outcome, extra, release, proxy_id)
            )
            obs.phase("record")

        async def saved(saving: asyncio.Future[int]) -> None:
            result.state_version = await saving
            obs.phase("save")
            result.status = "ok"

        async def saved_and_recorded(saving: asyncio.Future[int]) -> None:
            await saved(saving)
            await record()

        try:
            proxy_cfg = None
            if chosen:
                pspec = await proxy_spec(chosen[1], url=self.url)
                proxy_cfg = await self._proxy_config(pspec)
                await self._check_exit_ip(loaded, proxy_id, pspec)
            record_trace, keep_always = req.trace_plan()
            spec = LaunchSpec(
                profile_name=loaded.spec.name,
                fingerprint=loaded.spec.fingerprint,
                state_mode=loaded.spec.state_mode,
                proxy=proxy_cfg,
                trace=keep_always,
                trace_on_failure=record_trace and not keep_always,
                run_key=f"run-{run_id}",
            )
            ctx = CommandContext(
                artifacts_dir=self.settings.artifacts_dir / f"run-{run_id}",
                profile=profile_scope(loaded.spec),
                params=req.params,
                run={"id": run_id, "flow_run_id": req.flow_run_id, "attempt": req.attempt},
                integrations=self.integrations,
            )
            async with self.pool.session(spec, timeout=req.timeout, state=begun.state) as session:
                browser_session = session
                obs.phase("launch")
                outcome = await run_steps(session.page, req.command, ctx)
                obs.phase("steps")
                result.outputs = _jsonable(outcome.outputs)
                artifacts.update({p.name: p for p in outcome.artifacts})
                artifacts.update(session.artifact_paths)
                extra = _usage(outcome.outputs)
                # the state is captured here; its write overlaps the context's close, and so
                # does recording the outcome when the close has nothing to add to the record
                # (no trace being written)
                saving = await session.begin_save(run_id)
                if not session.artifacts.tracing:
                    recording = asyncio.ensure_future(saved_and_recorded(saving))
            await (recording if recording is not None else saved(saving))
        except BaseException as exc:
            result.status = "failed"
            artifacts.update(_session_artifacts(exc))
            result.error, result.error_type, result.retryable = _describe(exc)
            partial = getattr(exc, "result", None)
            if partial is not None and getattr(partial, "outputs", None):
                result.outputs = _jsonable(partial.outputs)
            if isinstance(exc, FleetwrightError):
                exc.session_result = result  # type: ignore[attr-defined]
            raise
        finally:
            for pending in (saving, recording):
                if pending is not None and not pending.done():
                    # cancelled meanwhile: the lease stays held until the write has switched
                    await asyncio.wait([pending])
            if pspec is not None:
                await self._release_proxy(pspec)
            recorded = (
                recording is not None
                and not recording.cancelled()
                and recording.exception() is None
            )
            if not recorded:
                if browser_session is not None:
                    artifacts.update(browser_session.artifact_paths)
                await record()
            await obs.finish(result)
        return result

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
                report_session_result(proxy_id, result.status == "ok", result.error, url=self.url)
            except Exception:  # health bookkeeping never fails a session
                logger.warning("could not record proxy health", exc_info=True)


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
