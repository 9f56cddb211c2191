"""Sessions: one command on one profile, leased, recorded, with state saved."""

from fleetwright.sessions.engine import SessionEngine, SessionRequest, SessionResult

__all__ = ["SessionEngine", "SessionRequest", "SessionResult"]
