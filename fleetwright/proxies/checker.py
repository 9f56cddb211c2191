"""Check many proxies now: pick the due ones, load their credentials, probe, record.

Used by `fleetwright proxy check`; the `check-proxies` flow does the same with Prefect tasks.
Credentials come through the caller's `load_spec` (fleetwright.registry.proxies.load_proxy_spec
reads the Proxy block), so this module runs without Prefect.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from fleetwright.catalogue.db import session_scope
from fleetwright.catalogue.models import Proxy
from fleetwright.errors import FleetwrightError
from fleetwright.proxies.health import (
    HealthChange,
    HealthPolicy,
    ProbeResult,
    due_for_probe,
    record_probe_result,
    try_probe,
)
from fleetwright.specs import ProxySpec

__all__ = ["CheckOutcome", "ProxyTarget", "SpecLoader", "check_proxies_now", "select_targets"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProxyTarget:
    """A proxy to check, as read from the catalogue (no password)."""

    id: int
    name: str
    scheme: str
    host: str
    port: int
    username: str | None
    secret_ref: str | None
    health: str

    @classmethod
    def from_row(cls, row: Proxy) -> ProxyTarget:
        return cls(
            id=row.id,
            name=row.name,
            scheme=row.scheme,
            host=row.host,
            port=row.port,
            username=row.username,
            secret_ref=row.secret_ref,
            health=row.health,
        )


@dataclass(frozen=True)
class CheckOutcome:
    """One proxy's check: the probe, the health afterwards, and any transition."""

    name: str
    result: ProbeResult
    health: str
    error_score: float
    change: HealthChange | None = None
    quarantined_until: datetime | None = None
    recorded: bool = True


def select_targets(
    names: Sequence[str] | None = None, *, url: str | None = None, now: datetime | None = None
) -> list[ProxyTarget]:
    """The named proxies, or every proxy due for a probe (see `due_for_probe`)."""
    with session_scope(url) as session:
        return [ProxyTarget.from_row(p) for p in due_for_probe(session, names=names, now=now)]


#: Loads a target's full spec (with its password); the registry's reads the Proxy block.
SpecLoader = Callable[[ProxyTarget], Awaitable[ProxySpec]]


async def _check(
    target: ProxyTarget,
    *,
    load_spec: SpecLoader,
    echo_url: str,
    info_url: str | None,
    timeout: timedelta,
    url: str | None,
    policy: HealthPolicy,
) -> CheckOutcome:
    try:
        spec = await load_spec(target)
    except FleetwrightError as exc:
        return CheckOutcome(
            name=target.name,
            result=ProbeResult(ok=False, error=exc.message),
            health=target.health,
            error_score=0.0,
            recorded=False,
        )
    result = await try_probe(spec, echo_url=echo_url, info_url=info_url, timeout=timeout)
    change = await asyncio.to_thread(record_probe_result, target.id, result, url=url, policy=policy)
    with session_scope(url) as session:
        row = session.get(Proxy, target.id)
        health = row.health if row else "deleted"
        score = row.error_score if row else 0.0
        until = row.quarantined_until if row else None
    return CheckOutcome(
        name=target.name,
        result=result,
        health=health,
        error_score=score,
        change=change,
        quarantined_until=until,
    )


async def check_proxies_now(
    targets: Sequence[ProxyTarget],
    *,
    load_spec: SpecLoader,
    echo_url: str,
    info_url: str | None = None,
    timeout: timedelta = timedelta(seconds=10),
    concurrency: int = 8,
    url: str | None = None,
    policy: HealthPolicy | None = None,
    on_result: Callable[[CheckOutcome], None] | None = None,
) -> list[CheckOutcome]:
    """Probe `targets` (see select_targets), at most `concurrency` at once; record results.

    `load_spec` gives each target's full spec with its password (see SpecLoader)."""
    gate = asyncio.Semaphore(max(concurrency, 1))
    policy = policy or HealthPolicy()

    async def one(target: ProxyTarget) -> CheckOutcome:
        async with gate:
            outcome = await _check(
                target,
                load_spec=load_spec,
                echo_url=echo_url,
                info_url=info_url,
                timeout=timeout,
                url=url,
                policy=policy,
            )
        if on_result is not None:
            on_result(outcome)
        return outcome

    return list(await asyncio.gather(*(one(t) for t in targets)))
