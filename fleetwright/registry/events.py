"""Fleetwright's own Prefect events (profile created/archived, ...), for triggers to react to."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fleetwright.proxies.health import HealthChange
    from fleetwright.proxies.pools import Failover

__all__ = ["emit", "emit_failover", "emit_proxy_health"]

logger = logging.getLogger(__name__)


async def emit(event: str, name: str, payload: dict[str, Any], *, kind: str = "profile") -> None:
    """Emit `event` about the Fleetwright object `name`; never fails the caller's write."""
    from prefect.events import emit_event

    try:
        emit_event(
            event=event,
            resource={
                "prefect.resource.id": f"fleetwright.{kind}.{name}",
                "prefect.resource.name": name,
            },
            payload=payload,
        )
    except Exception:
        logger.warning("could not emit %s for %s %s", event, kind, name, exc_info=True)


def emit_proxy_health(change: HealthChange) -> None:
    """Send a proxy's health transition to Prefect's event stream (when an API is configured).

    Registered as the `fleetwright.proxy_health` entry point (see proxies.health).
    """
    from prefect.events import emit_event
    from prefect.settings import PREFECT_API_URL

    if not PREFECT_API_URL.value():
        logger.debug("No Prefect API configured; %s event for %s not sent", change.kind, change)
        return
    payload: dict[str, Any] = {
        "error_score": change.error_score,
        "quarantine_count": change.quarantine_count,
        "quarantined_until": (
            change.quarantined_until.isoformat() if change.quarantined_until else None
        ),
        "error": change.error,
    }
    emit_event(
        event=change.event,
        resource={
            "prefect.resource.id": f"fleetwright.proxy.{change.proxy_name}",
            "prefect.resource.name": change.proxy_name,
            "fleetwright.proxy.id": str(change.proxy_id),
        },
        payload=payload,
    )


def emit_failover(failover: Failover) -> None:
    """A profile's session moved off a quarantined proxy: `fleetwright.profile.failover`.

    Registered as the `fleetwright.proxy_failover` entry point (see proxies.pools).
    """
    from prefect.events import emit_event
    from prefect.settings import PREFECT_API_URL

    if not PREFECT_API_URL.value():
        return
    emit_event(
        event="fleetwright.profile.failover",
        resource={
            "prefect.resource.id": f"fleetwright.profile.{failover.profile}",
            "prefect.resource.name": failover.profile,
        },
        related=[
            {
                "prefect.resource.id": f"fleetwright.proxy.{failover.to_proxy}",
                "prefect.resource.role": "proxy",
                "prefect.resource.name": failover.to_proxy,
            }
        ],
        payload={"from": failover.from_proxy, "to": failover.to_proxy, "pool": failover.pool},
    )
