"""Shared pieces of the fleet benchmarks: the bare Playwright fleet and A/B rounds."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from bench.workload import bare_session

__all__ = ["alternate", "bare_fleet", "per_minute"]


async def bare_fleet(
    browser: Any,
    base_url: str,
    profiles: list[str],
    concurrency: int,
    *,
    context_options: dict[str, Any] | None = None,
) -> float:
    """Bare Playwright: every session in one shared browser, an asyncio semaphore; seconds."""
    sem = asyncio.Semaphore(concurrency)

    async def one(name: str) -> None:
        async with sem:
            await bare_session(browser, base_url, name, context_options=context_options)

    t0 = time.perf_counter()
    await asyncio.gather(*(one(n) for n in profiles))
    return time.perf_counter() - t0


def per_minute(sessions: int, seconds: float) -> float:
    return sessions * 60 / seconds


async def alternate(
    rounds: int, sides: dict[str, Callable[[], Awaitable[float]]]
) -> dict[str, list[float]]:
    """Run every side once per round, rotating which goes first; each side's results."""
    names = list(sides)
    out: dict[str, list[float]] = {n: [] for n in names}
    for r in range(rounds):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            out[name].append(await sides[name]())
    return out
