"""Prefect tasks for proxies: select, probe, choose for a profile, exit-IP check, session report.

Tasks take blocks and values as parameters and never read the environment: the flow
passes the catalogue URL and endpoints down from the settings.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from fleetwright.blocks.proxy import Proxy as ProxyBlock
from fleetwright.catalogue.db import session_scope
from fleetwright.catalogue.models import Profile, Proxy
from fleetwright.errors import NotFoundError, is_retryable
from fleetwright.proxies.checker import ProxyTarget, select_targets
from fleetwright.proxies.exitip import ExitCheck, verify_exit_ip
from fleetwright.proxies.health import (
    HealthChange,
    HealthPolicy,
    record_probe_result,
    report_session_result,
    try_probe,
)
from fleetwright.proxies.pools import choose_proxy

__all__ = [
    "check_exit_ip",
    "choose_profile_proxy",
    "probe_proxy",
    "report_proxy_session",
    "select_proxies_to_check",
]


def _retry_on_retryable(task: Any, task_run: Any, state: Any) -> bool:
    try:
        state.result()
    except Exception as exc:
        return is_retryable(exc)
    return False


@task(name="select-proxies-to-check", cache_policy=NO_CACHE)
def select_proxies_to_check(
    names: list[str] | None = None, *, catalogue_url: str | None = None
) -> list[ProxyTarget]:
    """The named proxies, or all that are due (quarantined ones only once back-off expired)."""
    return select_targets(names, url=catalogue_url)


@task(name="probe-proxy", cache_policy=NO_CACHE, task_run_name="probe-{proxy.name}")
async def probe_proxy(
    proxy: ProxyBlock,
    *,
    proxy_id: int,
    echo_url: str,
    info_url: str | None = None,
    timeout: timedelta = timedelta(seconds=10),
    catalogue_url: str | None = None,
    policy: HealthPolicy | None = None,
) -> dict[str, Any]:
    """Probe one proxy through its block's credentials and record the outcome."""
    spec = proxy.to_spec()
    result = await try_probe(spec, echo_url=echo_url, info_url=info_url, timeout=timeout)
    change = await asyncio.to_thread(
        record_probe_result, proxy_id, result, url=catalogue_url, policy=policy
    )
    with session_scope(catalogue_url) as session:
        row = session.get(Proxy, proxy_id)
        health = row.health if row else "deleted"
        score = row.error_score if row else 0.0
        until = row.quarantined_until if row else None
    return {
        "proxy": spec.name,
        "ok": result.ok,
        "latency_ms": round(result.latency_ms, 1) if result.latency_ms is not None else None,
        "exit_ip": result.exit_ip,
        "country": result.country,
        "health": health,
        "error_score": score,
        "quarantined_until": until.isoformat(timespec="seconds") if until else None,
        "transition": change.kind if change else None,
        "error": result.error,
    }


@task(
    name="choose-proxy",
    cache_policy=NO_CACHE,
    retries=3,
    retry_delay_seconds=5,
    retry_condition_fn=_retry_on_retryable,
)
def choose_profile_proxy(
    profile_name: str,
    *,
    label_filter: dict[str, str] | None = None,
    catalogue_url: str | None = None,
) -> str | None:
    """The name of the proxy the profile's session should use (None: no proxy)."""
    with session_scope(catalogue_url) as session:
        profile = session.query(Profile).filter(Profile.name == profile_name).one_or_none()
        if profile is None:
            raise NotFoundError(f"unknown profile {profile_name!r}; see `fleetwright profile list`")
        proxy = choose_proxy(session, profile, label_filter=label_filter)
        return proxy.name if proxy else None


@task(name="check-exit-ip", cache_policy=NO_CACHE)
async def check_exit_ip(
    proxy: ProxyBlock,
    *,
    profile_id: int,
    proxy_id: int | None,
    info_url: str,
    timeout: timedelta = timedelta(seconds=10),
    catalogue_url: str | None = None,
) -> ExitCheck | None:
    """Apply the profile's ip_check (off / warn / refuse) to the proxy's exit."""
    return await verify_exit_ip(
        profile_id,
        proxy_id,
        proxy.to_spec(),
        info_url=info_url,
        timeout=timeout,
        url=catalogue_url,
    )


@task(name="report-proxy-session", cache_policy=NO_CACHE)
def report_proxy_session(
    proxy_id: int,
    ok: bool,
    error: str | None = None,
    *,
    catalogue_url: str | None = None,
    policy: HealthPolicy | None = None,
) -> HealthChange | None:
    """Count a session's outcome towards the proxy's error score."""
    return report_session_result(proxy_id, ok, error, url=catalogue_url, policy=policy)
