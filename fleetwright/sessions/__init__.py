"""Sessions: one command on one profile, leased, recorded, with state saved."""

from fleetwright.sessions.engine import (
    SessionEngine,
    SessionHandle,
    SessionRequest,
    SessionResult,
    session_key,
)

__all__ = ["SessionEngine", "SessionHandle", "SessionRequest", "SessionResult", "session_key"]
