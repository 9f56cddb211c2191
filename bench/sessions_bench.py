"""Session overhead (Fleetwright ÷ bare, sequential, alternating A/B rounds), session start from
saved state and persistent-profile launch, each beside bare Playwright's equivalent."""

from __future__ import annotations

import shutil
import time
from typing import Any

from playwright.async_api import async_playwright

from bench.harness import Bench
from bench.stats import Figure, ab_ratio, summary
from bench.workload import FleetSession, bare_launch_kwargs, bare_session
from fleetwright.browser import BrowserPool, LaunchSpec

__all__ = ["FIGURES", "run"]

FIGURES = ("session_overhead_ratio", "session_start_ms", "persistent_launch_ms")


async def _overhead(bench: Bench, pool: BrowserPool, browser: Any) -> Figure:
    site = bench.site(0)
    per_round = bench.sizes.overhead_per_round
    names = bench.profiles(per_round, prefix="ovh")
    fleet = FleetSession(pool, site.url)
    try:
        return await _overhead_rounds(bench, fleet, browser, names)
    finally:
        await fleet.close()


async def _overhead_rounds(
    bench: Bench, fleet: FleetSession, browser: Any, names: list[str]
) -> Figure:
    site_url, per_round = fleet.base_url, len(names)
    # warm-up: both browsers launched, every profile has a saved state to restore from
    for name in names:
        await fleet.run(name)
    await bare_session(browser, site_url, "warm-up")
    a_rounds: list[float] = []
    b_rounds: list[float] = []
    for r in range(bench.sizes.ab_rounds):

        async def side_a() -> float:
            t0 = time.perf_counter()
            for name in names:
                await fleet.run(name)
            return (time.perf_counter() - t0) * 1000 / per_round

        async def side_b() -> float:
            t0 = time.perf_counter()
            for name in names:
                await bare_session(browser, site_url, name)
            return (time.perf_counter() - t0) * 1000 / per_round

        if r % 2 == 0:
            a, b = await side_a(), await side_b()
        else:
            b, a = await side_b(), await side_a()
        a_rounds.append(a)
        b_rounds.append(b)
    return ab_ratio(
        a_rounds,
        b_rounds,
        unit="ratio",
        a_name="fleetwright",
        b_name="bare playwright (shared browser, new context per session)",
        a_unit="ms/session",
        sessions_per_side=per_round * bench.sizes.ab_rounds,
        path=fleet.path,
        delay_ms=0,
    )


async def _session_start(bench: Bench, pool: BrowserPool, browser: Any) -> Figure:
    names = bench.profiles(bench.sizes.overhead_per_round, prefix="ovh")
    fleet_ms: list[float] = []
    bare_ms: list[float] = []
    for i in range(bench.sizes.start_n):
        name = names[i % len(names)]
        state = pool.store.load(name)
        storage = state.storage if state is not None else None
        t0 = time.perf_counter()
        async with pool.session(LaunchSpec(profile_name=name)):
            fleet_ms.append((time.perf_counter() - t0) * 1000)
        t0 = time.perf_counter()
        context = await browser.new_context(storage_state=storage)
        await context.new_page()
        bare_ms.append((time.perf_counter() - t0) * 1000)
        await context.close()
    fig = summary(fleet_ms, "ms", what="storage mode: state load + context + restore + page")
    fig["baseline"] = summary(bare_ms, "ms") | {
        "name": "bare new_context(storage_state=...) + new_page"
    }
    return fig


async def _persistent_launch(bench: Bench, pool: BrowserPool, pw: Any) -> Figure:
    name = bench.profiles(1, prefix="pers", state_mode="persistent")[0]
    spec = LaunchSpec(profile_name=name, state_mode="persistent")
    site = bench.site(0)
    async with pool.session(spec) as session:  # first version of its user-data-dir
        await session.page.goto(f"{site.url}/storage?write=bench")
        await session.save_state()
    bare_dir = bench.root / "bare-user-data"
    bare = await pw.chromium.launch_persistent_context(str(bare_dir), **bare_launch_kwargs())
    page = bare.pages[0] if bare.pages else await bare.new_page()
    await page.goto(f"{site.url}/storage?write=bench")
    await bare.close()
    fleet_ms: list[float] = []
    bare_ms: list[float] = []
    for _ in range(bench.sizes.persistent_n):
        t0 = time.perf_counter()
        async with pool.session(spec) as session:
            fleet_ms.append((time.perf_counter() - t0) * 1000)
            await session.save_state()
        t0 = time.perf_counter()
        bare = await pw.chromium.launch_persistent_context(str(bare_dir), **bare_launch_kwargs())
        if not bare.pages:
            await bare.new_page()
        bare_ms.append((time.perf_counter() - t0) * 1000)
        await bare.close()
    shutil.rmtree(bare_dir, ignore_errors=True)
    fig = summary(fleet_ms, "ms", what="persistent mode: checkout + launch + restore")
    fig["baseline"] = summary(bare_ms, "ms") | {
        "name": "bare launch_persistent_context on a reused user-data-dir"
    }
    return fig


async def run(bench: Bench) -> dict[str, Figure]:
    figures: dict[str, Figure] = {}
    async with BrowserPool(browsers=1) as pool, async_playwright() as pw:
        browser = await pw.chromium.launch(**bare_launch_kwargs())
        try:
            figures["session_overhead_ratio"] = await _overhead(bench, pool, browser)
            figures["session_start_ms"] = await _session_start(bench, pool, browser)
            figures["persistent_launch_ms"] = await _persistent_launch(bench, pool, pw)
        finally:
            await browser.close()
    return figures
