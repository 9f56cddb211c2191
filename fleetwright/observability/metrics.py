"""Fleetwright's Prometheus metrics, written by every process into the host's metrics folder.

Flow runs are short-lived processes, so each one writes its samples to memory-mapped files in
`Settings.metrics_dir` (prometheus_client's multiprocess mode); `fleetwright metrics serve`
adds them up, so counts from finished processes are kept. Labels are bounded: command names,
statuses, error classes, service accounts, never profile names.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

from fleetwright.observability.processes import process_id
from fleetwright.settings import Settings, get_settings

if TYPE_CHECKING:
    from prometheus_client import Counter, Gauge, Histogram

__all__ = ["FleetMetrics", "error_label", "fleet_metrics", "reset_fleet_metrics"]

_PHASE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
_WAIT_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10, 30, 60, 300, 900)

#: breaker states as gauge values
BREAKER_VALUES = {"closed": 0.0, "half-open": 1.0, "open": 2.0}


@dataclass(frozen=True)
class FleetMetrics:
    """The metrics one Fleetwright process records (see docs/observability.md)."""

    sessions: Counter
    phase_seconds: Histogram
    sessions_active: Gauge
    browser_processes: Gauge
    browser_contexts: Gauge
    breaker_state: Gauge
    ratelimit_wait: Histogram
    github_requests: Counter
    openai_tokens: Counter
    fleet_runs: Counter
    fleet_run_sessions: Counter


_lock = threading.Lock()
_metrics: FleetMetrics | None = None
#: the settings `_metrics` was made for (a new Settings object, e.g. another home, remakes it)
_made_for: Settings | None = None
_directory: str | None = None


def _enable_multiprocess(directory: str) -> None:
    """Make every metric created from now on in this process write to `directory`."""
    global _directory
    from prometheus_client import values

    os.makedirs(directory, exist_ok=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
    if not getattr(values.ValueClass, "_multiprocess", False) or _directory != directory:
        # the class is chosen when prometheus_client is first imported, which may have
        # happened (through a library) before Fleetwright's settings were read; a new one
        # also opens its files afresh, in the new folder
        # files are named by pid and start time (see processes.py), so a reused pid never
        # continues a process that ended
        values.ValueClass = values.MultiProcessValue(process_id)  # type: ignore[no-untyped-call]
    _directory = directory


def _create() -> FleetMetrics:
    from prometheus_client import Counter, Gauge, Histogram

    return FleetMetrics(
        sessions=Counter(
            "fleetwright_sessions",
            "Sessions finished, by command, outcome and error class.",
            ["command", "status", "error_type"],
            registry=None,
        ),
        phase_seconds=Histogram(
            "fleetwright_session_phase_seconds",
            "Time spent in each phase of a session.",
            ["phase"],
            buckets=_PHASE_BUCKETS,
            registry=None,
        ),
        sessions_active=Gauge(
            "fleetwright_sessions_active",
            "Sessions running now on this host.",
            registry=None,
            multiprocess_mode="livesum",
        ),
        browser_processes=Gauge(
            "fleetwright_browser_processes",
            "Chromium processes Fleetwright's browser pools hold open on this host.",
            registry=None,
            multiprocess_mode="livesum",
        ),
        browser_contexts=Gauge(
            "fleetwright_browser_contexts",
            "Open browser contexts (sessions' pages) on this host.",
            registry=None,
            multiprocess_mode="livesum",
        ),
        breaker_state=Gauge(
            "fleetwright_breaker_state",
            "Circuit breaker of a service account: 0 closed, 1 half-open, 2 open.",
            ["service", "account"],
            registry=None,
            multiprocess_mode="mostrecent",
        ),
        ratelimit_wait=Histogram(
            "fleetwright_ratelimit_wait_seconds",
            "Time calls waited for a service's rate limit.",
            ["service"],
            buckets=_WAIT_BUCKETS,
            registry=None,
        ),
        github_requests=Counter(
            "fleetwright_github_requests",
            "GitHub API requests, by HTTP status (or 'error' when no answer came).",
            ["status"],
            registry=None,
        ),
        openai_tokens=Counter(
            "fleetwright_openai_tokens",
            "OpenAI tokens used, by model and kind (input, output).",
            ["model", "kind"],
            registry=None,
        ),
        fleet_runs=Counter(
            "fleetwright_fleet_runs",
            "Fleet runs (run-command flow runs) finished, by deployment (`schedule-<name>` for "
            "a schedule's runs, empty when run without a deployment) and state.",
            ["deployment", "status"],
            registry=None,
        ),
        fleet_run_sessions=Counter(
            "fleetwright_fleet_run_sessions",
            "Sessions fleet runs ran (ok and failed; skipped ones not counted), by deployment.",
            ["deployment"],
            registry=None,
        ),
    )


def fleet_metrics(settings: Settings | None = None) -> FleetMetrics | None:
    """This process's metrics, or None when metrics are off (`FLEETWRIGHT_METRICS=false`).

    They write into the host's `metrics_dir` of the current settings.
    """
    global _metrics, _made_for
    settings = settings or get_settings()
    if settings is _made_for:
        return _metrics
    with _lock:
        if settings is not _made_for:
            _metrics = None
            if settings.metrics:
                _enable_multiprocess(str(settings.metrics_dir))
                _metrics = _create()
            _made_for = settings
    return _metrics


def reset_fleet_metrics() -> None:
    """Forget this process's metrics (the next use makes them again from the settings)."""
    global _metrics, _made_for
    with _lock:
        _metrics, _made_for = None, None


def error_label(error_type: str | None) -> str:
    """A bounded `error_type` label: Fleetwright's error classes and a few known ones by
    name, anything else as "Other"."""
    if not error_type:
        return ""
    return error_type if error_type in _known_errors() else "Other"


_KNOWN: frozenset[str] | None = None


def _known_errors() -> frozenset[str]:
    global _KNOWN
    if _KNOWN is None:
        from fleetwright.errors import FleetwrightError

        names: set[str] = {"TimeoutError", "Cancelled"}
        todo: list[type] = [FleetwrightError]
        while todo:
            cls = todo.pop()
            names.add(cls.__name__)
            todo.extend(cls.__subclasses__())
        _KNOWN = frozenset(names)
    return _KNOWN
