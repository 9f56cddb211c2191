"""Fleet throughput: Fleetwright's `run-command` flow (one run-profile-session task run per
profile: lease, saved state, steps, save, run row; its own browser pool) ÷ a bare Playwright
script (start Playwright, launch one browser, asyncio semaphore, close), each timed end to end,
at concurrency 1, 4 and 8 on the 0 ms site and 8 on the 150 ms site, in alternating A/B rounds.
"""

from __future__ import annotations

import time
from typing import Any, cast

from playwright.async_api import async_playwright

from bench.fleet_common import alternate, bare_fleet, per_minute
from bench.harness import Bench
from bench.stats import Figure, ab_ratio
from bench.workload import bare_launch_kwargs, load_bench_command

__all__ = ["CONFIGS", "FIGURES", "bare_script", "fleetwright_run", "run"]

CONFIGS: tuple[tuple[int, int], ...] = ((1, 0), (4, 0), (8, 0), (8, 150))
FIGURES = tuple(f"throughput_ratio_c{c}_{d}ms" for c, d in CONFIGS)


async def fleetwright_run(profiles: list[str], concurrency: int, base_url: str) -> float:
    """The run-command flow on `profiles`, in this process; seconds end to end."""
    from fleetwright.flows.run_command import run_command

    t0 = time.perf_counter()
    state = await run_command(
        command="bench-login",
        profiles=profiles,
        params={"base_url": base_url},
        concurrency=concurrency,
        return_state=True,
    )
    seconds = time.perf_counter() - t0
    summary = cast(dict[str, Any], await state.aresult())
    if summary["ok"] != len(profiles):
        raise RuntimeError(f"run-command: {summary['ok']} of {len(profiles)} sessions ok")
    return seconds


async def bare_script(profiles: list[str], concurrency: int, base_url: str) -> float:
    """Bare Playwright: start, launch one browser, run the sessions, close; seconds."""
    t0 = time.perf_counter()
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(**bare_launch_kwargs())
        try:
            await bare_fleet(browser, base_url, profiles, concurrency)
        finally:
            await browser.close()
    return time.perf_counter() - t0


async def run(bench: Bench) -> dict[str, Figure]:
    bench.prefect()
    n = bench.sizes.throughput_sessions
    profiles = bench.profiles(n, prefix="fleet")
    load_bench_command(bench.root / "commands")
    await fleetwright_run(profiles, 4, bench.site(0).url)  # warm-up: every profile has a state
    await bare_script(profiles, 4, bench.site(0).url)
    figures: dict[str, Figure] = {}
    for concurrency, delay in CONFIGS:
        url = bench.site(delay).url

        async def fleet(c: int = concurrency, u: str = url) -> float:
            return per_minute(n, await fleetwright_run(profiles, c, u))

        async def bare(c: int = concurrency, u: str = url) -> float:
            return per_minute(n, await bare_script(profiles, c, u))

        sides = await alternate(bench.sizes.ab_rounds, {"a": fleet, "b": bare})
        figures[f"throughput_ratio_c{concurrency}_{delay}ms"] = ab_ratio(
            sides["a"],
            sides["b"],
            unit="ratio",
            a_name="fleetwright",
            b_name="bare playwright script + asyncio semaphore",
            a_unit="sessions/min",
            concurrency=concurrency,
            delay_ms=delay,
            sessions_per_round=n,
            path="run-command flow (in process) → run-profile-session task per profile → "
            "SessionEngine.run (lease, saved state, steps, save, run row)",
        )
    return figures
