"""Proxy health: probes, a decaying error score, quarantine with back-off, recovery, events.

Probe failures and real-session failures raise a proxy's error score, which halves every
`half_life`. Above `threshold` the proxy is quarantined (out of rotation) and re-probed with
exponential back-off; the first probe that passes recovers it. Transitions go to the
`fleetwright.proxy_health` listeners: installed, Fleetwright's own emits them as Prefect events
`fleetwright.proxy.quarantined` / `fleetwright.proxy.recovered`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from fleetwright.catalogue.db import session_scope
from fleetwright.catalogue.models import Proxy, utcnow
from fleetwright.errors import (
    NotFoundError,
    ProbeEndpointError,
    ProxyAuthError,
    ProxyError,
    redact_url,
)
from fleetwright.listeners import installed, notify
from fleetwright.proxies.http import fetch_exit_ip, fetch_ip_info, proxy_client
from fleetwright.proxies.locking import lock_proxy
from fleetwright.specs import ProxySpec

__all__ = [
    "HEALTH_LISTENERS",
    "HealthChange",
    "HealthPolicy",
    "ProbeResult",
    "apply_observation",
    "due_for_probe",
    "emit_health_event",
    "probe",
    "record_probe_result",
    "report_session_result",
    "try_probe",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProbeResult:
    """One probe of one proxy. `error` is a one-line, secret-free reason when not ok."""

    ok: bool
    latency_ms: float | None = None
    exit_ip: str | None = None
    country: str | None = None
    error: str | None = None
    timezone: str | None = None
    auth_failed: bool = False
    #: the probe's endpoint failed (directly too): nothing was learnt about the proxy
    endpoint_failed: bool = False


@dataclass(frozen=True, kw_only=True)
class HealthPolicy:
    """How failures weigh and how long quarantines last."""

    threshold: float = 3.0
    probe_failure: float = 1.0
    auth_failure: float = 3.0
    session_failure: float = 0.5
    half_life: timedelta = timedelta(minutes=10)
    backoff: timedelta = timedelta(minutes=1)
    max_backoff: timedelta = timedelta(hours=1)

    def backoff_for(self, count: int) -> timedelta:
        """Re-probe delay after the `count`-th consecutive quarantine period."""
        delay: timedelta = self.backoff * int(2 ** max(count - 1, 0))
        return min(delay, self.max_backoff)


@dataclass(frozen=True)
class HealthChange:
    """A proxy entering or leaving quarantine."""

    kind: Literal["quarantined", "recovered"]
    proxy_id: int
    proxy_name: str
    error_score: float
    quarantined_until: datetime | None
    quarantine_count: int
    error: str | None

    @property
    def event(self) -> str:
        return f"fleetwright.proxy.{self.kind}"


async def probe(
    proxy: ProxySpec,
    *,
    echo_url: str,
    info_url: str | None = None,
    timeout: timedelta = timedelta(seconds=10),
) -> ProbeResult:
    """Fetch the exit IP (and country, with `info_url`) through the proxy.

    Raises ProxyAuthError for refused credentials and ProxyError when the proxy is
    unreachable or the echo endpoint answers garbage.
    """
    async with proxy_client(proxy, timeout=timeout) as client:
        started = time.perf_counter()
        ip = await fetch_exit_ip(client, proxy, echo_url)
        latency_ms = (time.perf_counter() - started) * 1000
        country = tz = None
        if info_url:
            info = await fetch_ip_info(client, proxy, info_url)
            country, tz = info.country, info.timezone
    return ProbeResult(ok=True, latency_ms=latency_ms, exit_ip=ip, country=country, timezone=tz)


async def try_probe(
    proxy: ProxySpec,
    *,
    echo_url: str,
    info_url: str | None = None,
    timeout: timedelta = timedelta(seconds=10),
) -> ProbeResult:
    """probe(), with proxy failures returned as a failed ProbeResult instead of raised."""
    try:
        return await probe(proxy, echo_url=echo_url, info_url=info_url, timeout=timeout)
    except ProxyError as exc:
        return ProbeResult(
            ok=False,
            error=exc.message,
            auth_failed=isinstance(exc, ProxyAuthError),
            endpoint_failed=isinstance(exc, ProbeEndpointError),
        )


def _decayed(proxy: Proxy, now: datetime, policy: HealthPolicy) -> float:
    score = proxy.error_score or 0.0
    since = proxy.updated_at or now
    elapsed = max((now - since).total_seconds(), 0.0)
    half = policy.half_life.total_seconds()
    return score * 0.5 ** (elapsed / half) if half > 0 else 0.0


def apply_observation(
    proxy: Proxy,
    *,
    ok: bool,
    weight: float,
    error: str | None,
    from_probe: bool,
    now: datetime,
    policy: HealthPolicy,
) -> HealthChange | None:
    """Update the (locked) proxy row with one success or failure; return any transition."""
    score = _decayed(proxy, now, policy)
    change: Literal["quarantined", "recovered"] | None = None
    if ok:
        proxy.consecutive_failures = 0
        if from_probe:
            proxy.last_error = None
            if proxy.health == "quarantined":
                change = "recovered"
                score = 0.0
                proxy.quarantined_until = None
                proxy.quarantine_count = 0
            proxy.health = "healthy"
    else:
        score += weight
        proxy.consecutive_failures = (proxy.consecutive_failures or 0) + 1
        proxy.last_error = redact_url(error or "failed")[:500]
        if proxy.health == "quarantined":
            if from_probe:  # a failed re-probe: wait longer before the next one
                proxy.quarantine_count = (proxy.quarantine_count or 0) + 1
                proxy.quarantined_until = now + policy.backoff_for(proxy.quarantine_count)
        elif score >= policy.threshold:
            change = "quarantined"
            proxy.health = "quarantined"
            proxy.quarantine_count = 1
            proxy.quarantined_until = now + policy.backoff_for(1)
        else:
            proxy.health = "failing"
    proxy.error_score = round(score, 4)
    proxy.updated_at = now
    if from_probe:
        proxy.last_checked_at = now
    if change is None:
        return None
    return HealthChange(
        kind=change,
        proxy_id=proxy.id,
        proxy_name=proxy.name,
        error_score=proxy.error_score,
        quarantined_until=proxy.quarantined_until,
        quarantine_count=proxy.quarantine_count,
        error=proxy.last_error,
    )


#: Entry point group of callables told about every transition. Fleetwright's own
#: (fleetwright.registry.events:emit_proxy_health) sends it to Prefect's event stream; this
#: module stays free of Prefect and finds it through the installed package's metadata.
HEALTH_LISTENERS = "fleetwright.proxy_health"


def _listeners() -> tuple[Callable[[HealthChange], None], ...]:
    return installed(HEALTH_LISTENERS)


def emit_health_event(change: HealthChange) -> None:
    """Log the transition and hand it to every health listener (a failing one is logged)."""
    log = logger.warning if change.kind == "quarantined" else logger.info
    log(
        "Proxy %s %s (error score %.2f, next probe %s)",
        change.proxy_name,
        change.kind,
        change.error_score,
        change.quarantined_until,
    )
    notify(_listeners(), change, f"proxy health ({change.kind})")


def _observe(
    proxy_id: int,
    *,
    ok: bool,
    weight: float,
    error: str | None,
    from_probe: bool,
    url: str | None,
    now: datetime | None,
    policy: HealthPolicy,
    emit_events: bool,
    result: ProbeResult | None = None,
) -> HealthChange | None:
    with session_scope(url) as session:
        proxy = lock_proxy(session, proxy_id)
        if result is not None and result.ok:
            proxy.last_latency_ms = result.latency_ms
            proxy.last_exit_ip = result.exit_ip
            if result.country:
                proxy.last_country = result.country
        change = apply_observation(
            proxy,
            ok=ok,
            weight=weight,
            error=error,
            from_probe=from_probe,
            now=now or utcnow(),
            policy=policy,
        )
    if change is not None and emit_events:  # after the commit: never announce a rollback
        emit_health_event(change)
    return change


def record_probe_result(
    proxy_id: int,
    result: ProbeResult,
    *,
    url: str | None = None,
    now: datetime | None = None,
    policy: HealthPolicy | None = None,
    emit_events: bool = True,
) -> HealthChange | None:
    """Store a probe's outcome on the proxy row (own transaction); emit any transition. A
    probe whose endpoint failed says nothing about the proxy and is not counted."""
    if result.endpoint_failed:
        logger.warning("Probe of proxy %s not counted: %s", proxy_id, result.error)
        return None
    policy = policy or HealthPolicy()
    weight = policy.auth_failure if result.auth_failed else policy.probe_failure
    return _observe(
        proxy_id,
        ok=result.ok,
        weight=weight,
        error=result.error,
        from_probe=True,
        url=url,
        now=now,
        policy=policy,
        emit_events=emit_events,
        result=result,
    )


def report_session_result(
    proxy_id: int,
    ok: bool,
    error: str | None = None,
    *,
    url: str | None = None,
    now: datetime | None = None,
    policy: HealthPolicy | None = None,
    emit_events: bool = True,
    auth_failed: bool = False,
) -> HealthChange | None:
    """Count a real session's outcome through the proxy towards its error score; refused
    credentials weigh as much as a probe's (the proxy will not get better by itself)."""
    policy = policy or HealthPolicy()
    return _observe(
        proxy_id,
        ok=ok,
        weight=policy.auth_failure if auth_failed else policy.session_failure,
        error=error,
        from_probe=False,
        url=url,
        now=now,
        policy=policy,
        emit_events=emit_events,
    )


def due_for_probe(
    session: Session, *, names: Sequence[str] | None = None, now: datetime | None = None
) -> list[Proxy]:
    """Proxies to probe now: the named ones, else all but quarantined ones still backing off."""
    if names:
        rows = list(session.execute(select(Proxy).where(Proxy.name.in_(list(names)))).scalars())
        missing = sorted(set(names) - {p.name for p in rows})
        if missing:
            raise NotFoundError(f"unknown proxy {', '.join(missing)}; see `fleetwright proxy list`")
        return sorted(rows, key=lambda p: p.name)
    now = now or utcnow()
    query = (
        select(Proxy)
        .where(
            or_(
                Proxy.health != "quarantined",
                Proxy.quarantined_until.is_(None),
                Proxy.quarantined_until <= now,
            )
        )
        .order_by(Proxy.name)
    )
    return list(session.execute(query).scalars())
