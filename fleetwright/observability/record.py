"""One-line recorders the integrations call; each is a no-op when metrics are off and never
raises into the caller."""

from __future__ import annotations

import logging
from typing import Any

from fleetwright.observability.metrics import BREAKER_VALUES, fleet_metrics

__all__ = [
    "breaker_changed",
    "fleet_run_finished",
    "fleet_run_started",
    "github_response",
    "openai_usage",
    "ratelimit_waited",
]

logger = logging.getLogger(__name__)

#: a breaker's transition names → its state
_STATES = {"opened": "open", "half-open": "half-open", "closed": "closed"}


def breaker_changed(service: str, account: str, transition: str) -> None:
    """A breaker moved (`opened`, `half-open`, `closed`)."""
    m = fleet_metrics()
    if m is not None:
        state = _STATES.get(transition, transition)
        m.breaker_state.labels(service=service, account=account).set(BREAKER_VALUES[state])


def ratelimit_waited(service: str, seconds: float) -> None:
    """A call waited `seconds` for a service's rate limit (recorded even when zero)."""
    m = fleet_metrics()
    if m is not None:
        m.ratelimit_wait.labels(service=service).observe(max(seconds, 0.0))


def github_response(status: int) -> None:
    """GitHub answered with `status`."""
    m = fleet_metrics()
    if m is not None:
        m.github_requests.labels(status=str(status)).inc()


def openai_usage(model: str, usage: Any) -> None:
    """Tokens of one OpenAI response (`usage`: the SDK's usage object, or None)."""
    m = fleet_metrics()
    if m is None or usage is None:
        return
    for kind in ("input", "output"):
        n = getattr(usage, f"{kind}_tokens", None)
        if isinstance(n, int) and n > 0:
            m.openai_tokens.labels(model=model, kind=kind).inc(n)


def fleet_run_finished(summary: dict[str, Any], *, cancelled: bool = False) -> None:
    """A run-command flow run ended with `summary` (its ok/failed counts); `cancelled`: it
    was stopped before every session ran."""
    m = fleet_metrics()
    if m is None:
        return
    try:
        from prefect.runtime import deployment

        name = str(deployment.name or "")
    except Exception:
        name = ""
    ran = int(summary.get("ok", 0)) + int(summary.get("failed", 0))
    status = "cancelled" if cancelled else "failed" if summary.get("failed") else "completed"
    m.fleet_runs.labels(deployment=name, status=status).inc()
    m.fleet_run_sessions.labels(deployment=name).inc(ran)


def fleet_run_started(command: str, fleet_run_id: str, *, profiles: int, todo: int) -> None:
    """A run-command flow run starts `todo` sessions (of `profiles` selected): the
    `fleetwright.run.started` event gives live views their total for an ETA."""
    from prefect.events import emit_event

    try:
        emit_event(
            event="fleetwright.run.started",
            resource={
                "prefect.resource.id": f"fleetwright.run.{fleet_run_id or command}",
                "prefect.resource.name": fleet_run_id or command,
            },
            payload={"command": command, "profiles": profiles, "todo": todo},
        )
    except Exception:
        logger.warning("could not emit fleetwright.run.started", exc_info=True)
