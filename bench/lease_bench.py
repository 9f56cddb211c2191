"""The lease options, each as Fleetwright fleet throughput at concurrency 4 on the 0 ms site:
a Prefect global concurrency limit per profile, and the session engine's own atomic lease on the
catalogue row, each ÷ the same fleet with no lease, in alternating rounds (bare Playwright
alongside for scale). Only the lease differs between the sides (see bench.leases)."""

from __future__ import annotations

import statistics
from collections.abc import Awaitable, Callable

from playwright.async_api import async_playwright

from bench.fleet_common import alternate, bare_fleet, per_minute
from bench.fleet_flow import bind, fleet_flow
from bench.harness import Bench
from bench.leases import LEASE_TTL, LeaseKind, create_prefect_limits, use_lease
from bench.stats import Figure, ab_ratio
from bench.workload import FleetSession, bare_launch_kwargs, load_bench_command
from fleetwright.browser import BrowserPool

__all__ = ["CONCURRENCY", "FIGURES", "run"]

FIGURES = ("lease_prefect_ratio", "lease_catalogue_ratio")
CONCURRENCY = 4

_HOW = {
    "prefect": "prefect.concurrency.asyncio.concurrency(limit per profile, occupy=1, "
    f"strict=True, lease_duration={LEASE_TTL.total_seconds():g})",
    "catalogue": "fleetwright.sessions.lease: conditional UPDATE of the profile row to take "
    "(in the transaction that adds the run row), "
    "renewed in the background, given back in the transaction that records the outcome",
}


async def run(bench: Bench) -> dict[str, Figure]:
    bench.prefect()
    n = bench.sizes.lease_sessions
    profiles = bench.profiles(n, prefix="lease")
    await create_prefect_limits(profiles)
    load_bench_command(bench.root / "commands")
    async with BrowserPool(browsers=1) as pool, async_playwright() as pw:
        browser = await pw.chromium.launch(**bare_launch_kwargs())
        runner = FleetSession(pool, bench.site(0).url)
        bind(runner)
        try:
            await fleet_flow(profiles, CONCURRENCY)  # warm-up and first saved states

            def fleet(kind: LeaseKind) -> Callable[[], Awaitable[float]]:
                async def side() -> float:
                    with use_lease(kind):
                        return per_minute(n, await fleet_flow(profiles, CONCURRENCY))

                return side

            async def bare() -> float:
                return per_minute(n, await bare_fleet(browser, runner.base_url, profiles, 4))

            sides = await alternate(
                bench.sizes.ab_rounds,
                {
                    "none": fleet("none"),
                    "prefect": fleet("prefect"),
                    "catalogue": fleet("catalogue"),
                    "bare": bare,
                },
            )
        finally:
            await browser.close()
            await runner.close()
    bare_median = statistics.median(sides["bare"])
    figures: dict[str, Figure] = {}
    for kind in ("prefect", "catalogue"):
        figures[f"lease_{kind}_ratio"] = ab_ratio(
            sides[kind],
            sides["none"],
            unit="ratio",
            a_name=f"{kind}_lease",
            b_name="the same Fleetwright fleet with no lease",
            a_unit="sessions/min",
            lease=_HOW[kind],
            of_bare=round(statistics.median(sides[kind]) / bare_median, 4),
            no_lease_of_bare=round(statistics.median(sides["none"]) / bare_median, 4),
            bare_sessions_per_min=round(bare_median, 2),
            concurrency=CONCURRENCY,
            delay_ms=0,
            sessions_per_round=n,
            path=f"run-profile-session task per session → {runner.path}",
        )
    return figures
