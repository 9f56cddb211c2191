"""Profiles the API server holds open: each in a task of its own, closed on request or at
shutdown (saving its state)."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from fleetwright.errors import FleetwrightError, NotFoundError, ProfileBusyError
from fleetwright.sessions.opener import OpenedProfile, open_session

__all__ = ["OpenedRegistry"]


@dataclass
class _Held:
    opened: OpenedProfile
    task: asyncio.Task[dict[str, Any]]


class OpenedRegistry:
    """name → the profile this process holds open."""

    def __init__(self) -> None:
        self._held: dict[str, _Held] = {}
        self._lock = asyncio.Lock()

    def get(self, name: str) -> OpenedProfile | None:
        held = self._held.get(name)
        return held.opened if held is not None and not held.task.done() else None

    async def start(
        self, name: str, *, headed: bool, port: int | None, timeout: timedelta | None
    ) -> OpenedProfile:
        """Open `name`; raises what open_session raises (busy, unknown, no display...)."""
        async with self._lock:
            current = self.get(name)
            if current is not None:
                raise ProfileBusyError(
                    f"profile {name!r} is already open here ({current.ws_endpoint}); "
                    f"stop it first: POST /profiles/{name}/stop"
                )
            ready: asyncio.Future[OpenedProfile] = asyncio.get_running_loop().create_future()

            async def hold() -> dict[str, Any]:
                try:
                    async with open_session(
                        name, headed=headed, port=port, timeout=timeout
                    ) as opened:
                        ready.set_result(opened)
                        opened.reason = await opened.wait(timeout)
                except BaseException as exc:
                    if not ready.done():
                        ready.set_exception(exc)
                        return {}
                    raise
                return {**opened.as_dict(), "reason": opened.reason}

            task = asyncio.create_task(hold(), name=f"open-{name}")
            try:
                opened = await ready
            except BaseException:
                with contextlib.suppress(BaseException):
                    await task
                raise
            self._held[name] = _Held(opened, task)
            return opened

    async def stop(self, name: str) -> dict[str, Any]:
        """Close `name` (saving its state) and return the outcome."""
        held = self._held.get(name)
        if held is None:
            raise NotFoundError(f"profile {name!r} is not open in this API server")
        held.opened.request_close()
        try:
            return await held.task
        except FleetwrightError:
            return {**held.opened.as_dict(), "reason": held.opened.reason}
        finally:
            self._held.pop(name, None)

    def open_names(self) -> list[str]:
        return [name for name in self._held if self.get(name) is not None]

    async def close(self) -> None:
        """At shutdown: close (and save) every profile still open."""
        for name in list(self._held):
            with contextlib.suppress(Exception):
                await self.stop(name)
