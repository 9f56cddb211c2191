"""One session as operators see it: phase timings and outcome as metrics, start and finish
as Prefect events (`fleetwright.session.started` / `.finished`) that `fleetwright watch`
follows, and the session's ids on its log records."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fleetwright.observability.context import session_ids
from fleetwright.observability.metrics import FleetMetrics, error_label, fleet_metrics

if TYPE_CHECKING:
    from fleetwright.browser import BrowserPool
    from fleetwright.sessions.engine import SessionRequest, SessionResult

__all__ = ["SESSION_FINISHED", "SESSION_STARTED", "SessionObserver", "observe_session"]

logger = logging.getLogger(__name__)

SESSION_STARTED = "fleetwright.session.started"
SESSION_FINISHED = "fleetwright.session.finished"


class SessionObserver:
    """Times a session's phases and reports its start and finish (never fails the session)."""

    def __init__(
        self,
        req: SessionRequest,
        profile: str,
        run_id: int,
        proxy: str | None,
        *,
        waited: float,
        pool: BrowserPool | None = None,
    ) -> None:
        self.metrics: FleetMetrics | None = fleet_metrics()
        self.profile, self.run_id, self.proxy, self.pool = profile, run_id, proxy, pool
        self.command = req.command.name
        self.flow_run_id = req.flow_run_id
        self.attempt = req.attempt
        self.phases: dict[str, float] = {}
        self._mark = time.perf_counter()
        self._done = False
        self._token = session_ids.set(
            {"profile": profile, "session": run_id, "command": self.command}
        )
        self._record("lease_wait", waited)
        if self.metrics is not None:
            self.metrics.sessions_active.inc()
        self._emit(SESSION_STARTED, {"proxy": proxy})

    def phase(self, name: str) -> None:
        """The phase `name` ended now (it began when the previous one ended)."""
        now = time.perf_counter()
        self._record(name, now - self._mark)
        self._mark = now
        if name == "launch":
            self._sample_pool()

    async def finish(self, result: SessionResult) -> None:
        """The session's outcome is recorded: count it, tell the event stream and, for a
        failed session inside a Prefect run, put its screenshots and trace on the run's page."""
        if self._done:
            return
        self._done = True
        m = self.metrics
        if m is not None:
            m.sessions_active.dec()
            m.sessions.labels(
                command=self.command,
                status=result.status,
                error_type=error_label(result.error_type),
            ).inc()
            self._sample_pool()
        self._emit(
            SESSION_FINISHED,
            {
                "proxy": result.proxy,
                "outcome": result.status,
                "error_type": result.error_type,
                "error": result.error,
                "retryable": result.retryable,
                "duration_ms": round(result.duration_ms, 1),
                "phases_ms": {k: round(v * 1000, 1) for k, v in self.phases.items()},
            },
        )
        try:
            session_ids.reset(self._token)
        except ValueError:  # finished in another context than it started
            session_ids.set(None)
        if result.status == "failed" and result.artifacts and result.error_type != "Cancelled":
            await _failure_artifact(self.profile, result)

    def _record(self, name: str, seconds: float) -> None:
        self.phases[name] = seconds
        if self.metrics is not None:
            self.metrics.phase_seconds.labels(phase=name).observe(max(seconds, 0.0))

    def _sample_pool(self) -> None:
        if self.metrics is None or self.pool is None:
            return
        try:
            self.metrics.browser_processes.set(len(self.pool.browser_pids()))
            self.metrics.browser_contexts.set(sum(self.pool.browser_loads()))
        except Exception:  # a pool without these (a test double) has nothing to say
            logger.debug("could not sample the browser pool", exc_info=True)

    def _emit(self, event: str, extra: dict[str, Any]) -> None:
        from prefect.events import emit_event

        payload = {
            "profile": self.profile,
            "command": self.command,
            "run": self.flow_run_id,
            "session": self.run_id,
            "attempt": self.attempt,
            **extra,
        }
        related = []
        if self.flow_run_id:
            related.append(
                {
                    "prefect.resource.id": f"prefect.flow-run.{self.flow_run_id}",
                    "prefect.resource.role": "flow-run",
                }
            )
        try:
            emit_event(
                event=event,
                resource={
                    "prefect.resource.id": f"fleetwright.profile.{self.profile}",
                    "prefect.resource.name": self.profile,
                },
                related=related,
                payload=payload,
            )
        except Exception:
            logger.warning("could not emit %s for %s", event, self.profile, exc_info=True)


async def _failure_artifact(profile: str, result: SessionResult) -> None:
    """A markdown artifact on the flow/task run: the failure and links to its files."""
    from prefect.artifacts import acreate_markdown_artifact
    from prefect.context import FlowRunContext, TaskRunContext

    if FlowRunContext.get() is None and TaskRunContext.get() is None:
        return
    lines = [f"### {profile}: {result.error_type}", "", result.error or "", ""]
    for name, path in sorted(result.artifacts.items()):
        lines.append(f"- [{name}]({Path(path).resolve().as_uri()})")
    try:
        await acreate_markdown_artifact(
            markdown="\n".join(lines),
            description=f"{profile} failed ({result.error_type}): screenshots and trace",
        )
    except Exception:
        logger.warning("could not publish the failure artifact of %s", profile, exc_info=True)


def observe_session(
    req: SessionRequest,
    profile: str,
    run_id: int,
    proxy: str | None,
    *,
    started: float,
    pool: BrowserPool | None = None,
) -> SessionObserver:
    """Start observing a session whose lease was taken now (`started`: perf_counter() when
    the session was asked for, so the wait for the lease is its first phase)."""
    return SessionObserver(
        req, profile, run_id, proxy, waited=time.perf_counter() - started, pool=pool
    )
