"""Opening a profile for another tool: from `open_session()` to a CDP endpoint that answers
(lease, proxy, state restored, dedicated Chromium launched with its DevTools port), for a
storage and a persistent profile, each beside bare Playwright reaching a browser with the same
state (`launch` + `new_context(storage_state=...)`; for persistent, `launch_persistent_context`
on a reused user-data-dir)."""

from __future__ import annotations

import shutil
import time
import urllib.request
from typing import Any

from playwright.async_api import async_playwright

from bench.harness import Bench
from bench.stats import Figure, summary
from bench.workload import bare_launch_kwargs
from fleetwright.sessions.opener import open_session

__all__ = ["FIGURES", "run"]

FIGURES = ("open_to_cdp_ready_ms", "open_to_cdp_ready_persistent_ms")


def _answers(port: int) -> None:
    """The endpoint is connectable: DevTools answers /json/version."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/version", timeout=10) as r:
        r.read()


async def _write_state(name: str, site_url: str) -> None:
    async with open_session(name) as opened:
        page = await opened.context.new_page()
        await page.goto(f"{site_url}/storage?write={name}")
        await page.wait_for_function("document.getElementById('status').textContent === 'ready'")


async def _open_ms(name: str) -> float:
    t0 = time.perf_counter()
    async with open_session(name) as opened:
        _answers(opened.port)
        elapsed = (time.perf_counter() - t0) * 1000
    return elapsed


async def _bare_storage_ms(pw: Any, storage: dict[str, Any] | None) -> float:
    t0 = time.perf_counter()
    browser = await pw.chromium.launch(**bare_launch_kwargs())
    await browser.new_context(storage_state=storage)
    elapsed = (time.perf_counter() - t0) * 1000
    await browser.close()
    return elapsed


async def _bare_persistent_ms(pw: Any, folder: Any) -> float:
    t0 = time.perf_counter()
    context = await pw.chromium.launch_persistent_context(str(folder), **bare_launch_kwargs())
    elapsed = (time.perf_counter() - t0) * 1000
    await context.close()
    return elapsed


async def run(bench: Bench) -> dict[str, Figure]:
    from fleetwright.browser import StateStore

    site = bench.site(0)
    n = bench.sizes.persistent_n
    storage_name = bench.profiles(1, prefix="open")[0]
    persistent_name = bench.profiles(1, prefix="open-pers", state_mode="persistent")[0]
    await _write_state(storage_name, site.url)
    await _write_state(persistent_name, site.url)
    state = StateStore().load(storage_name)
    storage = state.storage if state is not None else None
    bare_dir = bench.root / "bare-open-user-data"
    times: dict[str, list[float]] = {"storage": [], "bare": [], "persistent": [], "bare_pers": []}
    async with async_playwright() as pw:
        await _bare_persistent_ms(pw, bare_dir)  # its first launch creates the folder
        for i in range(n):  # the sides alternate who goes first
            sides = [
                ("storage", lambda: _open_ms(storage_name)),
                ("bare", lambda: _bare_storage_ms(pw, storage)),
                ("persistent", lambda: _open_ms(persistent_name)),
                ("bare_pers", lambda: _bare_persistent_ms(pw, bare_dir)),
            ]
            for key, side in sides if i % 2 == 0 else reversed(sides):
                times[key].append(await side())
    shutil.rmtree(bare_dir, ignore_errors=True)
    what = "open_session() until its CDP endpoint answers: lease, state, dedicated Chromium"
    storage_fig = summary(times["storage"], "ms", what=f"{what}; storage profile")
    storage_fig["baseline"] = summary(times["bare"], "ms") | {
        "name": "bare launch + new_context(storage_state=...) with the same state"
    }
    pers_fig = summary(times["persistent"], "ms", what=f"{what}; persistent profile")
    pers_fig["baseline"] = summary(times["bare_pers"], "ms") | {
        "name": "bare launch_persistent_context on a reused user-data-dir"
    }
    return {"open_to_cdp_ready_ms": storage_fig, "open_to_cdp_ready_persistent_ms": pers_fig}
