"""Entry points between the engine core and the Prefect layer: listeners the core tells what
happened (proxy health transitions, failovers), and providers it asks for what only the
Prefect layer can give (a proxy's password from its block, a secret's value, the integrations
client) — without importing that layer."""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import cache
from importlib.metadata import entry_points
from typing import Any

__all__ = ["installed", "notify", "provider"]

logger = logging.getLogger(__name__)


@cache
def installed(group: str) -> tuple[Callable[[Any], None], ...]:
    """The callables registered under entry point `group` (one that fails to load is logged)."""
    found: list[Callable[[Any], None]] = []
    for ep in entry_points(group=group):
        try:
            found.append(ep.load())
        except Exception:
            logger.warning("could not load %s listener %s", group, ep.value, exc_info=True)
    return tuple(found)


def notify(listeners: tuple[Callable[[Any], None], ...], value: Any, what: str) -> None:
    """Hand `value` to every listener; a failing one is logged, never raised."""
    for listener in listeners:
        try:
            listener(value)
        except Exception:
            logger.warning("%s listener %r failed", what, listener, exc_info=True)


def provider(group: str) -> Callable[..., Any]:
    """The one callable installed under entry point `group`; a clear error without one."""
    found = installed(group)
    if not found:
        from fleetwright.errors import ConfigurationError

        raise ConfigurationError(
            f"nothing is installed for the {group} entry point; reinstall Fleetwright "
            "(pip install -e . in a checkout)"
        )
    return found[0]
