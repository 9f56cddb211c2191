"""The ids of the session a log record belongs to (for the JSON log format)."""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

__all__ = ["current_session_ids", "session_ids"]

session_ids: ContextVar[dict[str, Any] | None] = ContextVar("fleetwright_session", default=None)


def current_session_ids() -> dict[str, Any]:
    """profile, session (catalogue run row), command of the session running in this task."""
    return dict(session_ids.get() or {})
