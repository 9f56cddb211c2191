"""Find and stop the Chromium processes a pool launched, through /proc (Linux); start
Playwright's driver out of the caller's process group."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import threading
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = [
    "TAG_VAR",
    "ProcessWatch",
    "alive",
    "descendants",
    "detach_driver",
    "kill_tree",
    "tagged_pids",
]

logger = logging.getLogger(__name__)

#: Environment variable whose value names the pool browser a process belongs to.
TAG_VAR = "FLEETWRIGHT_BROWSER_ID"
_PROC = Path("/proc")


def tagged_pids(tag: str) -> list[int]:
    """PIDs whose environment carries TAG_VAR=`tag` (the browser's main process)."""
    needle = f"{TAG_VAR}={tag}".encode()
    found = []
    for entry in _PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            env = (entry / "environ").read_bytes()
        except OSError:
            continue
        if needle in env.split(b"\0"):
            found.append(int(entry.name))
    return sorted(found)


def _children_map() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in _PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    return children


def descendants(pid: int) -> list[int]:
    """All processes below `pid` (not `pid` itself)."""
    children = _children_map()
    out: list[int] = []
    stack = list(children.get(pid, []))
    while stack:
        child = stack.pop()
        out.append(child)
        stack.extend(children.get(child, []))
    return out


def alive(pid: int) -> bool:
    """Whether `pid` exists and is not a zombie."""
    try:
        stat = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def kill_tree(pid: int) -> None:
    """SIGKILL `pid` and everything below it."""
    for target in [*descendants(pid), pid]:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(target, signal.SIGKILL)


def _start_time(pid: int) -> bytes | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    return stat.rsplit(b")", 1)[1].split()[19]


class ProcessWatch:
    """Remembers every process seen under some browsers, to check later that none survive."""

    def __init__(self, source: Callable[[], list[int]]) -> None:
        self.source = source
        self.seen: dict[int, bytes] = {}

    def snapshot(self) -> set[int]:
        """Record the processes under the main PIDs `source` returns now."""
        for main in self.source():
            for pid in [main, *descendants(main)]:
                start = _start_time(pid)
                if start is not None:
                    self.seen.setdefault(pid, start)
        return set(self.seen)

    def survivors(self) -> list[int]:
        """Seen processes still alive (same pid and start time: not a reused pid)."""
        left = []
        for pid, start in self.seen.items():
            if _start_time(pid) == start and alive(pid):
                left.append(pid)
        return left


class _OwnSessionAsyncio(types.ModuleType):
    """`asyncio` as Playwright's transport sees it, except that the driver it spawns starts a
    session (and process group) of its own."""

    def __getattr__(self, name: str) -> Any:
        return getattr(asyncio, name)

    @staticmethod
    async def create_subprocess_exec(*args: Any, **kwargs: Any) -> asyncio.subprocess.Process:
        kwargs.setdefault("start_new_session", True)
        return await asyncio.create_subprocess_exec(*args, **kwargs)


_detach_lock = threading.Lock()


def detach_driver() -> bool:
    """Make every Playwright this process starts from now on run its Node.js driver in a
    session of its own (idempotent); False if this Playwright spawns it some other way.

    A signal sent to the caller's process group — Prefect's worker cancelling a flow run
    (`killpg(SIGTERM)`), Ctrl-C in a terminal — would otherwise reach the driver too. The
    driver exits at once and takes every browser with it, so sessions that were still running
    fail with "Target closed" before the flow can stop them and record them as cancelled.
    Chromium itself already runs in a group of its own (Playwright launches it detached). The
    driver still ends with the caller: when the caller dies, even by SIGKILL, its pipe closes
    and the driver closes its browsers and exits.
    """
    from playwright._impl import transport

    with _detach_lock:
        current = getattr(transport, "asyncio", None)
        if isinstance(current, _OwnSessionAsyncio):
            return True
        if current is not asyncio:
            logger.warning(
                "This Playwright starts its driver differently; the driver stays in this "
                "process group, so a signal to the group also closes its browsers"
            )
            return False
        transport.asyncio = _OwnSessionAsyncio("asyncio")  # type: ignore[attr-defined]
        return True
