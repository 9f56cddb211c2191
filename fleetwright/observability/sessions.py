"""One session as operators see it, through the engine's `fleetwright.session_observer` entry
point (fleetwright/sessions/observers.py):

- `observe_metrics`: its phase timings and outcome as Prometheus metrics, the host's sessions
  and browsers open now (prometheus_client only; nothing when metrics are off);
- `observe_events`: its start and finish as Prefect events (`fleetwright.session.started` /
  `.finished`) that `fleetwright watch` follows, its ids on its log records (the JSON log
  format), and for a failed session inside a Prefect run, a markdown artifact on the run's
  page linking its screenshots and trace.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fleetwright.observability.context import session_ids
from fleetwright.observability.metrics import FleetMetrics, error_label, fleet_metrics

if TYPE_CHECKING:
    from fleetwright.sessions.observers import SessionOutcome, SessionStart

__all__ = [
    "SESSION_FINISHED",
    "SESSION_STARTED",
    "EventsObserver",
    "MetricsObserver",
    "observe_events",
    "observe_metrics",
]

logger = logging.getLogger(__name__)

SESSION_STARTED = "fleetwright.session.started"
SESSION_FINISHED = "fleetwright.session.finished"


class MetricsObserver:
    """Records one session into this process's metrics (multiprocess files)."""

    __slots__ = ("command", "metrics", "pool")

    def __init__(self, start: SessionStart, metrics: FleetMetrics) -> None:
        self.metrics, self.pool, self.command = metrics, start.pool, start.command
        metrics.phase_seconds.labels(phase="lease_wait").observe(max(start.lease_wait, 0.0))
        metrics.sessions_active.inc()

    def phase(self, name: str, seconds: float) -> None:
        self.metrics.phase_seconds.labels(phase=name).observe(max(seconds, 0.0))
        if name == "launch":
            self._sample_pool()

    async def finished(self, result: SessionOutcome) -> None:
        m = self.metrics
        m.sessions_active.dec()
        m.sessions.labels(
            command=self.command, status=result.status, error_type=error_label(result.error_type)
        ).inc()
        self._sample_pool()

    def _sample_pool(self) -> None:
        if self.pool is None:  # an opened profile: its browser is not in a pool
            return
        try:
            self.metrics.browser_processes.set(len(self.pool.browser_pids()))
            self.metrics.browser_contexts.set(sum(self.pool.browser_loads()))
        except Exception:  # a pool without these (a test double) has nothing to say
            logger.debug("could not sample the browser pool", exc_info=True)


def observe_metrics(start: SessionStart) -> MetricsObserver | None:
    """The metrics observer of a session that began (None when metrics are off)."""
    metrics = fleet_metrics()
    return MetricsObserver(start, metrics) if metrics is not None else None


class EventsObserver:
    """Tells Prefect's event stream a session started and finished, with its phases."""

    def __init__(self, start: SessionStart) -> None:
        self.start = start
        self.phases: dict[str, float] = {"lease_wait": start.lease_wait}
        self._token = session_ids.set(
            {"profile": start.profile, "session": start.run_id, "command": start.command}
        )
        self._emit(SESSION_STARTED, {"proxy": start.proxy})

    def phase(self, name: str, seconds: float) -> None:
        self.phases[name] = self.phases.get(name, 0.0) + seconds

    async def finished(self, result: SessionOutcome) -> None:
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
        except ValueError:  # finished in another context than it began
            session_ids.set(None)
        if result.status == "failed" and result.artifacts:
            await _failure_artifact(self.start.profile, result)

    def _emit(self, event: str, extra: dict[str, Any]) -> None:
        from prefect.events import emit_event

        s = self.start
        payload = {"profile": s.profile, "command": s.command, "run": s.flow_run_id,
                   "session": s.run_id, "attempt": s.attempt, **extra}  # fmt: skip
        related = []
        if s.flow_run_id:
            related.append(
                {
                    "prefect.resource.id": f"prefect.flow-run.{s.flow_run_id}",
                    "prefect.resource.role": "flow-run",
                }
            )
        try:
            emit_event(
                event=event,
                resource={
                    "prefect.resource.id": f"fleetwright.profile.{s.profile}",
                    "prefect.resource.name": s.profile,
                },
                related=related,
                payload=payload,
            )
        except Exception:
            logger.warning("could not emit %s for %s", event, s.profile, exc_info=True)


def observe_events(start: SessionStart) -> EventsObserver | None:
    """The Prefect-events observer of a session that began; None for a profile opened for
    another tool (it needs no Prefect server, so it sends nothing there)."""
    if start.kind == "open":
        return None
    return EventsObserver(start)


async def _failure_artifact(profile: str, result: SessionOutcome) -> None:
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
