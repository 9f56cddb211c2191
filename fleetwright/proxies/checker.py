"""Check many proxies now: pick the due ones, load their credentials, probe, record.

Used by `fleetwright proxy check`; the `check-proxies` flow does the same with Prefect tasks.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from fleetwright.catalogue.db import session_scope
from fleetwright.catalogue.models import Proxy
from fleetwright.errors import FleetwrightError, NotFoundError, PrefectUnavailableError
from fleetwright.proxies.health import (
    HealthChange,
    HealthPolicy,
    ProbeResult,
    due_for_probe,
    record_probe_result,
    try_probe,
)
from fleetwright.specs import ProxySpec

__all__ = ["CheckOutcome", "ProxyTarget", "check_proxies_now", "load_proxy_spec", "select_targets"]

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


async def load_proxy_spec(target: ProxyTarget) -> ProxySpec:
    """The full spec, with the password from the proxy's Prefect block when it has one."""
    password = None
    if target.secret_ref:
        from fleetwright.blocks.proxy import Proxy as ProxyBlock

        try:
            loaded: Any = await ProxyBlock.aload(target.secret_ref)
        except ValueError:
            raise NotFoundError(
                f"proxy {target.name!r}: its Proxy block {target.secret_ref!r} is missing; "
                "add the proxy again to store its credentials"
            ) from None
        except Exception as exc:
            raise PrefectUnavailableError(
                f"cannot load the Proxy block of {target.name!r} from Prefect "
                f"({type(exc).__name__}); is the Prefect server up?"
            ) from None
        block = cast(ProxyBlock, loaded)
        password = block.password.get_secret_value() if block.password else None
    return ProxySpec.model_validate(
        {
            "name": target.name,
            "scheme": target.scheme,
            "host": target.host,
            "port": target.port,
            "username": target.username,
            "password": password,
        }
    )


async def _check(
    target: ProxyTarget,
    *,
    echo_url: str,
    info_url: str | None,
    timeout: timedelta,
    url: str | None,
    policy: HealthPolicy,
) -> CheckOutcome:
    try:
        spec = await load_proxy_spec(target)
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
    echo_url: str,
    info_url: str | None = None,
    timeout: timedelta = timedelta(seconds=10),
    concurrency: int = 8,
    url: str | None = None,
    policy: HealthPolicy | None = None,
    on_result: Callable[[CheckOutcome], None] | None = None,
) -> list[CheckOutcome]:
    """Probe `targets` (see select_targets), at most `concurrency` at once; record results."""
    gate = asyncio.Semaphore(max(concurrency, 1))
    policy = policy or HealthPolicy()

    async def one(target: ProxyTarget) -> CheckOutcome:
        async with gate:
            outcome = await _check(
                target,
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
