"""Who watches a session: observers installed under the `fleetwright.session_observer` entry
point are told when a session began, when each of its phases ended and how it finished.

The engine core stays free of what they do with it (Prometheus metrics, Prefect events, a
failure artifact on the run's page: `fleetwright.observability`). An observer never fails a
session: one that raises is logged and the session goes on.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol

from fleetwright.listeners import installed

if TYPE_CHECKING:
    from fleetwright.browser import BrowserPool

__all__ = [
    "OPEN_COMMAND",
    "PHASES",
    "SESSION_OBSERVERS",
    "SessionObserver",
    "SessionObservers",
    "SessionOutcome",
    "SessionStart",
]

logger = logging.getLogger(__name__)

#: the entry point group: callables `(SessionStart) -> SessionObserver | None`
SESSION_OBSERVERS = "fleetwright.session_observer"

#: a session's phases, in order: the wait for the lease (from the request to the lease
#: taken), launch (proxy and browser context ready), steps, save (the state version
#: written), record (the run row's outcome and the lease given back)
PHASES = ("lease_wait", "launch", "steps", "save", "record")


#: the `command` of a profile opened for another tool (`fleetwright profile open`, the local
#: API); no command can be named so (names have no spaces)
OPEN_COMMAND = "profile open"


@dataclass(frozen=True, kw_only=True)
class SessionStart:
    """A session that has just begun (its lease taken, proxy chosen, run row added).

    `kind` "run": a command's session (the engine). "open": a profile opened for another tool
    to drive (sessions/opener.py): `command` is OPEN_COMMAND, it has no run row, flow run or
    pool, and its "steps" phase is the time it stayed open.
    """

    profile: str
    command: str
    #: the catalogue run row (None for an opened profile)
    run_id: int | None
    flow_run_id: str | None
    task_run_id: str | None
    attempt: int
    #: the proxy chosen for the session (its name), None for none
    proxy: str | None
    #: seconds from the session's request to its lease
    lease_wait: float
    #: the engine's browser pool (observers may sample its processes and contexts); None for
    #: an opened profile, which has a browser of its own
    pool: BrowserPool | None
    kind: Literal["run", "open"] = "run"


class SessionOutcome(Protocol):
    """What observers read of how a session went (the engine's SessionResult)."""

    @property
    def profile(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def error(self) -> str | None: ...
    @property
    def error_type(self) -> str | None: ...
    @property
    def retryable(self) -> bool: ...
    @property
    def duration_ms(self) -> float: ...
    @property
    def proxy(self) -> str | None: ...
    @property
    def artifacts(self) -> dict[str, str]:
        """File name -> path of the session's screenshots and trace."""


class SessionObserver(Protocol):
    """One session's observer, made by an installed factory when the session begins."""

    def phase(self, name: str, seconds: float) -> None:
        """Phase `name` (see PHASES) ended after `seconds`."""

    async def finished(self, result: SessionOutcome) -> None:
        """The session's outcome is recorded (ok, failed or cancelled)."""


Factory = Callable[[SessionStart], "SessionObserver | None"]


class SessionObservers:
    """The observers of one session: times its phases and hands every call to each observer,
    logging (never raising) what an observer raises."""

    __slots__ = ("_done", "_mark", "_observers", "profile")

    def __init__(self, start: SessionStart, factories: tuple[Any, ...] | None = None) -> None:
        self.profile = start.profile
        self._observers: list[SessionObserver] = []
        self._done = False
        for factory in installed(SESSION_OBSERVERS) if factories is None else factories:
            try:
                observer = factory(start)
            except Exception:
                logger.warning("session observer %r failed to start", factory, exc_info=True)
                continue
            if observer is not None:
                self._observers.append(observer)
        self._mark = time.perf_counter()

    def phase(self, name: str) -> None:
        """Phase `name` ended now (it began when the previous one ended)."""
        now = time.perf_counter()
        seconds, self._mark = now - self._mark, now
        for observer in self._observers:
            try:
                observer.phase(name, seconds)
            except Exception:
                logger.warning("session observer %r failed", observer, exc_info=True)

    async def finished(self, result: SessionOutcome) -> None:
        """Tell every observer the outcome, once."""
        if self._done:
            return
        self._done = True
        for observer in self._observers:
            try:
                await observer.finished(result)
            except Exception:
                logger.warning("session observer %r failed", observer, exc_info=True)
