"""Fleetwright's own Prefect events (profile created/archived, ...), for triggers to react to."""

from __future__ import annotations

import logging
from typing import Any

__all__ = ["emit"]

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
