"""Session overhead (Fleetwright ÷ bare, sequential, alternating A/B rounds), session start from
saved state and persistent-profile launch, each beside bare Playwright's equivalent."""

from __future__ import annotations

import shutil
import time
from collections.abc import Awaitable, Callable
from typing import Any

from playwright.async_api import async_playwright

from bench.fleet_common import alternate
from bench.harness import Bench
from bench.stats import Figure, ab_ratio, summary
from bench.workload import (
    BENCH_FINGERPRINT,
    FleetSession,
    bare_context_options,
    bare_launch_kwargs,
    bare_session,
    write_site_state,
)
from fleetwright.browser import BrowserPool, LaunchSpec
from fleetwright.browser.spec import ProxyConfig
from fleetwright.specs import Fingerprint

__all__ = ["FIGURES", "run"]

FIGURES = (
    "session_overhead_ratio",
    "session_overhead_trace_ratio",
    "session_start_ms",
    "session_start_idb_ms",
    "session_start_with_page_ms",
    "session_start_with_page_proxy_ms",
    "persistent_launch_ms",
)


async def _overhead(bench: Bench, pool: BrowserPool, browser: Any) -> dict[str, Figure]:
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
) -> dict[str, Figure]:
    """Three sides per round, the order rotating: Fleetwright as configured by default
    (traces on retries only), Fleetwright recording a trace of every session (on-failure),
    bare Playwright. Both ratios are per round against that round's bare side."""
    site_url, per_round = fleet.base_url, len(names)
    # warm-up: both browsers launched, every profile has a saved state to restore from
    for name in names:
        await fleet.run(name)
    await bare_session(browser, site_url, "warm-up")

    def timed(one: Callable[[str], Awaitable[Any]]) -> Callable[[], Awaitable[float]]:
        async def side() -> float:
            t0 = time.perf_counter()
            for name in names:
                await one(name)
            return (time.perf_counter() - t0) * 1000 / per_round

        return side

    sides = await alternate(
        bench.sizes.ab_rounds,
        {
            "fleet": timed(fleet.run),
            "traced": timed(lambda name: fleet.run(name, trace="on-failure")),
            "bare": timed(lambda name: bare_session(browser, site_url, name)),
        },
    )
    common = {
        "unit": "ratio",
        "b_name": "bare playwright (shared browser, new context per session)",
        "a_unit": "ms/session",
        "sessions_per_side": per_round * bench.sizes.ab_rounds,
        "path": fleet.path,
        "delay_ms": 0,
    }
    return {
        "session_overhead_ratio": ab_ratio(
            sides["fleet"], sides["bare"], a_name="fleetwright (default: trace on retry)", **common
        ),
        "session_overhead_trace_ratio": ab_ratio(
            sides["traced"],
            sides["bare"],
            a_name="fleetwright recording a trace of every session (trace: on-failure)",
            **common,
        ),
    }


async def _saved_states(bench: Bench, pool: BrowserPool, prefix: str, *, idb: bool) -> list[str]:
    """Profiles with a saved state: a cookie, localStorage and sessionStorage on the bench site,
    plus (idb) an IndexedDB database, as the site's /storage page writes them."""
    names = bench.profiles(bench.sizes.overhead_per_round, prefix=prefix)
    site = bench.site(0)
    for name in names:
        async with pool.session(LaunchSpec(profile_name=name)) as session:
            await write_site_state(session.page, site.url, name, idb=idb)
            await session.save_state()
    return names


async def _start_times(
    pool: BrowserPool,
    browser: Any,
    names: list[str],
    n: int,
    *,
    spec_options: dict[str, Any] | None = None,
    context_options: dict[str, Any] | None = None,
) -> dict[str, list[float]]:
    """`n` starts a side; `spec_options` go to Fleetwright's LaunchSpec, `context_options` to
    the bare side's new_context (the same proxy and fingerprint, each as its side takes it)."""
    times: dict[str, list[float]] = {"restore": [], "open": [], "bare": [], "bare_page": []}
    for i in range(n):
        name = names[i % len(names)]
        async with pool.session(LaunchSpec(profile_name=name, **(spec_options or {}))) as session:
            times["restore"].append(session.timings["restore_ms"])
            times["open"].append(session.timings["open_ms"])
        state = pool.store.load(name)
        storage = state.storage if state is not None else None
        t0 = time.perf_counter()
        context = await browser.new_context(storage_state=storage, **(context_options or {}))
        times["bare"].append((time.perf_counter() - t0) * 1000)
        await context.new_page()
        times["bare_page"].append((time.perf_counter() - t0) * 1000)
        await context.close()
    return times


async def _session_start(bench: Bench, pool: BrowserPool, browser: Any) -> dict[str, Figure]:
    """Storage-mode start from a saved state as BrowserPool.session() times it: state read +
    context with it + restore script (`restore_ms`), and with the first page (`open_ms`); bare
    Playwright given the same storage state beside each. Measured for a state of a cookie,
    localStorage and sessionStorage, and again with an IndexedDB database added (Playwright
    restores IndexedDB itself, through a page it opens on the origin). The start with the first
    page is measured again with both sides given the same tinyproxy with BasicAuth and
    BENCH_FINGERPRINT (Fleetwright in its LaunchSpec, bare Playwright as new_context options)."""
    from fleetwright.testing.proxies import TinyProxy

    plain_names = await _saved_states(bench, pool, "start", idb=False)
    plain = await _start_times(pool, browser, plain_names, bench.sizes.start_n)
    with_idb = await _start_times(
        pool, browser, await _saved_states(bench, pool, "idb", idb=True), bench.sizes.start_n
    )
    bare_name = "bare new_context(storage_state=...) with the same state"
    what = "storage mode: saved state read + context with it + restore script"
    figures: dict[str, Figure] = {}
    for key, times, kind in (
        ("session_start_ms", plain, "cookie, localStorage, sessionStorage"),
        ("session_start_idb_ms", with_idb, "cookie, localStorage, sessionStorage, IndexedDB"),
    ):
        fig = summary(times["restore"], "ms", what=f"{what}; state: {kind}")
        fig["baseline"] = summary(times["bare"], "ms") | {"name": bare_name}
        figures[key] = fig
    page = summary(plain["open"], "ms", what="session_start_ms + the session's first page")
    page["baseline"] = summary(plain["bare_page"], "ms") | {
        "name": "bare new_context(storage_state=...) + new_page()"
    }
    figures["session_start_with_page_ms"] = page
    with TinyProxy(username="bench", password="bench-proxy-pw", workdir=bench.root) as proxy:
        server = {
            "server": f"http://127.0.0.1:{proxy.port}",
            "username": proxy.username,
            "password": proxy.password,
        }
        spec_options = {
            "proxy": ProxyConfig(**server),
            "fingerprint": Fingerprint(**BENCH_FINGERPRINT),
        }
        proxied = await _start_times(
            pool,
            browser,
            plain_names,
            bench.sizes.start_n,
            spec_options=spec_options,
            context_options=bare_context_options(server),
        )
    page = summary(
        proxied["open"],
        "ms",
        what="session_start_with_page_ms with an HTTP proxy with BasicAuth (tinyproxy) and "
        "BENCH_FINGERPRINT on the profile's LaunchSpec",
        fingerprint=BENCH_FINGERPRINT,
    )
    page["baseline"] = summary(proxied["bare_page"], "ms") | {
        "name": "bare new_context(storage_state=..., proxy=..., user_agent=..., locale=..., "
        "timezone_id=..., viewport=...) + new_page()"
    }
    figures["session_start_with_page_proxy_ms"] = page
    return figures


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
    # the engine's sessions send their started/finished events to Prefect's API, as they do
    # in use; without a server (`--only sessions`) its events client would retry meanwhile
    bench.prefect()
    figures: dict[str, Figure] = {}
    async with BrowserPool(browsers=1) as pool, async_playwright() as pw:
        browser = await pw.chromium.launch(**bare_launch_kwargs())
        try:
            figures.update(await _overhead(bench, pool, browser))
            figures.update(await _session_start(bench, pool, browser))
            figures["persistent_launch_ms"] = await _persistent_launch(bench, pool, pw)
        finally:
            await browser.close()
    return figures
