"""Sessions: one command on one profile, leased, recorded, with state saved.

The engine is loaded on first use, so importing a light module of this package
(`fleetwright.sessions.lease`) does not load the engine and everything it drives.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fleetwright.sessions.engine import (
        SessionEngine,
        SessionHandle,
        SessionRequest,
        SessionResult,
        session_key,
    )

__all__ = ["SessionEngine", "SessionHandle", "SessionRequest", "SessionResult", "session_key"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from fleetwright.sessions import engine

        return getattr(engine, name)
    raise AttributeError(f"module 'fleetwright.sessions' has no attribute {name!r}")
